"""The clDice family: soft-skeleton clDice (``cldice_loss``) and its mix with soft Dice
(``dice_cldice_loss``), matching MONAI's ``SoftclDiceLoss`` / ``SoftDiceclDiceLoss``.

``api`` (public functions and checks) -> ``ops`` (options + custom op) ->
``kernels`` (Triton) or ``torch_impl`` (PyTorch); ``recipes`` holds MONAI-named forms.
"""

from .api import *  # noqa: F401,F403
from .api import __all__ as _api_all

__all__ = list(_api_all)
