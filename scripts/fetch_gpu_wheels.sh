#!/usr/bin/env bash
# Download the wheels the GPU machine lacks into ./.whl/ (ignored by git; carried to the machine,
# where scripts/gpu_check.sh installs them with --no-index --no-deps into a scratch folder).
#
#   bash scripts/fetch_gpu_wheels.sh                  # the list in scripts/gpu-wheels.txt
#   bash scripts/fetch_gpu_wheels.sh path/to/list.txt # another list (one NAME==VERSION a line, # comments)
#
# Exactly the listed versions, as wheels for CPython 3.12 / manylinux x86_64 (the GPU machine's
# Python), without dependencies (the list names them). Wheels in .whl/ that the list does not name
# are removed first, so the folder holds one version of each listed package and nothing else.
# Ends with the folder's size: the device tool carries at most 64 MiB in all.
set -euo pipefail
cd "$(dirname "$0")/.."
LIST=${1:-scripts/gpu-wheels.txt}
DEST=${SIUO_GPU_WHEELS:-.whl}
PY=${PYTHON:-python3}
[ -f "$LIST" ] || { echo "fetch_gpu_wheels: no list at $LIST" >&2; exit 2; }
mapfile -t specs < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$LIST" | grep -v '^$')
[ ${#specs[@]} -gt 0 ] || { echo "fetch_gpu_wheels: $LIST names no package" >&2; exit 2; }
for spec in "${specs[@]}"; do
  [[ "$spec" == *==* ]] || { echo "fetch_gpu_wheels: '$spec' is not NAME==VERSION" >&2; exit 2; }
done
mkdir -p "$DEST"
# drop wheels of other versions or packages left from an older list
"$PY" - "$DEST" "${specs[@]}" <<'PYEOF'
import re, sys
from pathlib import Path
dest, specs = Path(sys.argv[1]), sys.argv[2:]
norm = lambda s: re.sub(r"[-_.]+", "_", s).lower()
wanted = {(norm(n), v) for n, v in (s.split("==", 1) for s in specs)}
for whl in dest.glob("*.whl"):
    name, version = whl.name.split("-")[:2]
    if (norm(name), version) not in wanted:
        print(f"fetch_gpu_wheels: removing {whl.name} (not in the list)")
        whl.unlink()
PYEOF
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 -d "$DEST" "${specs[@]}"
n=$(ls "$DEST"/*.whl | wc -l)
if [ "$n" -ne ${#specs[@]} ]; then
  echo "fetch_gpu_wheels: $n wheels in $DEST for ${#specs[@]} listed packages" >&2
  exit 1
fi
bytes=$(du -cb "$DEST"/*.whl | tail -1 | cut -f1)
echo "fetch_gpu_wheels: $n wheels in $DEST/, $(( bytes / 1048576 )) MiB ($bytes bytes; the device carries at most 64 MiB in all)"
if [ "$bytes" -gt $(( 60 * 1048576 )) ]; then
  echo "fetch_gpu_wheels: WARNING: over 60 MiB leaves little room under the 64 MiB carry limit" >&2
fi
