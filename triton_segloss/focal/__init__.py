"""The focal family (transitional: re-exports the layer-first modules until it moves here)."""

from ..functional._focal import *  # noqa: F401,F403
from ..functional._focal import __all__  # noqa: F401
