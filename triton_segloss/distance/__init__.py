"""Exact Euclidean distance transforms of binary masks (``distance_transform``,
``signed_distance_transform``), batched over (N, C), with anisotropic spacing.

``api`` (public functions and checks) -> ``ops`` (options + custom op) ->
``kernels`` (Triton) or ``torch_impl`` (PyTorch). No recipes.
"""

from .api import *  # noqa: F401,F403
from .api import __all__ as _api_all

__all__ = list(_api_all)
