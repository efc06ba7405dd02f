"""Recipes of the clDice family: none yet.

None of the five blog posts has clDice; the MONAI-compatible forms are the public functions
(``cldice_loss`` = ``SoftclDiceLoss``, ``dice_cldice_loss`` = ``SoftDiceclDiceLoss``).
"""

__all__: list = []
