"""Ahead-of-time compile specs: every ``@triton.jit`` kernel lists the variants
that ``tests/test_aot_compile.py`` compiles for sm_80 and sm_90 without a GPU.

A kernel module declares ``AOT_SPECS = [aot_spec(kernel, constexprs, **types), ...]``.
Argument types default to ``*fp32`` for ``*_ptr`` arguments and ``i32`` for
the rest; pass overrides as keywords (``x_ptr="*bf16"``, ``stride_xn="i64"``).
Pointer arguments get the 16-byte divisibility hint that a real launch of a
fresh torch allocation gets; ``divisible=(names...)`` gives the same hint to
integer arguments (sizes and strides that are multiples of 16 at launch, as
Triton specialises them), so the compiled code is the vectorised one.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class AotSpec:
    fn: object  # the @triton.jit function
    constexprs: dict
    types: dict = field(default_factory=dict)
    divisible: tuple = ()  # integer arguments a launch would see as multiples of 16
    num_warps: int = 4  # as the launcher launches this variant

    def signature(self) -> tuple[dict, dict, dict]:
        """(signature, constexprs, attrs) for ``triton.compiler.ASTSource``."""
        sig = {}
        attrs = {}
        names = self.fn.arg_names
        unknown = set(self.types) - set(names)
        if unknown:
            raise KeyError(f"{self.fn.__name__}: unknown argument(s) {sorted(unknown)}")
        for i, name in enumerate(names):
            if name in self.constexprs:
                sig[name] = "constexpr"
                continue
            ty = self.types.get(name, "*fp32" if name.endswith("_ptr") else "i32")
            sig[name] = ty
            if ty.startswith("*") or name in self.divisible:
                attrs[(i,)] = [["tt.divisibility", 16]]
        missing = [p for p in names if sig.get(p) == "constexpr" and p not in self.constexprs]
        if missing:
            raise KeyError(f"{self.fn.__name__}: constexpr(s) {missing} have no value")
        return sig, dict(self.constexprs), attrs


def aot_spec(fn, constexprs: dict, divisible: tuple = (), num_warps: int = 4, **types: str) -> AotSpec:
    return AotSpec(fn, constexprs, types, tuple(divisible), int(num_warps))
