"""``_core.validate.label_range``: the PyTorch path reuses the value check's aminmax of the labels
(one pass fewer per call on CPU) only for the very labels the check just read, unchanged."""

import torch
import torch.nn.functional as F

import triton_segloss as tsl
from triton_segloss._core import validate


def test_reuses_the_checks_range_once():
    t = torch.randint(0, 5, (2, 7, 9))
    validate.check_label_values(t, 5, None)
    assert validate._LAST_RANGE[0] is not None
    lo, hi = (int(v) for v in torch.aminmax(t))
    assert validate.label_range(t.reshape(2, 1, -1)) == (lo, hi)  # a view of the same labels
    assert validate._LAST_RANGE[0] is None  # taken once


def test_other_or_modified_labels_are_read_again():
    t = torch.randint(0, 5, (2, 7, 9))
    validate.check_label_values(t, 5, None)
    t[0, 0, 0] = -100  # in place: the version counter moves
    assert validate.label_range(t) == (-100, int(t.max()))
    u = torch.randint(0, 3, (2, 7, 9))
    validate.check_label_values(t.clone().clamp_(0), 5, None)
    assert validate.label_range(u) == tuple(int(v) for v in torch.aminmax(u))
    validate.check_label_values(u, 3, None)
    assert validate.label_range(u.to(torch.uint8)) == tuple(int(v) for v in torch.aminmax(u))  # a copy


def test_losses_after_a_clean_call_see_ignored_labels():
    """A call on all-valid labels, then one whose labels hold ignore_index: each gets its own range
    (the second must mask), on the PyTorch path, against F.cross_entropy and the Triton kernels."""
    x = torch.randn(2, 4, 6, 5, dtype=torch.float64)
    good = torch.randint(0, 4, (2, 6, 5))
    bad = good.clone()
    bad[:, :2] = -100
    fns = (lambda y: tsl.cross_entropy(x, y), lambda y: tsl.dice_loss(x, y, mode="multiclass", ignore_index=-100),
           lambda y: tsl.focal_loss(x, y, mode="multiclass", ignore_index=-100))
    for y in (good, bad, good):
        with tsl.use_backend("torch"):
            got = [f(y) for f in fns]
        with tsl.use_backend("triton"):
            want = [f(y) for f in fns]
        torch.testing.assert_close(got[0], F.cross_entropy(x, y, ignore_index=-100))
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
