#!/usr/bin/env bash
# Installs the package and its dependencies into the current Python environment (a venv is recommended).
# Usage: bash scripts/setup_env.sh [--test]     (--test adds the test tools)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
extra=""
[ "${1:-}" = "--test" ] && extra="[test]"
"$PYTHON" -m pip install --upgrade pip >/dev/null
"$PYTHON" -m pip install -e ".${extra}"
"$PYTHON" -c "import torch, torchvision, sgg; print(f'sgg {sgg.__version__} with torch {torch.__version__}, torchvision {torchvision.__version__}')"
