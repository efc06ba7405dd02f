"""Public function of the NCut family: seed 003's soft normalized-cut loss (W-Net)."""

from __future__ import annotations

import torch
from torch import Tensor

from triton_segloss._core.validate import check_logits, check_same_device, finite_float, shape_str

from .ops import NCutOptions, ncut

__all__ = ["ncut_loss"]


def _image(probs: Tensor, image) -> Tensor:
    if not isinstance(image, Tensor):
        raise TypeError(f"image must be a torch.Tensor, got {type(image).__name__}")
    if image.dtype == torch.bool:
        image = image.view(torch.uint8)
    if image.is_complex() or not (image.is_floating_point() or image.dtype in (
            torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)):
        raise TypeError(f"image must be a real tensor, got dtype {image.dtype}")
    n, spatial = probs.shape[0], tuple(probs.shape[2:])
    if image.dim() == probs.dim() - 1 and image.shape[0] == n and tuple(image.shape[1:]) == spatial:
        image = image.unsqueeze(1)
    if image.dim() != probs.dim() or image.shape[0] != n or tuple(image.shape[2:]) != spatial:
        raise ValueError(
            f"image must have shape (N, CIN, *spatial) or (N, *spatial) with N, *spatial of probs "
            f"{shape_str(probs)}; got image {shape_str(image)}"
        )
    if image.shape[1] == 0:
        raise ValueError(f"image has no channels: shape {shape_str(image)}")
    check_same_device(probs, "probs", image, "image")
    if image.requires_grad and torch.is_grad_enabled():
        raise ValueError(
            "ncut_loss does not differentiate with respect to image (the raw input); pass image.detach()"
        )
    return image


def ncut_loss(
    probs: Tensor,
    image: Tensor,
    *,
    radius: int = 5,
    sigma_spatial: float = 4.0,
    sigma_value: float = 10.0,
    spatial_gaussian: bool = False,
) -> Tensor:
    """Seed 003's soft normalized cut (``NCutLoss2D``, after W-Net, Xia & Kulis 2017).

    For each class k, with per-image class means of the image under the probabilities
    ``mu_nk = mean_i(I_i p_ki) / (mean_i(p_ki) + 1e-5)`` and per-pixel weights
    ``w_ki = exp(-D_ki^2 / sigma_value^2)``, ``D_ki = ||I_i - mu_nk||^2`` (the seed squares the
    squared distance again; W-Net's paper has ``exp(-||.||^2 / sigma^2)``)::

        num_k = sum_{n,i} p_ki^2 w_ki,   den_k = sum_{n,i} p_ki w_ki          (default: the seed's running form)
        num_k = sum p_k * (G * (p_k w_k)),   den_k = sum p_k * (G * w_k)      (spatial_gaussian=True)
        loss  = K - sum_k |num_k / (den_k + 1e-6)|

    Sums run over the whole batch, as in the seed. ``G`` is the (2 radius + 1)^2 Gaussian
    ``exp(-(dx^2 + dy^2) / (2 sigma_spatial^2))`` with peak 1 (the W-Net code's
    ``gaussian_kernel``, which the seed calls without defining), applied with zero padding;
    its scale cancels in num/den up to the 1e-6.

    Args:
        probs: class probabilities ``(N, K, *spatial)`` (after softmax), any float dtype and
            strides; the gradient flows to them.
        image: the raw image ``(N, CIN, *spatial)`` or ``(N, *spatial)``; float or integer.
            Treated as data: no gradient flows to it (an image that requires grad raises).
        radius, sigma_spatial: the spatial Gaussian; used only when ``spatial_gaussian``
            (the seed builds that kernel but its running code does not use it).
        sigma_value: the pixel-value Gaussian.
        spatial_gaussian: use the seed's commented-out form with the spatial filter (2D only).

    Both forms run fused kernels: a training step is four launches (class means, cut sums,
    a one-program finisher, backward) and no host sync.

    Returns the loss in float32 (float64 for float64 probs).

    Example:
        >>> probs = torch.softmax(torch.randn(2, 3, 8, 8), dim=1)
        >>> image = torch.rand(2, 1, 8, 8)
        >>> ncut_loss(probs, image).shape
        torch.Size([])
    """
    check_logits(probs, "probs")
    image = _image(probs, image)
    sigma_value = finite_float(sigma_value, "sigma_value")
    sigma_spatial = finite_float(sigma_spatial, "sigma_spatial")
    if sigma_value <= 0 or sigma_spatial <= 0:
        raise ValueError(f"sigma_value and sigma_spatial must be > 0, got {sigma_value} and {sigma_spatial}")
    if isinstance(radius, bool) or not isinstance(radius, int) or radius < 0:
        raise ValueError(f"radius must be an int >= 0, got {radius!r}")
    n, k = probs.shape[:2]
    if spatial_gaussian:
        if probs.dim() != 4:
            raise ValueError(f"spatial_gaussian=True needs 2D probs (N, K, H, W), got {shape_str(probs)}")
        opts = NCutOptions(sigma_value=sigma_value, radius=radius, sigma_spatial=sigma_spatial)
        p, img = probs, image
    else:
        opts = NCutOptions(sigma_value=sigma_value)
        p, img = probs.reshape(n, k, 1, -1), image.reshape(n, image.shape[1], 1, -1)
    loss, _, _, _ = ncut(p, img, opts)
    return loss
