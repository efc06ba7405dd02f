"""The dice family (transitional: re-exports the layer-first modules until it moves here)."""

from ..functional._dice import *  # noqa: F401,F403
from ..functional._dice import __all__  # noqa: F401
from ..functional._dice import bce_dice_terms  # noqa: F401  (internal, used by the boundary family)
