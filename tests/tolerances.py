"""Tolerances of the kernels against float64 eager references, in one place.

fp32/fp64: the kernels accumulate in fp32 (fp64) and the reference in fp64;
rel 1e-5 leaves room for summation-order rounding of ~1e-7 per term over the
test sizes here (< 10^4 terms).
fp16/bf16: the logits are rounded to 11 (8) mantissa bits before either side
sees them (the reference is given the same rounded logits), so values agree
to fp32 accuracy; the gradient, though, is stored in the logits' dtype, so it
carries one rounding of 2^-11 (2^-8) relative: the tolerance is a few ulps
of that format.
"""

import torch

# dtype -> (rtol, atol) for the loss value
VALUE = {
    torch.float64: (1e-10, 1e-12),
    torch.float32: (1e-5, 1e-6),
    torch.float16: (1e-5, 1e-6),
    torch.bfloat16: (1e-5, 1e-6),
}
# dtype -> (rtol, atol) for the gradient (stored in the logits' dtype)
GRAD = {
    torch.float64: (1e-10, 1e-12),
    torch.float32: (1e-5, 1e-7),
    torch.float16: (2e-3, 1e-5),
    torch.bfloat16: (1.6e-2, 1e-4),
}


def assert_value(actual, expected, dtype):
    rtol, atol = VALUE[dtype]
    torch.testing.assert_close(actual.double(), expected.double(), rtol=rtol, atol=atol)


def assert_grad(actual, expected, dtype):
    rtol, atol = GRAD[dtype]
    torch.testing.assert_close(actual.double(), expected.double(), rtol=rtol, atol=atol)
