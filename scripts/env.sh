#!/usr/bin/env bash
# Set up the project's environment if needed, then run the given command in it.
#   bash scripts/env.sh python -m triton_segloss.demo     # the main job
#   bash scripts/env.sh python -m pytest                  # the test suite
# Creates .venv (seeing the system's site-packages, so an importable torch is
# kept), installs torch==2.13.0 only when no torch is importable (on these
# machines that is the local CPU build), then the package with its test, demo,
# bench and compare extras, and smp 0.6.0 without its dependencies (its losses only). Reruns are no-ops once installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv --system-site-packages .venv
fi
VPY=.venv/bin/python
stamp=.venv/.tsl-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
    "$VPY" -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
  fi
  "$VPY" -m pip install --quiet --disable-pip-version-check -e ".[test,demo,bench,compare]"
  # smp's losses, for the compat tests: without its dependencies (timm, torchvision)
  "$VPY" -m pip install --quiet --disable-pip-version-check --no-deps "segmentation-models-pytorch==0.6.0"
  touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
exec "$@"
