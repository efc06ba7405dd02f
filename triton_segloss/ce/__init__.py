"""The ce family (transitional: re-exports the layer-first modules until it moves here)."""

from ..functional._ce import *  # noqa: F401,F403
from ..functional._ce import __all__  # noqa: F401
