"""Surface metrics of binary masks: Hausdorff distance (and its percentiles), average
(symmetric) surface distance and normalised surface Dice, batched over (N, C) on the device.

``api`` (public functions and checks) -> ``ops`` (options + custom op) ->
``kernels`` (Triton) or ``torch_impl`` (PyTorch). No recipes.
"""

from .api import *  # noqa: F401,F403
from .api import __all__ as _api_all

__all__ = list(_api_all)
