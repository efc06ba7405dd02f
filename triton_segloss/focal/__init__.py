"""The focal family: sigmoid focal (binary / multilabel) and softmax focal (multiclass) as
``focal_loss``, and its recipes.

``api`` (public functions and checks) -> ``ops`` (options + custom ops) ->
``kernels`` (Triton) or ``torch_impl`` (PyTorch); ``recipes`` holds the
blog posts' functions.
"""

from .api import *  # noqa: F401,F403
from .api import __all__ as _api_all

__all__ = list(_api_all)
