"""``torch.library.custom_op`` definitions: one module per loss family.

Importing this package registers every op under the ``triton_segloss::`` namespace.
Each family module is imported here; a module without ops is a placeholder.
"""

from . import bce, boundary, ce, dice, focal, lovasz, ncut  # noqa: F401
