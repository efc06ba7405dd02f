"""Plain eager references, written for obviousness, one module per family.

Never imported by the library. They compute in float64 and use autograd for
gradients, so a test compares the kernels against math, not against a copy of
the kernels' algebra.
"""
