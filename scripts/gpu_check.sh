#!/usr/bin/env bash
# SIUO GPU check (see scripts/gpu_check.py for the stages): tiny random VLMs through lmms-eval on the
# GPU, then a Qwen2.5-VL-7B-shaped random bf16 model through lmms-eval vs a bare transformers loop.
#
#   bash scripts/gpu_check.sh                      # on a bare GPU machine with no internet
#   bash scripts/gpu_check.sh --tiny-only          # any gpu_check.py option passes through
#   bash scripts/gpu_check.sh --device cpu --tiny-only   # the CPU-runnable parts
#   bash scripts/gpu_check.sh --issue25 --out "$OUT/gc" --work /tmp/siuo_gc   # the batch-size stages (~9 min on an H200)
#   bash scripts/gpu_check.sh --issue25 --dry-run        # the same stages on CPU with a tiny model (~2 min)
#
# Nothing is downloaded. Python packages the machine lacks travel as wheels in ./.whl/ (Python 3.12,
# manylinux x86_64, one version each); they are installed with --no-index --no-deps into a scratch
# folder put first on PYTHONPATH (scripts/gpu-wheels.txt lists them; scripts/fetch_gpu_wheels.sh downloads
# them). The checkout itself (siuo_task, siuo_dev) is used from PYTHONPATH, so
# siuo-task needs no install. Missing imports are listed before anything runs (exit 3).
# Results: JSON lines on stdout and in <out>/gpu_check.jsonl (default ./gpu_check_out), then a summary.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SITE=${SIUO_GPU_SITE:-/tmp/siuo_gpu_site}
WHEELS=${SIUO_GPU_WHEELS:-.whl}   # SIUO_GPU_WHEELS=none: use what is installed (e.g. a CPU dry run in .venv)
start=$(date +%s)
# the stages' time budget (--budget-s) counts from here, wheel installation included
export SIUO_GPU_CHECK_START=${SIUO_GPU_CHECK_START:-$start}

if compgen -G "$WHEELS/*.whl" >/dev/null; then
  # a second call on the same machine finds the same wheels already installed and skips the install
  stamp=$(cd "$WHEELS" && ls -l -- *.whl | sha256sum | cut -c1-16)
  if [ -f "$SITE/.siuo_wheels" ] && [ "$(cat "$SITE/.siuo_wheels")" = "$stamp" ]; then
    echo "gpu_check: the wheels in $WHEELS/ are already installed in $SITE"
  else
    echo "gpu_check: installing $(ls "$WHEELS"/*.whl | wc -l) wheel(s) from $WHEELS/ into $SITE (--no-index --no-deps)"
    rm -f "$SITE/.siuo_wheels"
    if ! "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl; then
      echo "gpu_check: installing the wheels in $WHEELS/ failed (two versions of one package? a wheel for another Python?)" >&2
      exit 2
    fi
    echo "$stamp" > "$SITE/.siuo_wheels"
  fi
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
else
  echo "gpu_check: no wheels in $WHEELS/: using only the packages already installed for $PY"
fi
# siuo-task itself, installed (its task YAMLs are package data), ahead of the checkout; the checkout
# stays on the path for the tests' helpers (siuo_dev/tiny_models.py, ...).
if "$PY" -m pip install -q --no-deps --no-build-isolation --no-index --no-compile --upgrade --target "$SITE" . >/dev/null 2>&1; then
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}:$PWD"
else
  echo "gpu_check: could not install siuo-task from the checkout; using it from PYTHONPATH" >&2
  export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false WANDB_MODE=disabled PYTHONUNBUFFERED=1

"$PY" - <<'EOF' || exit 3
import importlib
import sys

# distribution -> module the SIUO lmms-eval runs import (found by tracing qwen2_vl, qwen2_5_vl and
# llava_hf runs of `lmms-eval --tasks siuo_mcqa,siuo_gen`)
needed = {
    "torch": "torch", "torchvision": "torchvision", "transformers": "transformers", "accelerate": "accelerate",
    "tokenizers": "tokenizers", "safetensors": "safetensors", "huggingface-hub": "huggingface_hub",
    "lmms-eval": "lmms_eval", "datasets": "datasets", "evaluate": "evaluate", "loguru": "loguru", "httpx": "httpx",
    "pillow": "PIL", "qwen-vl-utils": "qwen_vl_utils", "decord": "decord", "pydantic": "pydantic",
    "pytablewriter": "pytablewriter", "sacrebleu": "sacrebleu", "tenacity": "tenacity",
    "python-dotenv": "dotenv", "dill": "dill", "multiprocess": "multiprocess",
    "pytest": "pytest", "jinja2": "jinja2",
}
# imported only when present (transformers' availability checks, datasets' .zst reader): the GPU
# machine lacks them and scripts/gpu-wheels.txt leaves them out; reported, never a reason to stop
optional = {"numexpr": "numexpr", "zstandard": "zstandard"}
absent = []
for dist, module in optional.items():
    try:
        importlib.import_module(module)
    except Exception:
        absent.append(dist)
if absent:
    print(f"gpu_check: optional, not installed (not needed for SIUO's runs): {', '.join(absent)}")
missing = []
for dist, module in needed.items():
    try:
        importlib.import_module(module)
    except Exception as exc:  # ImportError, or a broken dependency of it
        missing.append(f"{dist} ({type(exc).__name__}: {str(exc)[:160]})")
if missing:
    print("gpu_check: MISSING Python packages on this machine:\n  " + "\n  ".join(missing), file=sys.stderr)
    print("Carry them as wheels in .whl/ (built for Python 3.12, manylinux x86_64, --no-deps: name their own\n"
          "missing dependencies too): on a machine with PyPI, add NAME==VERSION to scripts/gpu-wheels.txt and run\n"
          "  bash scripts/fetch_gpu_wheels.sh", file=sys.stderr)
    sys.exit(3)
import torch, transformers, lmms_eval  # noqa: E401
print(f"gpu_check: python {sys.version.split()[0]}, torch {torch.__version__} (cuda {torch.cuda.is_available()}), "
      f"transformers {transformers.__version__}")
if not transformers.__version__.startswith("5.23."):
    print(f"gpu_check: note: transformers {transformers.__version__} here; the CPU tests pin 5.23.0 "
          "(carry transformers-5.23.0-py3-none-any.whl in .whl/ to match)")
EOF

"$PY" scripts/gpu_check.py "$@"
rc=$?
echo "gpu_check: exit $rc after $(( $(date +%s) - start )) s (events: the --out folder's gpu_check.jsonl)"
exit $rc
