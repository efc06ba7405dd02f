"""The PyTorch path: the same math as the Triton kernels, written with torch ops.

Used for CPU tensors when Triton's interpreter is off, or when forced with
``TRITON_SEGLOSS_BACKEND=torch`` / ``use_backend("torch")``. Each function
mirrors its kernel launcher's signature and returns the same buffers.
"""
