"""``torch.library.custom_op`` definitions: one module per loss family.

Importing this package registers every op under the ``triton_segloss::`` namespace.
"""

from . import bce  # noqa: F401
