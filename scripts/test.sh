#!/usr/bin/env bash
# Sets up the environment and runs the whole test suite (CPU only). This is the command CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh --test
${PYTHON:-python} -m pytest tests -q "$@"
