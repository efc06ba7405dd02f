"""The confusion family (transitional: its code still lives in ``triton_segloss.metrics``)."""

__all__: list = []
