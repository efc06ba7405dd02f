"""Every loss module: its ``inspect.signature``, its ``state_dict`` (with tensor options given), and a
round trip through ``.to(torch.float64)`` (buffers follow; forward equals the functional in float64).

    TRITON_SEGLOSS_BACKEND=torch .venv/bin/python bench/closing/modules.py
"""

import inspect

import torch

import triton_segloss as tsl
from triton_segloss import losses

C = 3
CW = torch.tensor([1.0, 2.0, 0.5])
TENSOR_OPTIONS = {  # a tensor for every tensor option the module takes
    "class_weight": CW, "ce_weight": CW, "pos_weight": torch.tensor(2.0), "weight": None,
}


def inputs(mod):
    mode = getattr(mod, "mode", None)
    if isinstance(mod, (losses.CEDiceLoss, losses.CrossEntropyLoss, losses.LovaszSoftmaxLoss)) or mode == "multiclass":
        if isinstance(mod, (losses.HausdorffDTLoss, losses.BoundaryLoss, losses.DiceBoundaryLoss)):
            return torch.randn(2, C, 8, 8), torch.randint(0, C, (2, 1, 8, 8))
        return torch.randn(2, C, 8, 8), torch.randint(0, C, (2, 8, 8))
    if isinstance(mod, losses.NCutLoss):
        return torch.softmax(torch.randn(2, C, 8, 8), 1), torch.rand(2, 3, 8, 8) * 255
    ch = C if mode == "multilabel" else 1
    return torch.randn(2, ch, 8, 8), (torch.rand(2, ch, 8, 8) > 0.5).float()


def build(cls):
    params = inspect.signature(cls).parameters
    kw = {}
    if "mode" in params and cls not in (losses.BCEDiceLoss,):
        kw["mode"] = "multiclass" if "class_weight" in params or "alpha" in params else params["mode"].default
    if cls in (losses.BCEDiceLoss,):
        kw["mode"] = "multilabel"
    for name in ("class_weight", "ce_weight"):
        if name in params:
            kw[name] = CW
    if cls is losses.CrossEntropyLoss:
        kw["weight"] = CW
    if cls is losses.DiceBoundaryLoss:
        kw["alpha"] = 0.5
    if "pos_weight" in params and cls is losses.BCEWithLogitsLoss:
        kw["pos_weight"] = torch.tensor(2.0)
    try:
        return cls(**kw)
    except (ValueError, TypeError):
        return cls()


def main():
    torch.manual_seed(0)
    for name in losses.__all__:
        cls = getattr(losses, name)
        mod = build(cls)
        sd = {k: (tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in mod.state_dict().items()}
        line = f"{name}{inspect.signature(cls)}"
        print(line)
        print(f"    state_dict: {sd or '{}'}")
        try:
            x, t = inputs(mod)
            if x.shape[1] == 1 and getattr(mod, "mode", "binary") == "multiclass":
                raise ValueError
            m64 = mod.to(torch.float64)
            dtypes = {k: str(v.dtype).replace("torch.", "") for k, v in m64.state_dict().items()}
            x64 = x.double()
            t64 = t.double() if t.is_floating_point() else t
            got = m64(x64, t64)
            want = type(mod)._functional(x64, t64, **m64.options())
            print(f"    .to(float64): buffers {dtypes or '{}'}, forward dtype {str(got.dtype).replace('torch.', '')}, "
                  f"|module - functional| = {(got - want).abs().max().item():.1e}")
        except Exception as e:  # noqa: BLE001 -- a module whose demo inputs do not fit: say so
            print(f"    .to(float64): skipped ({type(e).__name__}: {str(e)[:80]})")


if __name__ == "__main__":
    main()
