"""The boundary family (transitional: re-exports the layer-first modules until it moves here)."""

from ..functional._boundary import *  # noqa: F401,F403
from ..functional._boundary import __all__  # noqa: F401
