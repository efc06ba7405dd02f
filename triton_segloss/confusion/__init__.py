"""The confusion-matrix family: ``confusion_matrix`` (fused argmax + histogram), ``scores``,
``ConfusionMatrix``, and its recipes; ``triton_segloss.metrics`` re-exports them.

``api`` (public functions and checks) -> ``ops`` (options + custom op) ->
``kernels`` (Triton) or ``torch_impl`` (PyTorch); ``recipes`` holds the
blog posts' functions.
"""

from .api import *  # noqa: F401,F403
from .api import __all__ as _api_all

__all__ = list(_api_all)
