"""The Dice family: Dice, Jaccard, Tversky, generalized Dice and the fused BCE / CE / focal
combos, all finished from one set of per-(image, class) partial sums, and their recipes.

``api`` (public functions and checks) -> ``ops`` (options + custom op) ->
``kernels`` (Triton) or ``torch_impl`` (PyTorch); ``recipes`` holds the
blog posts' functions. ``bce_dice_terms`` is internal (the boundary family's
seed 001 loss uses it) and not in ``__all__``.
"""

from .api import *  # noqa: F401,F403
from .api import __all__ as _api_all
from .api import bce_dice_terms  # noqa: F401  (internal, used by the boundary family)

__all__ = list(_api_all)
