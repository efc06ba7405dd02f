"""Recipes: one function per loss or metric in the blog posts this library started from,
with the post's own name, arguments and defaults, computed through the fused API.

Each family folder has a ``recipes`` module; this package gathers them.
"""

from ..bce import recipes as _bce
from ..boundary import recipes as _boundary
from ..ce import recipes as _ce
from ..confusion import recipes as _confusion
from ..dice import recipes as _dice
from ..focal import recipes as _focal
from ..lovasz import recipes as _lovasz
from ..ncut import recipes as _ncut
from ..bce.recipes import *  # noqa: F401,F403
from ..boundary.recipes import *  # noqa: F401,F403
from ..ce.recipes import *  # noqa: F401,F403
from ..confusion.recipes import *  # noqa: F401,F403
from ..dice.recipes import *  # noqa: F401,F403
from ..focal.recipes import *  # noqa: F401,F403
from ..lovasz.recipes import *  # noqa: F401,F403
from ..ncut.recipes import *  # noqa: F401,F403

__all__ = [name for m in (_bce, _dice, _focal, _boundary, _lovasz, _ce, _confusion, _ncut) for name in m.__all__]
