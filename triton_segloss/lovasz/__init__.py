"""The Lovász family: the Lovász hinge (``lovasz_hinge``) and Lovász-Softmax (``lovasz_softmax``)
losses of Berman et al. (2018), and their recipes.

``api`` (public functions and checks) -> ``ops`` (options + custom ops) ->
``kernels`` (Triton) or ``torch_impl`` (PyTorch); ``recipes`` holds the
blog posts' functions.
"""

from .api import *  # noqa: F401,F403
from .api import __all__ as _api_all

__all__ = list(_api_all)
