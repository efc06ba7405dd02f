"""No blog recipe computes surface metrics; the metrics are in ``api``."""

__all__: list = []
