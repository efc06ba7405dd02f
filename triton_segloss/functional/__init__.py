"""The documented loss functions (also exported at the package top level).

Each loss family is one folder of the package (``triton_segloss.bce``,
``triton_segloss.dice``, ...) whose ``__init__`` exports its public functions.
"""

from .. import bce, boundary, ce, cldice, dice, distance, focal, hausdorff, lovasz, ncut
from ..bce import *  # noqa: F401,F403
from ..boundary import *  # noqa: F401,F403
from ..ce import *  # noqa: F401,F403
from ..cldice import *  # noqa: F401,F403
from ..dice import *  # noqa: F401,F403
from ..distance import *  # noqa: F401,F403
from ..focal import *  # noqa: F401,F403
from ..hausdorff import *  # noqa: F401,F403
from ..lovasz import *  # noqa: F401,F403
from ..ncut import *  # noqa: F401,F403

FAMILIES = (bce, dice, focal, boundary, lovasz, ce, ncut, hausdorff, cldice, distance)
__all__ = [name for fam in FAMILIES for name in fam.__all__]
