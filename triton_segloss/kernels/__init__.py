"""Triton kernels and their launchers, one module per loss family.

Importing this package imports triton; the ops import it lazily so the
PyTorch path works where triton is not installed.
"""
