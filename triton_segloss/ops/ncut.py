"""Custom ops of the soft normalized cut (class-mean form; see ``kernels/ncut.py``).

``ncut_forward`` returns ``(loss, mu, mu_den, cut)``: the 0-d loss, the class
means mu (N, K, CIN), their denominators ``B + 1e-5 S`` (N, K) and the summed
cut partials (N, K, 2 + 2 CIN) = [num, den, H1_c.., H2_c..]. The backward needs
nothing else: no per-pixel tensor is kept.
"""

from __future__ import annotations

import torch
from torch import Tensor

from triton_segloss._core.validate import acc_dtype
from . import _dispatch


def _acc(dtype: torch.dtype) -> torch.dtype:
    return acc_dtype(dtype)


def _inv_sigma2(sigma_value: float, dtype, device) -> Tensor:
    """[1 / sigma^2] as a device tensor (a Python float kernel argument would be rounded to fp32)."""
    return torch.full((1,), 1.0 / (sigma_value * sigma_value), dtype=dtype, device=device)


@torch.library.custom_op("triton_segloss::ncut_forward", mutates_args=())
def ncut_forward(probs: Tensor, image: Tensor, sigma_value: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    impl = _dispatch.impl("ncut", probs.device)
    N, K, S = probs.shape
    moments = impl.ncut_moments(probs, image).sum(1)  # (N, K, 1 + CIN): fixed-order sum
    mu_den = moments[..., 0] + 1e-5 * S  # B + 1e-5 S: the seed's mean(p) + 1e-5, times S
    mu = (moments[..., 1:] / mu_den.unsqueeze(-1)).contiguous()
    coef = _inv_sigma2(sigma_value, mu.dtype, probs.device)
    cut = impl.ncut_cut(probs, image, mu, coef).sum(1)  # (N, K, 2 + 2 CIN)
    num, den = cut[..., 0].sum(0), cut[..., 1].sum(0)
    loss = K - (num / (den + 1e-6)).abs().sum()
    return loss, mu, mu_den, cut


@ncut_forward.register_fake
def _(probs, image, sigma_value):
    acc = _acc(probs.dtype)
    N, K, _ = probs.shape
    cin = image.shape[1]
    return (probs.new_empty((), dtype=acc), probs.new_empty((N, K, cin), dtype=acc),
            probs.new_empty((N, K), dtype=acc), probs.new_empty((N, K, 2 + 2 * cin), dtype=acc))


@torch.library.custom_op("triton_segloss::ncut_backward", mutates_args=())
def ncut_backward(
    grad: Tensor, mu: Tensor, mu_den: Tensor, cut: Tensor, probs: Tensor, image: Tensor, sigma_value: float
) -> Tensor:
    """With r_k = Num_k / (Den_k + 1e-6) and L = K - sum_k |r_k|:

        a_k = dL/dNum_k = -g sign(r_k) / (Den_k + 1e-6)
        b_k = dL/dDen_k =  g sign(r_k) Num_k / (Den_k + 1e-6)^2
        E_nkc = dL/dmu_nkc / (B_nk + 1e-5 S) = 4 / sigma^2 (a_k H1_nkc + b_k H2_nkc) / mu_den_nk
    """
    impl = _dispatch.impl("ncut", probs.device)
    cin = image.shape[1]
    g = grad.to(cut.dtype)
    num, den = cut[..., 0].sum(0), cut[..., 1].sum(0)
    den_eps = den + 1e-6
    sign = torch.sign(num / den_eps)
    a = -g * sign / den_eps
    b = g * sign * num / (den_eps * den_eps)
    h1, h2 = cut[..., 2:2 + cin], cut[..., 2 + cin:]
    e = (4.0 / (sigma_value * sigma_value)) * (a.view(1, -1, 1) * h1 + b.view(1, -1, 1) * h2)
    e = (e / mu_den.unsqueeze(-1)).contiguous()
    ab = torch.stack([a, b], dim=-1).contiguous()
    coef = _inv_sigma2(sigma_value, cut.dtype, probs.device)
    dp = impl.ncut_backward(probs, image, mu, coef, ab, e)
    return _dispatch.like(dp, probs)


@ncut_backward.register_fake
def _(grad, mu, mu_den, cut, probs, image, sigma_value):
    return torch.empty_like(probs)


def _setup_context(ctx, inputs, output):
    probs, image, sigma_value = inputs
    _, mu, mu_den, cut = output
    ctx.save_for_backward(mu, mu_den, cut, probs, image)
    ctx.sigma_value = sigma_value


def _backward(ctx, grad_loss, grad_mu, grad_mu_den, grad_cut):
    mu, mu_den, cut, probs, image = ctx.saved_tensors
    dp = None
    if ctx.needs_input_grad[0]:
        dp = ncut_backward(grad_loss, mu, mu_den, cut, probs, image, ctx.sigma_value)
    return dp, None, None


ncut_forward.register_autograd(_backward, setup_context=_setup_context)
