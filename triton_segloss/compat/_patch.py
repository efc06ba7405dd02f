"""Helpers shared by the compat layers, and the patch / unpatch functions.

``patch_smp()`` / ``patch_monai()`` put our classes in place of the peers' classes in the
peer packages' modules (the package and every submodule that defines or re-exports them),
in the spirit of Liger-Kernel's ``apply_liger_kernel_to_*``: code you do not own that says
``smp.losses.DiceLoss(...)`` or ``from monai.losses import DiceCELoss`` (after the patch)
builds ours. ``unpatch_*()`` puts the originals back. Both are idempotent.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import sys
import types

__all__ = ["patch_smp", "unpatch_smp", "patch_monai", "unpatch_monai", "import_smp_losses"]


@functools.lru_cache(maxsize=None)
def _params(fn) -> frozenset:
    return frozenset(inspect.signature(fn).parameters)


def has_option(fn, option: str) -> bool:
    """Whether the core function ``fn`` takes the keyword ``option`` (core options land over time)."""
    return option in _params(fn)


def need(owner: str, fn, option: str, why: str) -> None:
    """Raise NotImplementedError when the core function lacks an option the peer's semantics need."""
    if not has_option(fn, option):
        raise NotImplementedError(
            f"{owner}: {why} needs triton_segloss.{fn.__name__}({option}=...), which this version "
            f"does not have yet; see docs/MIGRATION.md"
        )


def import_smp_losses():
    """``segmentation_models_pytorch.losses``, importing the real package or, when its ``__init__``
    fails (it needs timm / torchvision), through a stub parent package that only has a path."""
    try:
        return importlib.import_module("segmentation_models_pytorch.losses")
    except ImportError:
        spec = importlib.util.find_spec("segmentation_models_pytorch")
        if spec is None or spec.submodule_search_locations is None:
            raise
        pkg = types.ModuleType("segmentation_models_pytorch")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules.setdefault("segmentation_models_pytorch", pkg)
        return importlib.import_module("segmentation_models_pytorch.losses")


_SAVED: dict = {"smp": {}, "monai": {}}


def _swap(key: str, modules, ours) -> list:
    """Replace every attribute named like one of ``ours``'s classes in ``modules``; remember the originals."""
    saved = _SAVED[key]
    done = []
    for mod in modules:
        for name in ours.__all__:
            cur = getattr(mod, name, None)
            if cur is None:
                continue
            new = getattr(ours, name)
            if cur is new:
                done.append(f"{mod.__name__}.{name}")
                continue
            saved.setdefault((mod.__name__, name), (mod, cur))
            setattr(mod, name, new)
            done.append(f"{mod.__name__}.{name}")
    return sorted(set(done))


def _restore(key: str) -> list:
    saved = _SAVED[key]
    done = []
    for (modname, name), (mod, orig) in list(saved.items()):
        setattr(mod, name, orig)
        done.append(f"{modname}.{name}")
        del saved[(modname, name)]
    return sorted(done)


def _loss_modules(pkg) -> list:
    prefix = pkg.__name__ + "."
    return [pkg] + [m for k, m in list(sys.modules.items()) if k.startswith(prefix) and m is not None]


def patch_smp() -> list:
    """Swap ``segmentation_models_pytorch.losses``' classes for :mod:`triton_segloss.compat.smp`'s.

    Returns the patched ``module.Name`` paths. Safe to call twice; :func:`unpatch_smp` restores.
    """
    losses = import_smp_losses()
    from . import smp as ours

    for sub in ("dice", "jaccard", "tversky", "focal", "lovasz", "soft_bce", "soft_ce", "mcc"):
        importlib.import_module(f"{losses.__name__}.{sub}")
    return _swap("smp", _loss_modules(losses), ours)


def unpatch_smp() -> list:
    """Put smp's own classes back; returns what was restored."""
    return _restore("smp")


def patch_monai() -> list:
    """Swap ``monai.losses``' classes (and the submodules defining them) for :mod:`triton_segloss.compat.monai`'s.

    Returns the patched ``module.Name`` paths. Safe to call twice; :func:`unpatch_monai` restores.
    """
    losses = importlib.import_module("monai.losses")
    from . import monai as ours

    return _swap("monai", _loss_modules(losses), ours)


def unpatch_monai() -> list:
    """Put MONAI's own classes back; returns what was restored."""
    return _restore("monai")
