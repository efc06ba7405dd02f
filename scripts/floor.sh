#!/usr/bin/env bash
# Test the package on an older torch (the dependency floor), without touching .venv.
#
#   bash scripts/floor.sh <torch-version> [<triton-version>] [pytest arguments...]
#   bash scripts/floor.sh 2.8.0                      # triton: the one that torch 2.8.0 pins
#   bash scripts/floor.sh 2.13.0 3.9.0 tests/test_bce.py
#
# Creates the venv /tmp/floor-<torch-version> (FLOOR_VENV overrides it) and installs, in order:
#   1. torch itself with --no-deps: a wheel already on this machine (/opt/wheels,
#      /opt/pypi-more/files, $FLOOR_WHEELS) or else one `pip download`ed into $FLOOR_WHEELS
#      (default /tmp/wh);
#   2. torch's other requirements at the versions its metadata asks for, triton aside
#      (sympy, networkx, jinja2, fsspec, ...; for PyPI's Linux wheels, which are CUDA builds,
#      also the nvidia-* libraries: `import torch` loads them even on a machine without a
#      GPU, and fails without them);
#   3. triton for the interpreter: the version given, else the one torch's metadata pins
#      (CPU builds pin none: then the version is required);
#   4. this package with --no-deps (editable), then its test requirements (pytest,
#      pytest-xdist, hypothesis) and numpy (below 2.4 for a triton below 3.7, see step 4):
#      nothing here may upgrade torch or triton;
# then checks that torch and triton are still the versions asked for and runs pytest
# (default: a representative subset; FLOOR_TESTS or extra arguments override it) with
# TRITON_INTERPRET=1. Reruns reuse the venv. Output: /tmp/floor-<torch-version>.log too.
set -euo pipefail
if [ $# -lt 1 ]; then
  sed -n 2,6p "$0" >&2
  exit 2
fi
TORCH_V=$1; shift
TRITON_V=""
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+\.[0-9]+ ]]; then TRITON_V=$1; shift; fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${FLOOR_VENV:-/tmp/floor-$TORCH_V}
WHEELS=${FLOOR_WHEELS:-/tmp/wh}
LOG=${FLOOR_LOG:-/tmp/floor-$TORCH_V.log}
PY=${PYTHON:-python3}
mkdir -p "$WHEELS"
exec > >(tee "$LOG") 2>&1

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
VPY=$VENV/bin/python
PIP=("$VPY" -m pip --disable-pip-version-check -q)
TAG=$("$VPY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')

# 1. torch, --no-deps
if [ "$("$VPY" -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null)" != "$TORCH_V" ]; then
  whl=""
  for d in /opt/wheels /opt/pypi-more/files "$WHEELS"; do
    for f in "$d"/torch-"$TORCH_V"-*"$TAG"-*.whl "$d"/torch-"$TORCH_V"+*-"$TAG"-*.whl; do  # -N-: a build tag
      if [ -z "$whl" ] && [ -f "$f" ]; then whl=$f; fi
    done
  done
  if [ -z "$whl" ]; then
    "${PIP[@]}" download --no-deps --progress-bar off -d "$WHEELS" "torch==$TORCH_V"
    whl=$(ls "$WHEELS"/torch-"$TORCH_V"-*"$TAG"-*.whl | head -1)
  fi
  echo "floor: torch wheel $whl"
  "${PIP[@]}" install --no-deps "$whl"
fi

# 2. torch's requirements other than the CUDA libraries and triton; 3. the triton pin
read -r -a TORCH_REQS <<<"$("$VPY" - <<'EOF'
import importlib.metadata as m
try:
    from packaging.requirements import Requirement
except ImportError:  # a bare venv: pip's own copy
    from pip._vendor.packaging.requirements import Requirement
reqs = []
for r in m.requires("torch") or []:
    q = Requirement(r)
    if q.marker is not None and not q.marker.evaluate({"extra": ""}):
        continue
    name = q.name.lower().replace("_", "-")
    if name == "triton":
        continue
    extras = f"[{','.join(sorted(q.extras))}]" if q.extras else ""  # cuda-toolkit[cufile,...]
    reqs.append(f"{q.name}{extras}{q.specifier}")
print(" ".join(reqs))
EOF
)"
PINNED=$("$VPY" - <<'EOF'
import importlib.metadata as m
try:
    from packaging.requirements import Requirement
except ImportError:  # a bare venv: pip's own copy
    from pip._vendor.packaging.requirements import Requirement
for r in m.requires("torch") or []:
    q = Requirement(r)
    if q.name == "triton" and (q.marker is None or q.marker.evaluate({"extra": ""})):
        print(str(q.specifier).lstrip("="))
EOF
)
if [ -z "$TRITON_V" ]; then TRITON_V=$PINNED; fi
if [ -z "$TRITON_V" ]; then
  echo "floor: torch $TORCH_V pins no triton (a CPU build): give the triton version" >&2
  exit 2
fi
echo "floor: torch $TORCH_V requires: ${TORCH_REQS[*]}; pins triton ${PINNED:-none}; testing with triton $TRITON_V"
"${PIP[@]}" install "${TORCH_REQS[@]}"
"${PIP[@]}" install --no-deps "triton==$TRITON_V"

# 4. the package, then its test requirements (they do not depend on torch or triton). Triton's
# interpreter before 3.7 turns 1-element arrays into Python ints with int(), which NumPy 2.4
# made an error ("only 0-dimensional arrays can be converted to Python scalars"): with such a
# triton the interpreter needs numpy<2.4 (FLOOR_NUMPY overrides the requirement)
"${PIP[@]}" install --no-deps -e "$ROOT"
NUMPY=${FLOOR_NUMPY:-$("$VPY" -c 'import sys; v = tuple(int(p) for p in sys.argv[1].split(".")[:2]); print("numpy<2.4" if v < (3, 7) else "numpy")' "$TRITON_V")}
"${PIP[@]}" install pytest pytest-xdist hypothesis "$NUMPY"

"$VPY" - "$TORCH_V" "$TRITON_V" <<'EOF'
import os, sys
os.environ["TRITON_INTERPRET"] = "1"
import numpy, torch, triton, triton_segloss
want_torch, want_triton = sys.argv[1], sys.argv[2]
print(f"floor: python {sys.version.split()[0]}, torch {torch.__version__}, triton {triton.__version__}, "
      f"numpy {numpy.__version__}, triton_segloss {triton_segloss.__version__}")
assert torch.__version__.split("+")[0] == want_torch.split("+")[0], torch.__version__
assert triton.__version__ == want_triton, triton.__version__
EOF

if [ $# -gt 0 ]; then
  TESTS=("$@")
else
  read -r -a TESTS <<<"${FLOOR_TESTS:-tests/test_bce.py tests/test_dice.py tests/test_modules.py tests/test_compile_matrix.py -x}"
fi
cd "$ROOT"
export TRITON_INTERPRET=1
set +e
"$VPY" -m pytest -q -p no:cacheprovider "${TESTS[@]}"
rc=$?
echo "floor: torch $TORCH_V + triton $TRITON_V: pytest exit $rc"
exit $rc
