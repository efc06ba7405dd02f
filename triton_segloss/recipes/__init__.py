"""Seed recipes: one function per loss or metric in the seed documents, with the
seed's own name, arguments and defaults, computed through the fused API."""

from ._bce import *  # noqa: F401,F403
