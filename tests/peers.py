"""Import the peer libraries for the compat tests (each test module skips when its peer is absent).

smp's package ``__init__`` imports timm / torchvision, which cannot be installed beside the CPU
torch of the test environment: its ``losses`` subpackage is imported through a stub parent.
"""

import pytest


def smp_losses():
    """``segmentation_models_pytorch.losses`` or skip."""
    try:
        from triton_segloss.compat._patch import import_smp_losses

        return import_smp_losses()
    except ImportError:
        pytest.skip("segmentation_models_pytorch is not installed (pip install --no-deps segmentation-models-pytorch)")


def monai_losses():
    """``monai.losses`` or skip."""
    return pytest.importorskip("monai.losses")
