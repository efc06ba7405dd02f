"""PyTorch path of the NCut family: the same functions and contract as ``kernels.py``.

The same math, vectorised over classes: the class means by one ``einsum``, the
spatial form's three Gaussian filters (``G * (p w)``, ``G * w``, ``G * p``) as one
grouped ``conv2d`` each, the gradient written out by hand as in the kernels (the
ops run with autocast off, see ``_core.op``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from triton_segloss._core.validate import acc_dtype


def _gaussian_kernel(radius: int, sigma: float, dtype, device):
    """The (1, 1, 2r+1, 2r+1) spatial kernel exp(-(dx^2 + dy^2) / (2 sigma^2)), peak 1.

    The seed calls a ``gaussian_kernel`` it does not define; this is the one of the
    W-Net code the seed comes from (``norm.pdf(dist / sigma) / norm.pdf(0)``), not
    normalised to sum 1. The loss divides two sums that both carry the kernel, so its
    scale only matters against the 1e-6 in the denominator.
    """
    d = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    sq = d.view(-1, 1) ** 2 + d.view(1, -1) ** 2
    return torch.exp(-sq / (2.0 * sigma * sigma)).to(dtype).view(1, 1, 2 * radius + 1, 2 * radius + 1)


def _weights(p, img, mu, o):
    """diff (N, K, CIN, H, W), D and w = exp(-D^2 / sigma^2) (N, K, H, W)."""
    diff = img.unsqueeze(1) - mu[..., None, None]
    dist = (diff * diff).sum(2)
    return diff, dist, torch.exp(-(dist * dist) / (o.sigma_value * o.sigma_value))


def _filters(p, w, o):
    """(q, u, v) = (G * (p w), G * w, G * p); the running form (no radius) has G = delta."""
    if o.radius is None:
        return p * w, w, p
    n, k, h, wd = p.shape
    g = _gaussian_kernel(o.radius, o.sigma_spatial, p.dtype, p.device)

    def conv(t):
        return F.conv2d(t.reshape(n * k, 1, h, wd), g, padding=o.radius).view(n, k, h, wd)

    return conv(p * w), conv(w), conv(p)


def forward(probs, image, o):
    """Same contract as ``kernels.forward``."""
    acc = acc_dtype(probs.dtype)
    p, img = probs.to(acc), image.to(acc)
    K = p.shape[1]
    s = p.shape[2] * p.shape[3]
    mu_den = p.sum((2, 3)) + 1e-5 * s  # B + 1e-5 S: the seed's mean(p) + 1e-5, times S
    mu = torch.einsum("nkhw,nchw->nkc", p, img) / mu_den.unsqueeze(-1)
    diff, dist, w = _weights(p, img, mu, o)
    q, u, v = _filters(p, w, o)
    num = (p * q).sum((0, 2, 3))
    den = (p * u).sum((0, 2, 3))
    de = den + 1e-6
    r = num / de
    sgn = torch.sign(r)
    a, b = -sgn / de, sgn * num / (de * de)
    # dL/dw = v (a p + b); through w = exp(-D^2 / sigma^2) and D = |I - mu|^2 to mu, over B + 1e-5 S
    dldw = v * (a.view(1, -1, 1, 1) * p + b.view(1, -1, 1, 1))
    h = torch.einsum("nkhw,nkchw->nkc", dldw * w * dist, diff)
    e = (4.0 / (o.sigma_value * o.sigma_value)) * h / mu_den.unsqueeze(-1)
    loss = K - r.abs().sum()
    return loss, mu, torch.stack([a, b], dim=-1), e


def backward(g, mu, ab, e, probs, image, o):
    """Same contract as ``kernels.backward``:
    dL/dp = g [a (q + v w) + b u + sum_c E_c (I_c - mu_c)] (running form: g [w (2 a p + b) + ...])."""
    acc = acc_dtype(probs.dtype)
    p, img = probs.to(acc), image.to(acc)
    diff, _, w = _weights(p, img, mu, o)
    q, u, v = _filters(p, w, o)
    a, b = ab[:, 0].view(1, -1, 1, 1), ab[:, 1].view(1, -1, 1, 1)
    dp = a * (q + v * w) + b * u + torch.einsum("nkc,nkchw->nkhw", e, diff)
    dp = dp * g.to(acc)
    out = torch.empty_like(probs)  # the probabilities' layout, as the kernels and the fake promise
    return out.copy_(dp)
