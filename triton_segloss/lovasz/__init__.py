"""The lovasz family (transitional: re-exports the layer-first modules until it moves here)."""

from ..functional._lovasz import *  # noqa: F401,F403
from ..functional._lovasz import __all__  # noqa: F401
