"""The documented loss functions (also exported at the package top level)."""

from ._bce import *  # noqa: F401,F403
from ._bce import __all__ as _bce_all

__all__ = [*_bce_all]
