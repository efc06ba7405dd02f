"""The ncut family (transitional: re-exports the layer-first modules until it moves here)."""

from ..functional._ncut import *  # noqa: F401,F403
from ..functional._ncut import __all__  # noqa: F401
