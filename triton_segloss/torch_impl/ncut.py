"""PyTorch path of the soft normalized cut; mirrors ``kernels/ncut.py``.

Also holds the spatial-Gaussian form (seed 003's commented-out lines), which is
a composition of torch ops on every backend: its cost is two (2r+1)^2
convolutions per class, which cuDNN does well, and autograd differentiates it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from triton_segloss._core.validate import acc_dtype


def _acc(p):
    return acc_dtype(p.dtype)


def _dist_weight(p, img, mu, coef):
    """D (N, K, S) and w = exp(-D^2 / sigma^2), with coef = [1 / sigma^2]."""
    acc = _acc(p)
    diff = img.to(acc).unsqueeze(1) - mu.unsqueeze(-1)  # (N, K, CIN, S)
    dist = (diff * diff).sum(2)
    return diff, dist, torch.exp(-(dist * dist) * coef.to(acc))


def ncut_moments(p, img):
    """Same contract as ``kernels.ncut.ncut_moments``; one block of pixels."""
    acc = _acc(p)
    p = p.to(acc)
    a = torch.einsum("nks,ncs->nkc", p, img.to(acc))
    return torch.cat([p.sum(-1, keepdim=True), a], dim=-1).unsqueeze(1)


def ncut_cut(p, img, mu, coef):
    """Same contract as ``kernels.ncut.ncut_cut``."""
    p = p.to(_acc(p))
    diff, dist, w = _dist_weight(p, img, mu, coef)
    pw = p * w
    p2w = p * pw
    dd = dist.unsqueeze(2) * diff  # (N, K, CIN, S)
    h1 = (p2w.unsqueeze(2) * dd).sum(-1)
    h2 = (pw.unsqueeze(2) * dd).sum(-1)
    return torch.cat([p2w.sum(-1, keepdim=True), pw.sum(-1, keepdim=True), h1, h2], dim=-1).unsqueeze(1)


def ncut_backward(p, img, mu, coef, ab, e):
    """Same contract as ``kernels.ncut.ncut_backward``."""
    dtype = p.dtype
    p = p.to(_acc(p))
    diff, _, w = _dist_weight(p, img, mu, coef)
    a, b = ab[:, 0].view(1, -1, 1), ab[:, 1].view(1, -1, 1)
    dp = w * (2 * a * p + b) + (e.unsqueeze(-1) * diff).sum(2)
    return dp.to(dtype)


def gaussian_kernel(radius: int, sigma: float, dtype=torch.float32, device=None):
    """The (1, 1, 2r+1, 2r+1) spatial kernel exp(-(dx^2 + dy^2) / (2 sigma^2)), peak 1.

    The seed calls a ``gaussian_kernel`` it does not define; this is the one of the
    W-Net code the seed comes from (``norm.pdf(dist / sigma) / norm.pdf(0)``), not
    normalised to sum 1. The loss divides two sums that both carry the kernel, so its
    scale only matters against the 1e-6 in the denominator.
    """
    d = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    sq = d.view(-1, 1) ** 2 + d.view(1, -1) ** 2
    return torch.exp(-sq / (2.0 * sigma * sigma)).to(dtype).view(1, 1, 2 * radius + 1, 2 * radius + 1)


def ncut_gaussian(probs, image, radius: int, sigma_spatial: float, sigma_value: float):
    """Seed 003's commented-out form, differentiable torch ops, all classes at once:

        num_k = sum p_k * conv(p_k w_k, G),   den_k = sum p_k * conv(w_k, G),
        loss  = K - sum_k |num_k / (den_k + 1e-6)|

    with the same class-mean weights w as the running form and G the Gaussian above
    (zero padding ``radius``). ``probs`` (N, K, H, W), ``image`` (N, CIN, H, W).
    """
    acc = _acc(probs)
    n, k, h, wd = probs.shape
    p = probs.to(acc)
    img = image.to(acc)
    s = h * wd
    mu = torch.einsum("nkhw,nchw->nkc", p, img) / s / (p.mean(dim=(2, 3)).unsqueeze(-1) + 1e-5)
    diff = img.unsqueeze(1) - mu[..., None, None]  # (N, K, CIN, H, W)
    dist = (diff * diff).sum(2)
    w = torch.exp(-(dist * dist) / (sigma_value * sigma_value))
    g = gaussian_kernel(radius, sigma_spatial, acc, probs.device)
    conv = lambda t: F.conv2d(t.reshape(n * k, 1, h, wd), g, padding=radius).view(n, k, h, wd)  # noqa: E731
    num = (p * conv(p * w)).sum(dim=(0, 2, 3))
    den = (p * conv(w)).sum(dim=(0, 2, 3))
    return k - (num / (den + 1e-6)).abs().sum()

