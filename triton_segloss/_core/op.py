"""One helper that defines a family's custom ops: forward, backward, fake and autograd.

A family describes its op once::

    class BCEOptions(NamedTuple):          # the only carrier of options
        ignore_index: Optional[float] = None
        label_smoothing: float = 0.0
        ...

    bce_op = define_op(
        "bce", BCEOptions,
        tensors=("logits", "target", "weight?", "pos_weight?"),   # "?": may be None
        outputs=2,
        forward=_forward,    # (logits, target, weight, pos_weight, opts) -> (loss, coef)
        fake=_fake,          # same arguments -> empty tensors of the exact shapes and dtypes
        backward=_backward,  # (grads, saved, logits, target, weight, pos_weight, opts) -> d logits
        saved_outputs=(1,),  # outputs the backward reads (here: the coefficients)
    )
    loss, coef = bce_op(logits, target, weight, pos_weight, opts)

The op schemas are written from the options' annotations, one argument per
field (``Optional[float]`` -> ``float?``, ``tuple[float, ...]`` -> ``float[]``),
so the schema and the options cannot drift apart and nobody counts ``None``s.
The backward op is ``<name>_backward``; its fake is ``empty_like(logits)``.

Inside the ops autocast is off: a loss gives the same value and gradient in an
autocast region as outside it. The backward runs on the backend that was asked for when the forward ran (a
``use_backend`` block may have closed by then). Gradients flow to ``logits`` only. Asking for the gradient of another tensor
argument (a weight map with ``requires_grad``, a soft target) raises, as torch
does for arguments it does not differentiate, instead of returning ``None``
silently. Outputs that the loss does not use carry no gradient: autograd
passes ``None`` for them (``set_materialize_grads(False)``), never an
input-sized zero tensor.
"""

from __future__ import annotations

import typing
from typing import Callable, Sequence

import torch
from torch import Tensor

from . import tape
from . import backend as _backend
from .backend import requested_backend, use_backend

NAMESPACE = "triton_segloss"

_SCALARS = {float: "float", int: "int", bool: "bool", str: "str"}


def _schema_type(ann) -> str:
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if ann in _SCALARS:
        return _SCALARS[ann]
    if origin is typing.Union and len(args) == 2 and type(None) in args:
        inner = args[0] if args[1] is type(None) else args[1]
        return _schema_type(inner) + "?"
    if origin in (tuple, list, Sequence) and args and args[0] in _SCALARS and (len(args) == 1 or args[1] is Ellipsis):
        return _SCALARS[args[0]] + "[]"
    raise TypeError(f"option type {ann!r} has no custom-op schema type")


def options_schema(options: type) -> str:
    """``float? ignore_index, float label_smoothing, ...`` for a NamedTuple of options."""
    hints = typing.get_type_hints(options)
    return ", ".join(f"{_schema_type(hints[f])} {f}" for f in options._fields)


def _tensor_schema(names: Sequence[str]) -> str:
    return ", ".join(f"Tensor? {n[:-1]}" if n.endswith("?") else f"Tensor {n}" for n in names)


def _outputs_schema(n: int) -> str:
    return "Tensor" if n == 1 else "(" + ", ".join(["Tensor"] * n) + ")"


def _autocast_off(fn, t: Tensor, *args):
    """``fn(*args)`` with autocast off: an op's math runs in the accumulation dtype whatever the
    caller's autocast region says (autocast would reach the PyTorch path's matmuls and reductions).
    Outside an autocast region (on ``t``'s device) there is nothing to turn off, and no context is
    entered (entering one costs ~10 us of host time)."""
    device = t.device.type
    if not torch.is_autocast_enabled(device):
        return fn(*args)
    with torch.autocast(device_type=device, enabled=False):
        return fn(*args)


class FusedOp:
    """A forward custom op with its backward op; call it with the tensors and the options object."""

    def __init__(self, name, options, tensors, outputs, forward, fake, backward, saved_outputs, grad_outputs):
        self.name = name
        self.options = options
        self.tensor_names = tuple(n.rstrip("?") for n in tensors)
        self.n_tensors = len(tensors)
        self.n_outputs = outputs
        self.saved_outputs = tuple(saved_outputs)
        self.grad_outputs = tuple(grad_outputs)
        opts = options_schema(options)
        fwd_schema = f"({_tensor_schema(tensors)}, {opts}) -> {_outputs_schema(outputs)}"
        grads = ", ".join(f"Tensor? grad{i}" for i in self.grad_outputs)
        saved = ", ".join(f"Tensor saved{i}" for i in self.saved_outputs)
        head = ", ".join(s for s in (grads, saved) if s)
        bwd_schema = f"({head}, {_tensor_schema(tensors)}, {opts}) -> Tensor"
        nt = self.n_tensors
        ng, ns = len(self.grad_outputs), len(self.saved_outputs)

        def fwd_impl(*args):
            return _autocast_off(forward, args[0], *args[:nt], options(*args[nt:]))

        def fwd_fake(*args):
            return fake(*args[:nt], options(*args[nt:]))

        def bwd_impl(*args):
            grads_, saved_, rest = args[:ng], args[ng:ng + ns], args[ng + ns:]
            return _autocast_off(backward, rest[0], grads_, saved_, *rest[:nt], options(*rest[nt:]))

        def bwd_fake(*args):
            return torch.empty_like(args[ng + ns])  # the logits' shape, dtype and layout

        self.forward_fn, self.backward_fn = forward, backward  # the eager route calls them directly
        self.forward_op = torch.library.custom_op(f"{NAMESPACE}::{name}", fwd_impl, mutates_args=(),
                                                  schema=fwd_schema)
        self.forward_op.register_fake(fwd_fake)
        self.backward_op = torch.library.custom_op(f"{NAMESPACE}::{name}_backward", bwd_impl, mutates_args=(),
                                                   schema=bwd_schema)
        self.backward_op.register_fake(bwd_fake)
        self.forward_op.register_autograd(self._backward, setup_context=self._setup_context)

    def __call__(self, *args):
        *tensors, opts = args
        if len(tensors) != self.n_tensors or not isinstance(opts, self.options):
            raise TypeError(f"{self.name}: expected {self.tensor_names} and a {self.options.__name__}")
        if EAGER_FAST_PATH and _plain_eager(tensors):
            # keep per-pixel tensors for the backward only when there will be one (_core/tape.py):
            # inside the Function's forward grad mode is always off
            record = torch.is_grad_enabled() and tensors[0].requires_grad
            return _EagerOp.apply(self, opts, record, *tensors)
        return self.forward_op(*tensors, *opts)

    def check_grads(self, needs_input_grad):
        """Raise if autograd asks for the gradient of a tensor argument other than the logits."""
        for i, name in enumerate(self.tensor_names[1:], start=1):
            if needs_input_grad[i]:
                raise RuntimeError(
                    f"triton_segloss.{self.name} is not differentiable with respect to argument '{name}': "
                    f"only the logits get a gradient; detach '{name}' (or pass it without requires_grad)"
                )

    def _setup_context(self, ctx, inputs, output):
        nt = self.n_tensors
        outs = output if isinstance(output, tuple) else (output,)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(*inputs[:nt], *(outs[i] for i in self.saved_outputs))
        ctx.flat_options = tuple(inputs[nt:])
        ctx.backend = requested_backend()  # the backward runs where the forward ran

    def _backward(self, ctx, *grads):
        nt = self.n_tensors
        self.check_grads(ctx.needs_input_grad)
        saved = ctx.saved_tensors
        inputs, kept = saved[:nt], saved[nt:]
        dx = None
        used = tuple(grads[i] for i in self.grad_outputs)
        if ctx.needs_input_grad[0] and any(g is not None for g in used):
            with use_backend(ctx.backend):
                dx = self.backward_op(*used, *kept, *inputs, *ctx.flat_options)
        return (dx,) + (None,) * (nt - 1 + len(ctx.flat_options))


# Eager calls on plain tensors (not under torch.compile, a dispatch mode such as FakeTensorMode or
# the bench counters, or a functorch transform) skip the custom-op dispatcher: they run the same
# forward and backward implementations through a torch.autograd.Function, which costs a few tens of
# microseconds per step instead of about half a millisecond (the dispatcher's argument handling,
# its dynamo-disable wrappers and a redispatch per op). Tests compare the two paths; set False to
# always go through the op. On this route the PyTorch path may keep per-pixel tensors for its
# backward (``_core/tape.py``) instead of recomputing them.
EAGER_FAST_PATH = True


def _plain_eager(tensors) -> bool:
    if torch.compiler.is_compiling() or torch._C._len_torch_dispatch_stack() or torch._C._are_functorch_transforms_active():
        return False
    return all(t is None or type(t) is torch.Tensor for t in tensors)


class _EagerOp(torch.autograd.Function):
    """The custom op's forward and backward, called directly (see ``EAGER_FAST_PATH``). This is the
    hot path of every eager step on the CPU, where each microsecond of Python shows: the tape and
    backend state are set and reset by hand (no generator context managers) and the family's
    functions get the options object as it came (not the op's flat arguments)."""

    @staticmethod
    def forward(ctx, op, opts, record, *tensors):
        backend = requested_backend()
        kept, prev = tape.start(record)  # see _core/tape.py
        try:
            out = _autocast_off(op.forward_fn, tensors[0], *tensors, opts)
        finally:
            tape.stop(prev)
        ctx.kept = kept
        ctx.set_materialize_grads(False)
        outs = out if type(out) is tuple else (out,)
        ctx.save_for_backward(*tensors, *(outs[i] for i in op.saved_outputs))
        if len(outs) > len(op.grad_outputs):
            ctx.mark_non_differentiable(*(o for i, o in enumerate(outs) if i not in op.grad_outputs))
        ctx.op, ctx.opts = op, opts
        ctx.backend = backend
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grads):
        op = ctx.op
        nt = op.n_tensors
        ctx_needs = ctx.needs_input_grad[3:]  # the Function's first three arguments are op, opts, record
        op.check_grads(ctx_needs)
        saved = ctx.saved_tensors
        inputs, kept = saved[:nt], saved[nt:]
        used = tuple(grads[i] for i in op.grad_outputs)
        dx = None
        taped, ctx.kept = ctx.kept, None  # handed over once: a retained graph's next backward recomputes
        if ctx_needs[0] and any(g is not None for g in used):
            token = _backend.force(ctx.backend)
            prev = tape.start_replay(taped)
            try:
                dx = _autocast_off(op.backward_fn, inputs[0], used, kept, *inputs, ctx.opts)
            finally:
                tape.stop_replay(prev)
                _backend.unforce(token)
        return (None, None, None, dx) + (None,) * (nt - 1)


def define_op(name: str, options: type, *, tensors: Sequence[str], outputs: int, forward: Callable,
              fake: Callable, backward: Callable, saved_outputs: Sequence[int] = (),
              grad_outputs: Sequence[int] = (0,)) -> FusedOp:
    """Define ``triton_segloss::<name>`` and ``<name>_backward`` (see the module docstring).

    ``grad_outputs``: the outputs whose gradient the backward reads (``None`` where
    autograd has none for it); the backward gets them as its first argument, a tuple.
    ``saved_outputs``: forward outputs saved for the backward, its second argument.
    The first tensor must be the logits: it is the one that receives the gradient.
    """
    if not (isinstance(options, type) and issubclass(options, tuple) and hasattr(options, "_fields")):
        raise TypeError("options must be a typing.NamedTuple")
    return FusedOp(name, options, tensors, outputs, forward, fake, backward, saved_outputs, grad_outputs)
