"""Option values given as Python numbers, as device tensors made once per (device, dtype, values).

On CUDA, ``torch.tensor(list, device=...)`` is a pageable host-to-device copy that
synchronises the stream; done per call it breaks the launch budget and CUDA-graph
capture. Class weights, per-class alphas and class tables come from here instead:
the first call for a value builds the tensor, every later call reuses it.
"""

from __future__ import annotations

import threading

import torch

_MAX = 256  # distinct entries kept; the oldest goes first
_TENSORS: dict = {}
_LOCK = threading.Lock()


def device_values(values: tuple, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``torch.tensor(values, dtype=dtype, device=device)``, built once per key and reused.

    The tensor is shared: callers must never write into it.
    """
    key = (torch.device(device), dtype, tuple(values))
    t = _TENSORS.get(key)
    if t is None:
        with _LOCK:
            t = _TENSORS.get(key)
            if t is None:
                if len(_TENSORS) >= _MAX:
                    _TENSORS.pop(next(iter(_TENSORS)))
                t = _TENSORS[key] = torch.tensor(key[2], dtype=dtype, device=device)
    return t
