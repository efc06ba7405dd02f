"""PyTorch path of the BCE family: the same functions and contract as ``kernels.py``.

The elementwise loss is ``(1 - s) softplus(x) + pw s softplus(-x)``, written so that
confident pixels keep their tiny losses (torch's fused BCE rounds l = log(1 + e^-20) to 0).
On the CPU a test (t - t^2 > 0 for a target that is not 0 or 1) selects, for binary targets,
``pw^t softplus((1 - 2t) x)``: two passes in one buffer. The value check answers that test on
its way (``_core.validate.binary_known``); the path runs it itself only when the check did not.
Soft targets take ``max(x, 0) - x s + log(1 + e^-|x|)`` (pw == 1) or the two softplus
terms. Ignore masks and per-pixel weights multiply the map. The backward is the
hand-derived gradient with in-place ops and every scalar folded into one multiply, so it
allocates one input-sized buffer, the gradient it returns.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from triton_segloss._core.validate import acc_dtype, binary_known


def _smoothed(t, acc, eps):
    t = t.to(acc)
    return t * (1.0 - eps) + 0.5 * eps if eps else t


def _weight(t, w, o, acc):
    valid = None if o.ignore_index is None else t != o.ignore_index
    weight = None if w is None else w.to(acc)
    if valid is not None:
        weight = valid.to(acc) if weight is None else weight * valid
    return valid, weight


def _binary(ts, o, known):
    """(every (smoothed, ignore-zeroed) target is 0 or 1, a scratch buffer of ``ts``'s shape or None);
    checked on the CPU only, where reading the answer costs no device sync (elsewhere the general
    path runs). ``known``: the value check's answer for the unsmoothed targets (``binary_known``),
    or None; zeroing ignored pixels keeps a binary mask binary."""
    if o.label_smoothing or ts.device.type != "cpu" or ts.numel() == 0:
        return False, None
    if known is not None:
        return known, None
    # the targets were checked to lie in [0, 1]: t - t^2 > 0 exactly for the others (fp32 included)
    buf = torch.addcmul(ts, ts, ts, value=-1.0)
    return not float(buf.max()) > 0, buf


def _number(v):
    """A 0-d tensor as a Python number on the CPU (free there; elsewhere it stays a tensor, no sync)."""
    return float(v) if isinstance(v, torch.Tensor) and v.dim() == 0 and v.device.type == "cpu" else v


def _elementwise(x, t, w, pw, o, acc):
    """(elementwise loss map, valid mask or None, smoothed target with 0 where ignored, binary)."""
    known = binary_known(t)  # taken first: the targets as the value check read them
    valid, weight = _weight(t, w, o, acc)
    ts = _smoothed(t, acc, o.label_smoothing)
    if valid is not None:
        ts = torch.where(valid, ts, 0.0)  # an ignore value (e.g. 255) must not reach the formula
    xa = x.to(acc)
    binary, buf = _binary(ts, o, known)
    if binary:
        # t in {0, 1}: l = pw^t softplus((1 - 2t) x), softplus exact below 20 (where l is small: it
        # takes log1p) and x itself above (relative error < 1e-9); both in one buffer (the test's, when
        # the path ran its own)
        if buf is None or buf.shape != xa.shape:
            buf = torch.empty_like(xa)
        loss = torch._C._nn.softplus(torch.addcmul(xa, xa, ts, value=-2.0, out=buf), 1, 20, out=buf)
        if pw is not None:
            loss.mul_(torch.sub(pw.to(acc), 1.0).mul_(ts).add_(1.0))
        elif o.pos_weight != 1.0:
            loss.mul_(torch.add(torch.ones((), dtype=acc, device=x.device), ts, alpha=o.pos_weight - 1.0))
    elif pw is None and o.pos_weight == 1.0:
        # max(x, 0) - x s (exact for s in {0, 1}) first, then log(1 + e^-|x|): tiny losses survive
        loss = xa.clamp_min(0.0).addcmul_(xa, ts, value=-1.0).add_(torch.abs(xa).neg_().exp_().log1p_())
    else:
        if pw is not None:
            pw = pw.to(acc)
        else:
            pw = o.pos_weight
        # (1 - s) sp(x) + pw s sp(-x) with sp = softplus, which takes log1p: torch's fused BCE forms
        # log(1 + e^-|x|) by cancellation and returns 0 for l = log(1 + e^-20) = 2.06e-9
        loss = F.softplus(xa).mul_(1.0 - ts)
        neg = F.softplus(-xa).mul_(ts)
        loss = loss.add_(neg.mul_(pw))
    if weight is not None:
        loss = loss.mul_(weight) if weight.shape == loss.shape else loss * weight
    return loss, valid, ts, binary


def _sides(t, valid, acc):
    tv = t.to(acc)
    pos, neg = tv > 0.5, tv < 0.5
    if valid is not None:
        pos, neg = pos & valid, neg & valid
    return pos, neg


def _count(valid, t, acc):
    if valid is None:
        return torch.full((), float(t.numel()), dtype=acc, device=t.device)
    return valid.sum().to(acc)


def _dot(a, b):
    """sum(a * b) in one read pass."""
    return torch.dot(a.reshape(-1), b.reshape(-1)) if a.is_contiguous() and b.is_contiguous() else (a * b).sum()


def forward(x, t, w, pw, o):
    """Same contract as ``kernels.forward``."""
    acc = acc_dtype(x.dtype)
    none = o.reduction == "none"
    loss, valid, ts, binary = _elementwise(x, t, w, pw, o, acc)
    if o.balance is not None:
        a, b = o.balance
        if binary and valid is None:
            # pos = t, neg = 1 - t: the side sums as dot products, no masks
            n_pos = ts.sum()
            coef = torch.stack([a / n_pos.clamp_min(1), b / (ts.numel() - n_pos).clamp_min(1)])
            if none:
                return loss.mul_(torch.add(coef[1], ts, alpha=_number(coef[0] - coef[1]))), coef
            return _dot(loss, ts) * coef[0] + _dot(loss, torch.rsub(ts, 1.0)) * coef[1], coef
        pos, neg = _sides(t, valid, acc)
        coef = torch.stack([a / pos.sum().clamp_min(1).to(acc), b / neg.sum().clamp_min(1).to(acc)])
        if none:
            return loss * torch.where(pos, coef[0], torch.where(neg, coef[1], 0.0)), coef
        return (torch.where(pos, loss, 0.0).sum() * coef[0] + torch.where(neg, loss, 0.0).sum() * coef[1]), coef
    if valid is not None:
        loss = loss.masked_fill_(~valid, 0.0) if valid.shape == loss.shape else torch.where(valid, loss, 0.0)
    if none:
        return loss, x.new_empty((0,), dtype=acc)
    total = loss.sum()
    if o.reduction == "mean":
        if valid is None and x.device.type == "cpu":  # the count is a Python number: no 0-d tensor ops
            v = 1.0 / max(t.numel(), 1)
            return total.mul_(v), torch.full((2,), v, dtype=acc)
        scale = 1.0 / _count(valid, t, acc).clamp_min(1)
        return total * scale, torch.stack([scale, scale])
    one = torch.ones((), dtype=acc, device=x.device)
    return total, torch.stack([one, one])


def backward(g, coef, x, t, w, pw, o):
    """Same contract as ``kernels.backward``:
    dl/dx = w [(1 - s) sigma - pw s (1 - sigma)] = w [sigma - s] when pw == 1."""
    acc = acc_dtype(x.dtype)
    ts = _smoothed(t, acc, o.label_smoothing)
    dx = torch.sigmoid(x.to(acc))
    if pw is None and o.pos_weight == 1.0:
        dx.sub_(ts)
    else:
        p = o.pos_weight if pw is None else pw.to(acc)
        dx = dx * (1.0 - ts) - p * ts * (1.0 - dx)
    if w is not None:
        w = w.to(acc)
        dx = dx.mul_(w) if w.shape == dx.shape else dx * w
    up = g.to(acc)
    if o.balance is not None:
        if up.dim() == 0:  # the upstream scalar folded into the two side weights: one multiply less
            coef, up = coef * up, None
        # the side weight c0 (t > 1/2), c1 (t < 1/2), 0 (t = 1/2) as sigma (A sigma + B), sigma = sign(t - 1/2),
        # A = (c0 + c1) / 2, B = (c0 - c1) / 2: arithmetic passes (torch.where with a bool mask is about
        # ten times slower than a multiply on the CPU); c0 and c1 to an ulp or two
        side = torch.sub(t.to(acc), 0.5).sign_()
        if dx.device.type == "cpu":
            c0, c1 = (float(c) for c in coef)
            dx.mul_(side).mul_(side.mul(0.5 * (c0 + c1)).add_(0.5 * (c0 - c1)))
        else:
            dx.mul_(side).mul_(torch.addcmul((coef[0] - coef[1]) * 0.5, side, (coef[0] + coef[1]) * 0.5))
        if up is None:
            return _in_layout(dx, x, o, t)
    elif coef.numel():
        up = float(coef[0]) * float(up) if up.dim() == 0 and up.device.type == "cpu" else coef[0] * up
    if isinstance(up, float):
        return _in_layout(dx.mul_(up), x, o, t)
    dx = dx.mul_(_number(up)) if up.dim() == 0 or up.shape == dx.shape else dx * up
    return _in_layout(dx, x, o, t)


def _in_layout(dx, x, o, t):
    """Ignored pixels zeroed; the gradient in the logits' dtype and layout, as the kernels and the fake promise."""
    if o.ignore_index is not None:
        dx.masked_fill_(t == o.ignore_index, 0.0)
    if dx.dtype == x.dtype and dx.stride() == x.stride():
        return dx
    out = torch.empty_like(x)
    return out.copy_(dx)
