"""Distance-map losses: ``hausdorff_dt_loss``, ``boundary_loss``, ``dice_boundary_loss`` and
``BoundaryLossSchedule``.

``api`` (public functions and checks) -> ``ops`` (options + custom op) ->
``kernels`` (Triton) or ``torch_impl`` (PyTorch).
"""

from .api import *  # noqa: F401,F403
from .api import __all__ as _api_all

__all__ = list(_api_all)
