#!/usr/bin/env bash
# Set up siuo-task in ./.venv on a fresh machine (the README's first step; .ci/run uses it too).
# In an lmms-eval environment you already have, use `pip install .` (or `pip install siuo-task`) instead.
#   bash scripts/setup.sh          # the package, lmms-eval, lm-eval, inspect, local-model and report extras
#   bash scripts/setup.sh --test   # ... plus the test tools (pytest; Chromium for the HTML report test, when root with apt)
# GPU users who already have a CUDA build of torch: SIUO_KEEP_TORCH=1 keeps the torch in the venv.
set -euo pipefail
cd "$(dirname "$0")/.."
with_tests=0
[ "${1:-}" = "--test" ] && with_tests=1
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch first, pinned: these versions install from a local wheel cache on the project's machines
# (any other version downloads gigabytes); pyproject keeps torch a range for GPU users.
if [ "${SIUO_KEEP_TORCH:-0}" != "1" ] || ! python -c "import torch" 2>/dev/null; then
  python -m pip install -q torch==2.14.1 torchvision==0.29.1
fi
extras="local,lm-eval,inspect,report"
[ $with_tests = 1 ] && extras="$extras,test"
# the package's ranges, resolved to the tested main environment (scripts/constraints-main.txt)
python -m pip install -q -e ".[$extras]" -c scripts/constraints-main.txt
if [ $with_tests = 1 ] && ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "setup: could not install chromium; the HTML report test will be skipped" >&2
fi
python -c "import siuo_task, lmms_eval; print('siuo-task', siuo_task.__version__, 'ready in .venv')"
