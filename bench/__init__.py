"""Benchmarks of triton_segloss (not part of the library; never run in CI). ``python -m bench --help``."""
