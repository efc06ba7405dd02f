"""Seed recipes: one function per loss or metric in the seed documents, with the
seed's own name, arguments and defaults, computed through the fused API.

One module per family; each defines ``__all__``.
"""

from . import _bce, _boundary, _ce, _dice, _lovasz
from ._bce import *  # noqa: F401,F403
from ._boundary import *  # noqa: F401,F403
from ._ce import *  # noqa: F401,F403
from ._dice import *  # noqa: F401,F403
from ._lovasz import *  # noqa: F401,F403

__all__ = [name for m in (_bce, _dice, _boundary, _lovasz, _ce) for name in m.__all__]
