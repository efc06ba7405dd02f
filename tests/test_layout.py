"""The package layout the architecture document promises (docs/ARCHITECTURE.md).

* every loss family is one folder holding api / ops / kernels / torch_impl / recipes;
* its Triton path (``kernels.py``) and PyTorch path (``torch_impl.py``) expose the
  same public functions with the same parameters;
* ``kernels.py`` is the only module of a family that imports triton;
* op schemas are one-to-one with the options NamedTuple (``define_op`` writes them),
  so no ``has_*`` flag travels beside an ``Optional`` value.
"""

import ast
import importlib
import inspect
import os

import pytest

import triton_segloss as tsl
from triton_segloss._core.op import FusedOp

PKG = os.path.dirname(tsl.__file__)
FAMILIES = ["bce", "dice", "focal", "ce", "lovasz", "boundary", "ncut", "confusion",
            "distance", "surface", "hausdorff", "cldice"]
FILES = ["__init__.py", "api.py", "ops.py", "kernels.py", "torch_impl.py", "recipes.py"]


def _public(mod):
    return {n: f for n, f in vars(mod).items()
            if inspect.isfunction(f) and not n.startswith("_") and f.__module__ == mod.__name__}


@pytest.mark.parametrize("family", FAMILIES)
def test_family_is_one_folder(family):
    missing = [f for f in FILES if not os.path.exists(os.path.join(PKG, family, f))]
    assert not missing, f"triton_segloss/{family}/ lacks {missing}"


@pytest.mark.parametrize("family", FAMILIES)
def test_both_paths_expose_the_same_functions(family):
    kernels = importlib.import_module(f"triton_segloss.{family}.kernels")
    torch_impl = importlib.import_module(f"triton_segloss.{family}.torch_impl")
    a, b = _public(kernels), _public(torch_impl)
    assert set(a) == set(b), f"kernels only: {set(a) - set(b)}, torch_impl only: {set(b) - set(a)}"
    for name in a:
        pa = list(inspect.signature(a[name]).parameters)
        pb = list(inspect.signature(b[name]).parameters)
        assert pa == pb, f"{family}.{name}: kernels{pa} vs torch_impl{pb}"


@pytest.mark.parametrize("family", FAMILIES)
def test_only_kernels_imports_triton(family):
    for f in FILES:
        if f == "kernels.py":
            continue
        path = os.path.join(PKG, family, f)
        tree = ast.parse(open(path).read())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            assert not any(n == "triton" or n.startswith("triton.") for n in names), f"{family}/{f} imports triton"


def _fused_ops():
    for family in FAMILIES:
        mod = importlib.import_module(f"triton_segloss.{family}.ops")
        for name, obj in vars(mod).items():
            if isinstance(obj, FusedOp):
                yield f"{family}.{name}", obj


@pytest.mark.parametrize("name,op", list(_fused_ops()), ids=lambda v: v if isinstance(v, str) else "")
def test_op_schema_is_the_options(name, op):
    schema = op.forward_op._opoverload._schema
    args = [a.name for a in schema.arguments]
    assert args[op.n_tensors:] == list(op.options._fields)
    assert not any(a.startswith("has_") for a in args), args


def test_every_family_defines_a_fused_op():
    families = {name.split(".")[0] for name, _ in _fused_ops()}
    assert families == set(FAMILIES)


def test_old_layer_folders_are_gone():
    for layer in ("kernels", "ops", "torch_impl"):
        assert not os.path.isdir(os.path.join(PKG, layer)), f"triton_segloss/{layer}/ still exists"
    assert not [f for f in os.listdir(os.path.join(PKG, "functional")) if f.startswith("_") and f != "__init__.py"
                and f.endswith(".py")]
