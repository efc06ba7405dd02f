"""The NCut family: seed 003's soft normalized-cut loss (``ncut_loss``) and its recipe.

``api`` (public function and checks) -> ``ops`` (options + custom op) ->
``kernels`` (Triton) or ``torch_impl`` (PyTorch); ``recipes`` holds the
blog post's function.
"""

from .api import *  # noqa: F401,F403
from .api import __all__ as _api_all

__all__ = list(_api_all)
