"""The documented loss functions (also exported at the package top level).

One module per family; each defines ``__all__``.
"""

from . import _bce, _boundary, _ce, _dice, _focal, _lovasz, _ncut
from ._bce import *  # noqa: F401,F403
from ._boundary import *  # noqa: F401,F403
from ._ce import *  # noqa: F401,F403
from ._dice import *  # noqa: F401,F403
from ._focal import *  # noqa: F401,F403
from ._lovasz import *  # noqa: F401,F403
from ._ncut import *  # noqa: F401,F403

__all__ = [name for m in (_bce, _dice, _focal, _boundary, _lovasz, _ce, _ncut) for name in m.__all__]
