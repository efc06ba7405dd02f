"""Eager float64 reference of clDice (Shit et al. 2021, as MONAI's SoftclDiceLoss 1.6).

Independent of the library: erosion and dilation are written with explicit padding
(+inf for the min, -inf for the max) and shifted slices, not pools; autograd gives the gradient.
"""

import torch
import torch.nn.functional as F


def _shifts(x, pad_value, offsets):
    nd = x.dim() - 2
    xp = F.pad(x, (1, 1) * nd, value=pad_value)
    size = x.shape[2:]
    out = []
    for off in offsets:
        sl = [slice(None), slice(None)] + [slice(1 + o, 1 + o + s) for o, s in zip(off, size)]
        out.append(xp[tuple(sl)])
    return out


def erode(x):
    nd = x.dim() - 2
    offs = [(0,) * nd]
    for a in range(nd):
        for s in (-1, 1):
            o = [0] * nd
            o[a] = s
            offs.append(tuple(o))
    return torch.stack(_shifts(x, float("inf"), offs)).amin(0)


def dilate(x):
    nd = x.dim() - 2
    import itertools
    offs = list(itertools.product((-1, 0, 1), repeat=nd))
    return torch.stack(_shifts(x, float("-inf"), offs)).amax(0)


def soft_skel(img, iterations):
    skel = torch.relu(img - dilate(erode(img)))
    for _ in range(iterations):
        img = erode(img)
        delta = torch.relu(img - dilate(erode(img)))
        skel = skel + torch.relu(delta - skel * delta)
    return skel


def _prep(logits, target, mode, include_background, from_logits):
    x = logits.double()
    c = x.shape[1]
    if mode == "multiclass":
        p = torch.softmax(x, 1) if from_logits else x
        t = F.one_hot(target.long().reshape((x.shape[0],) + x.shape[2:]), c).movedim(-1, 1).double()
    else:
        p = torch.sigmoid(x) if from_logits else x
        t = target.double().reshape(x.shape)
    if not include_background and c > 1:
        p, t = p[:, 1:], t[:, 1:]
    return p, t


def _red(v, reduction):
    return {"mean": v.mean, "sum": v.sum}.get(reduction, lambda: v)()


def cldice_loss(logits, target, *, mode="binary", iterations=3, smooth=1.0, eps=1e-4, include_background=True,
                from_logits=True, reduction="mean"):
    p, t = _prep(logits, target, mode, include_background, from_logits)
    sp = soft_skel(p, iterations)
    st = soft_skel(t, iterations)
    dims = tuple(range(1, p.dim()))
    tprec = ((sp * t).sum(dims) + smooth) / (sp.sum(dims) + smooth)
    tsens = ((st * p).sum(dims) + smooth) / (st.sum(dims) + smooth)
    return _red(1 - 2 * tprec * tsens / (tprec + tsens + eps), reduction)


def dice_cldice_loss(logits, target, *, mode="binary", iterations=3, alpha=0.5, smooth=1.0, eps=1e-4,
                     include_background=True, from_logits=True, reduction="mean"):
    p, t = _prep(logits, target, mode, include_background, from_logits)
    dims = tuple(range(2, p.dim()))
    dice = 1 - (2 * (p * t).sum(dims) + smooth) / (p.sum(dims) + t.sum(dims) + smooth)
    cl = cldice_loss(logits, target, mode=mode, iterations=iterations, smooth=smooth, eps=eps,
                     include_background=include_background, from_logits=from_logits, reduction=reduction)
    return (1 - alpha) * _red(dice, reduction) + alpha * cl
