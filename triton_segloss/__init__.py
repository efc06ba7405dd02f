"""triton_segloss: fused Triton segmentation losses and metrics for PyTorch.

``import triton_segloss as tsl``; see ``shared/API.md`` for the contract and
README.md for the tables.
"""

from triton_segloss._core.backend import use_backend
from ._version import __version__
from . import functional, losses, metrics, recipes
from .functional import *  # noqa: F401,F403
from .functional import __all__ as _functional_all
from .losses import *  # noqa: F401,F403
from .losses import __all__ as _losses_all

__all__ = ["use_backend", "functional", "losses", "metrics", "recipes", "__version__",
           *_functional_all, *_losses_all]
