"""Transitional: the layer-first custom-op modules of the families not yet moved to their folder.

Importing this package registers the ops of every module still here.
"""

import importlib as _importlib
import pkgutil as _pkgutil

for _info in _pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_"):
        _importlib.import_module(f"{__name__}.{_info.name}")
