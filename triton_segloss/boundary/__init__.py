"""The boundary family: seed 001's avg-pool boundary weights and its boundary-weighted BCE + soft Dice.

``api`` (public functions and checks) -> ``ops`` (options + custom ops, the kernel-size rule and
the band thresholds) -> ``kernels`` (Triton) or ``torch_impl`` (PyTorch); ``recipes`` holds seed
001's ``combined_loss``.
"""

from .api import *  # noqa: F401,F403
from .api import __all__ as _api_all

__all__ = list(_api_all)
