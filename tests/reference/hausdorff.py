"""Eager float64 references for the distance-map losses (Hausdorff DT loss, boundary loss).

Written for obviousness: scipy's exact EDT per (image, class) slice, explicit one-hot
targets, Python branches for the documented special cases, autograd for the gradient.
Never imported by the library.

Conventions restated:
* the field of a mask m is edt(m) + edt(~m) (each pixel's distance to the other side), and 0
  when m is empty or full in that image and class (MONAI's rule);
* phi (boundary loss) = edt(~m) on ~m and -(edt(m) - 1) on m (the paper's code), 0 when m is
  empty or full;
* a row (image, class) is the mean over its pixels; "mean" averages the kept rows, "sum" adds
  them (pooled: divided by N), "none" is (N, K) per image or (1, K) pooled.
"""

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt


def _slices(mask):
    m = mask.detach().cpu().numpy().astype(bool)
    return m, np.zeros(m.shape, dtype=np.float64)


def field(mask, spacing=None):
    """edt(m) + edt(~m) per (n, c) slice; 0 where the slice is empty or full."""
    m, out = _slices(mask)
    for n in range(m.shape[0]):
        for c in range(m.shape[1]):
            s = m[n, c]
            if s.any() and not s.all():
                out[n, c] = distance_transform_edt(s, sampling=spacing) + distance_transform_edt(~s, sampling=spacing)
    return torch.from_numpy(out)


def distance_to(mask, spacing=None):
    """Each pixel's distance to the nearest True pixel of its slice (0 on it), inf if the slice has none."""
    m, out = _slices(mask)
    for n in range(m.shape[0]):
        for c in range(m.shape[1]):
            s = m[n, c]
            out[n, c] = distance_transform_edt(~s, sampling=spacing) if s.any() else np.inf
    return torch.from_numpy(out)


def phi(mask, spacing=None):
    """The paper's signed distance: edt(neg) * neg - (edt(pos) - 1) * pos; 0 if the slice is empty or full."""
    m, out = _slices(mask)
    for n in range(m.shape[0]):
        for c in range(m.shape[1]):
            s = m[n, c]
            if s.any() and not s.all():
                out[n, c] = distance_transform_edt(~s, sampling=spacing) * ~s - \
                    (distance_transform_edt(s, sampling=spacing) - 1) * s
    return torch.from_numpy(out)


def probs_onehot(logits, target, mode, from_logits=True):
    x = logits.double()
    n, c = x.shape[:2]
    if mode == "multiclass":
        y = target.long().reshape((n,) + tuple(x.shape[2:]))
        t = torch.stack([(y == k) for k in range(c)], dim=1).double()
        p = torch.softmax(x, 1) if from_logits else x
    else:
        t = target.double().reshape(x.shape)
        p = torch.sigmoid(x) if from_logits else x
    return p, t


def _reduce(l, include_background, per_image, reduction):
    c = l.shape[1]
    if not include_background and c > 1:
        l = l[:, 1:]
    rows = l.flatten(2).mean(dim=2)  # (N, K)
    if not per_image:
        rows = rows.mean(dim=0, keepdim=True)  # pooled over the batch (same pixel count per image)
    if reduction == "none":
        return rows
    if reduction == "sum":
        return rows.sum()
    return rows.mean()


def hausdorff_dt_loss(logits, target, *, mode="binary", alpha=2.0, include_background=False, per_image=False,
                      from_logits=True, spacing=None, reduction="mean"):
    p, t = probs_onehot(logits, target, mode, from_logits)
    pred_mask = p.detach() > 0.5
    d = field(pred_mask, spacing) ** alpha + field(t > 0.5, spacing) ** alpha
    return _reduce((p - t) ** 2 * d, include_background, per_image, reduction)


def boundary_loss(logits, target, *, mode="multiclass", include_background=False, per_image=False,
                  from_logits=True, spacing=None, reduction="mean"):
    p, t = probs_onehot(logits, target, mode, from_logits)
    return _reduce(p * phi(t > 0.5, spacing), include_background, per_image, reduction)
