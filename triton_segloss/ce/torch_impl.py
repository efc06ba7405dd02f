"""PyTorch path of the cross-entropy family: the same functions and contract as ``kernels.py``.

No log-softmax tensor and no one-hot: the logits relative to a per-pixel shift s, u = x - s, in
a buffer, e^u in place (arguments clamped to the normal range, see ``_core.shifted_exp.exp_``) and its class sum; the
label's entries by ``gather`` / ``scatter_`` along the classes. s is the label's logit x_y on the
CPU (then u_y = 0 and no max pass; the max where that would overflow, and off the CPU). The
label's slot is set to 0 after the exp, so the class sum is d_o = d' (1 - p_y) without
cancellation (d' = d_o + e_y the full sum) and -log p_y = log d' - u_y. The balanced class
weights come from a class histogram made with ``index_add_`` on the device (``bincount`` would
read its input's maximum back to the host on CUDA; on the CPU, where that read is free, it is
used). On the CPU one ``aminmax`` of the labels tells whether every pixel is valid; then no mask
is formed and nothing is masked. The backward turns e into the gradient in place: one broadcast
multiply by the per-pixel scale over d' and a scatter of ``-(1 - p_y)`` times that scale into
the label's slot. e comes from the forward on the eager route (``_core/tape.py``), else it is
recomputed the same way. Every other op works on per-pixel (N, 1, S) maps, a C-th of the
logits' size; scalars are Python numbers on the CPU.
"""

from __future__ import annotations

import torch

from triton_segloss._core import tape
from triton_segloss._core.shifted_exp import at_label as _at
from triton_segloss._core.shifted_exp import exp_ as _exp_
from triton_segloss._core.shifted_exp import put_label_ as _put_label_
from triton_segloss._core.shifted_exp import shifted_exp as _shifted_exp
from triton_segloss._core.validate import acc_dtype, label_range


def _stats_shape(N, C, S):
    from .ops import stats_shape  # ops imports this module

    return stats_shape(N, C, S)


def _labels(x, t, o):
    """(labels for gathers, in [0, C); valid mask, or None when every pixel is valid), (N, 1, S).

    On the CPU one ``aminmax`` (reading it costs no device sync there; the value check's own, see
    ``label_range``) tells whether every label lies in [0, C) with ``ignore_index`` outside the
    labels' range; then no mask is formed and the ops below skip their masking."""
    C = x.shape[1]
    y = t.to(torch.int64)
    ii = o.ignore_index
    if y.device.type == "cpu" and y.numel():
        lo, hi = label_range(y)
        if 0 <= lo and hi < C and (ii is None or not lo <= ii <= hi):
            return y, None
    yc = y.clamp(0, C - 1)
    valid = yc == y  # in [0, C)
    if ii is not None:
        valid &= y != ii
    return yc, valid


def _balanced(w, y, valid, C, acc):
    """w'_c / N_c with N_c the valid pixels labelled c, and 0 for a class absent from the batch."""
    if valid is None:  # CPU only (see _labels): bincount reads its maximum on the host
        counts = torch.bincount(y.reshape(-1), minlength=C).to(acc)
    else:
        counts = torch.zeros(C, dtype=acc, device=y.device).index_add_(0, y.reshape(-1), valid.reshape(-1).to(acc))
    w = torch.ones(C, dtype=acc, device=y.device) if w is None else w.to(acc)
    return torch.where(counts > 0, w / counts.clamp_min(1), 0.0)


def _mean(sl, swt, acc, device):
    """(loss, scale (1,)): sum / total weight and 1 / total weight, both 0 when the total weight is 0.
    ``swt`` a number or a 0-d tensor; on the CPU it is read as a number (free there)."""
    if not isinstance(swt, torch.Tensor) or swt.device.type == "cpu":
        v = float(swt)
        if v == 0:
            return torch.zeros_like(sl), torch.zeros(1, dtype=acc, device=device)
        return sl / v, torch.full((1,), 1.0 / v, dtype=acc, device=device)
    nz = swt != 0
    den = torch.where(nz, swt, 1.0)
    return torch.where(nz, sl / den, 0.0), torch.where(nz, 1.0 / den, 0.0).reshape(1)


def forward(x, t, w, pw, o):
    """(loss, coef, stats), the contract of ``kernels.forward`` (``stats`` zeros: not read here): with e_c = e^(x_c - s) and d = sum_c e_c,
    -log p_c = log d - (x_c - s) (see ``_shifted_exp`` for s): the kernels' (max x - x_y) + log d
    for s = max x, log d alone for s = x_y; no lse - x_y cancellation either way."""
    acc = acc_dtype(x.dtype)
    C = x.shape[1]
    eps = o.label_smoothing
    y, valid = _labels(x, t, o)
    wc = None if w is None else w.to(acc)
    if o.balance:
        wc = _balanced(w, y, valid, C, acc)
    # the label's slot of e left out of d (d_o = d' (1 - p_y), see ``backward``): what the backward
    # reads, kept for it on the eager route; d' = d_o + e_y
    e, do, uy, su = _shifted_exp(x, y, wc, acc, smooth=eps > 0, others=True, keep=True)
    ey = None if uy is None else _exp_(uy.clone())  # the backward's e_y, bit for bit
    if ey is None:
        log_d = torch.log1p(do)  # log d' = log(1 + d_o) for s = x_y
        nll = log_d
    else:
        log_d = (do + ey).log_()
        nll = log_d - uy  # (N, 1, S)
    tape.keep("ce", e=e, do=do, ey=ey, y=y, valid=valid)
    wy = None if wc is None else _at(wc, y)
    loss = nll if wy is None else nll * wy
    if eps > 0:
        # sum_c w_c (-log p_c) = W log d - sum_c w_c (x_c - s): a sum of terms >= 0, no cancellation
        loss = loss * (1.0 - eps)  # a tensor of its own: log_d (maybe nll) becomes the smoothing term
        wsum = C if wc is None else wc.sum()
        loss.add_(log_d.mul_(wsum).sub_(su), alpha=eps / C)
    wt = wy
    if pw is not None:
        m = pw.to(acc)
        loss = loss * m
        wt = m if wt is None else wt * m
    if valid is not None:
        loss = torch.where(valid, loss, 0.0)
    extra = [wc] if o.balance else []
    stats = tape.unread_zeros(x, _stats_shape(x.shape[0], C, x.shape[2]), acc)
    if o.reduction == "none":
        coef = torch.cat([torch.ones(1, dtype=acc, device=x.device)] + extra) if o.balance else loss.new_empty((0,))
        return loss[:, 0], coef, stats
    sl = loss.sum()
    if o.reduction == "mean":
        if wt is None:
            swt = valid.sum(dtype=acc) if valid is not None else loss.numel()
        else:
            swt = (wt if valid is None else torch.where(valid, wt, 0.0)).sum()
        total, scale = _mean(sl, swt, acc, x.device)
    else:
        total, scale = sl, torch.ones(1, dtype=acc, device=x.device)
    return total, torch.cat([scale] + extra) if extra else scale, stats


def _pixel_scale(g, coef, pw, acc, o):
    """m * upstream * the finisher's scale per pixel, (N, 1, S), or a number (on the CPU, uniform)."""
    if o.reduction == "none":
        s = g.to(acc).unsqueeze(1)
    elif g.device.type == "cpu":
        s = float(coef[0]) * float(g)  # free on the CPU: the scalars stay out of the (N, C, S) passes
    else:
        s = coef[0] * g.to(acc)
    return s if pw is None else pw.to(acc) * s


def backward(g, coef, stats, x, t, w, pw, o):
    """Same contract as ``kernels.backward``:
    dl/dx_c = m [(1 - eps) w_y (p_c - [c == y]) + eps / C (W p_c - w_c)],
    p_c = e_c / d' with e_c = e^(x_c - s) (``_shifted_exp``). The label's slot of e is 0, so its
    class sum d_o = d' (1 - p_y) without cancellation where p_y ~ 1 and d' = d_o + e_y; e becomes
    the gradient in place. Where not valid the gradient is 0 (one fill at the end)."""
    acc = acc_dtype(x.dtype)
    C = x.shape[1]
    eps = o.label_smoothing
    kept = tape.taken("ce")  # the forward's e, d_o, e_y on the eager route (_core/tape.py)
    if kept is None:
        y, valid = _labels(x, t, o)
        e, do, uy, _ = _shifted_exp(x, y, None, acc, others=True, keep=True)
        ey = None if uy is None else _exp_(uy)  # e_y = 1 for s = x_y
    else:
        e, do, ey, y, valid = (kept[k] for k in ("e", "do", "ey", "y", "valid"))
    wc = coef[1:] if o.balance else (None if w is None else w.to(acc))
    s = _pixel_scale(g, coef, pw, acc, o)
    a = s if wc is None else _at(wc, y) * s  # the factor of p_c - [c == y]
    if eps > 0:
        a = a * (1.0 - eps)
    d = do + 1.0 if ey is None else do + ey
    r = d.reciprocal_()
    if eps > 0:
        b = s * (eps / C)  # eps / C (W p_c - w_c) per unit m g
        wv = torch.ones(C, dtype=acc, device=x.device) if wc is None else wc
        wsum = wv.sum()
        py = r if ey is None else ey * r
        e.mul_((a + b * wsum) * r)
        e = e.sub_(wv.view(1, -1, 1) * b) if isinstance(b, float) else e.addcmul_(b, wv.view(1, -1, 1), value=-1.0)
        at_y = b * (wsum * py - _at(wv, y)) - a * do * r  # 1 - p_y = d_o / d'
    else:
        ar = r.mul_(a)
        e.mul_(ar)
        at_y = do.mul_(ar).neg_()  # -a (1 - p_y)
    _put_label_(e, y, at_y)
    if valid is not None:
        e.masked_fill_(~valid, 0.0)  # 0, not 0 * p, where not valid (a NaN logit there stays out)
    if e.dtype == x.dtype and e.stride() == x.stride():
        return e
    out = torch.empty_like(x)  # the logits' layout, as the kernels and the fake promise
    return out.copy_(e)
