"""``_core.validate.binary_known``: the BCE PyTorch path reuses the value check's answer to "is every
target 0 or 1?" (one write and one read pass fewer per call on CPU), only for the very targets the
check just read, unchanged, and the answer is exact."""

import pytest
import torch
import torch.nn.functional as F

import triton_segloss as tsl
from triton_segloss._core import validate


def _answer(t):
    validate.check_binary_values(t, None, binary=True)
    return validate.binary_known(t)


def _edge_values(dtype):
    """Values at and next to 0, 1/2 and 1 (the ends of the range and where t - t^2 is largest), the
    smallest subnormal, and -0.0."""
    one, zero, half = (torch.tensor(v, dtype=dtype) for v in (1.0, 0.0, 0.5))
    tiny = torch.nextafter(zero, one)
    return [zero, one, -zero, tiny, torch.nextafter(one, zero), torch.nextafter(half, zero), half,
            torch.nextafter(tiny, one)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_answer_is_exactly_zero_or_one(dtype):
    vals = _edge_values(dtype)
    for v in vals:
        t = torch.stack([torch.zeros((), dtype=dtype), v, torch.ones((), dtype=dtype)])
        want = bool(((t == 0) | (t == 1)).all())
        assert _answer(t) is want, (dtype, float(v))
    soft = torch.rand(64, dtype=torch.float64).to(dtype)
    assert _answer(soft) is bool(((soft == 0) | (soft == 1)).all())
    assert _answer((torch.rand(3, 50) > 0.5).to(dtype)) is True


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_out_of_range_still_raises(dtype):
    one, zero = torch.ones((), dtype=dtype), torch.zeros((), dtype=dtype)
    for bad in (torch.nextafter(one, 2 * one), torch.nextafter(zero, -one), -one, torch.tensor(float("nan")),
                torch.tensor(float("inf")), torch.tensor(300.0)):
        t = torch.stack([zero, bad.to(dtype)])
        with pytest.raises(ValueError, match="must hold values in"):
            validate.check_binary_values(t, None, binary=True)
        assert validate.binary_known(t) is None


def test_integer_masks_and_ignore_values():
    assert _answer(torch.randint(0, 2, (4, 5), dtype=torch.uint8)) is True
    b = torch.rand(4, 5) > 0.5
    validate.check_binary_values(b, None, binary=True)
    assert validate.binary_known(b.view(torch.uint8)) is True  # the view the loss reads
    t = torch.tensor([0.0, 1.0, 255.0])
    validate.check_binary_values(t, 255.0, binary=True)  # ignored values: no answer, the path tests itself
    assert validate.binary_known(t) is None


def test_taken_once_and_only_for_the_same_values():
    t = (torch.rand(2, 1, 8, 8) > 0.5).float()
    validate.check_binary_values(t, None, binary=True)
    assert validate.binary_known(t.reshape(2, 1, -1)) is True  # a view of the same values
    assert validate.binary_known(t) is None  # taken once
    validate.check_binary_values(t, None, binary=True)
    t[0, 0, 0, 0] = 0.25  # in place: the version counter moves
    assert validate.binary_known(t) is None
    validate.check_binary_values(t, None, binary=True)
    assert validate.binary_known(t.clone()) is None  # a copy
    validate.check_binary_values(t, None)  # asked without ``binary``: no answer recorded
    assert validate.binary_known(t) is None


@pytest.mark.parametrize("mask_dtype", [torch.float32, torch.uint8, torch.bool])
def test_losses_alternating_binary_and_soft_targets(mask_dtype):
    """Binary, soft, binary targets in turn through the PyTorch path: each gets its own answer, against
    torch's fused BCE (same values) and the Triton kernels (interpreted), in value and gradient."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64, generator=gen)
    binary = torch.rand(x.shape, generator=gen) > 0.5
    soft = torch.rand(x.shape, generator=gen, dtype=torch.float64)
    cases = [binary.to(mask_dtype)]
    if mask_dtype == torch.float32:
        cases.append(soft.float())
    cases.append((~binary).to(mask_dtype))
    for t in cases:
        tf = t.to(torch.float64)
        want = F.binary_cross_entropy_with_logits(x, tf)
        for backend in ("torch", "triton"):
            xx = x.clone().requires_grad_()
            with tsl.use_backend(backend):
                got = tsl.bce_with_logits(xx, t)
                got.backward()
            xr = x.clone().requires_grad_()
            F.binary_cross_entropy_with_logits(xr, tf).backward()
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
            torch.testing.assert_close(xx.grad, xr.grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("top", [1.0, 0.25])
def test_range_read_from_the_bits_is_exact(dtype, top):
    """The CPU range checks read one ``aminmax`` of the values' bit patterns: it must say "in
    [+0, top]" exactly when every value is, and leave -0.0 to the float pass (it says no)."""
    hi = torch.tensor(top, dtype=dtype)
    zero = torch.zeros((), dtype=dtype)
    vals = [zero, hi, torch.nextafter(hi, 2 * hi), torch.nextafter(hi, zero), torch.nextafter(zero, hi),
            torch.nextafter(zero, -hi), -zero, -hi, torch.tensor(float("inf"), dtype=dtype),
            torch.tensor(float("-inf"), dtype=dtype), torch.tensor(float("nan"), dtype=dtype),
            -torch.tensor(float("nan"), dtype=dtype), torch.tensor(0.125, dtype=dtype)]
    for v in vals:
        t = torch.stack([zero, v, hi])
        want = bool(((t >= 0) & (t <= top) & ~torch.signbit(t)).all())  # NaN fails t >= 0
        assert validate._in_unit_range_bits(t, top)[0] is want, (dtype, top, float(v))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_range_checks_accept_negative_zero_and_reject_the_rest(dtype):
    """-0.0 is a valid mask value and probability (the float pass answers it); values outside
    [0, 1] and NaN still raise, from both checks that read the bits."""
    zero, one = torch.zeros((), dtype=dtype), torch.ones((), dtype=dtype)
    ok = torch.stack([-zero, one, zero, torch.tensor(0.5, dtype=dtype)])
    validate.check_binary_values(ok, None)
    validate.check_probabilities(ok)
    assert _answer(ok) is False  # 0.5 is soft
    assert _answer(ok[:3]) is True  # -0.0, 1, 0: binary
    for bad in (torch.nextafter(one, 2 * one), torch.nextafter(zero, -one), torch.tensor(float("nan"), dtype=dtype),
                -torch.tensor(float("nan"), dtype=dtype), torch.tensor(float("inf"), dtype=dtype)):
        t = torch.stack([zero, bad])
        with pytest.raises(ValueError, match="must hold values in"):
            validate.check_binary_values(t, None)
        with pytest.raises(ValueError, match="probabilities"):
            validate.check_probabilities(t)
