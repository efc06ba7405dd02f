"""Drop-in compatibility layers: :mod:`triton_segloss.compat.smp` (segmentation_models_pytorch
0.6 losses) and :mod:`triton_segloss.compat.monai` (MONAI 1.6 losses), with the peers' class
names, signatures, defaults, input conventions and output shapes, running on our fused
losses; :func:`patch_smp` / :func:`patch_monai` swap them into the peer packages.
See docs/MIGRATION.md for the option table and what is not expressible."""

from ._patch import patch_monai, patch_smp, unpatch_monai, unpatch_smp

__all__ = ["patch_smp", "unpatch_smp", "patch_monai", "unpatch_monai", "smp", "monai"]


def __getattr__(name):  # the submodules import lazily (they import nothing of the peers)
    if name in ("smp", "monai"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(name)
