"""``python -m triton_segloss.env``: what to paste into a bug report.

Prints the versions of Python, torch, triton and triton_segloss, the devices
torch sees, the backend each device would run now (and why), and where Triton
caches compiled kernels.
"""

from __future__ import annotations

import os
import platform
import sys


def report() -> str:
    import torch

    from triton_segloss import __version__
    from triton_segloss._core import backend

    lines = [
        f"triton_segloss {__version__}",
        f"python {platform.python_version()} ({platform.platform()})",
        f"torch {torch.__version__} (CUDA {torch.version.cuda or 'none'}, HIP {getattr(torch.version, 'hip', None) or 'none'})",
    ]
    try:
        import triton

        lines.append(f"triton {triton.__version__}")
    except ImportError:
        lines.append("triton: not installed (CPU tensors use the PyTorch path)")
    lines.append(f"TRITON_INTERPRET when triton_segloss was imported: {'1' if backend.INTERPRET else 'unset'}")
    lines.append(f"TRITON_SEGLOSS_BACKEND={os.environ.get('TRITON_SEGLOSS_BACKEND', '') or '(unset: auto)'}, "
                 f"TRITON_SEGLOSS_VALIDATE={os.environ.get('TRITON_SEGLOSS_VALIDATE', '') or '(unset: 0)'}")
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices += [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    for d in devices:
        name = "CPU" if d.type == "cpu" else torch.cuda.get_device_name(d)
        try:
            chosen = backend.select(d)
            why = backend.triton_unavailable_reason(d)
            note = f" ({why})" if chosen == "torch" and why else ""
        except RuntimeError as e:
            chosen, note = "error", f" ({e})"
        lines.append(f"device {d}: {name}; backend now: {chosen}{note}")
    try:
        from triton.runtime.cache import default_cache_dir

        cache = os.environ.get("TRITON_CACHE_DIR") or default_cache_dir()
    except ImportError:
        cache = os.environ.get("TRITON_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".triton", "cache")
    lines.append(f"Triton kernel cache: {cache}")
    return "\n".join(lines)


def main() -> int:
    print(report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
