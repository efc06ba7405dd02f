"""No blog recipe uses the distance transform directly; the losses and metrics built on it
(``triton_segloss.hausdorff``, ``triton_segloss.surface``) hold theirs."""

__all__: list = []
