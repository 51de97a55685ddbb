#!/usr/bin/env bash
# Evaluate several models on SIUO beside a capability benchmark (MMMU) and another safety set
# (HoliSafe) -- one lmms-eval command per model, all into one output folder -- then write the
# "safety vs capability" comparison report.
#
#   SIUO_JUDGE_API_KEY=sk-... bash examples/siuo_vs_capability.sh [OUT_DIR]
#
# Needs a GPU per model (or edit MODELS), network access for the models and datasets (or a warm
# Hugging Face cache), and a judge (see README "The judge"). Adjust MODELS to your own list.
set -euo pipefail
OUT=${1:-runs/siuo_vs_capability}
TASKS=${TASKS:-siuo,mmmu_val,holisafe}
MODELS=(
  "qwen2_5_vl pretrained=Qwen/Qwen2.5-VL-7B-Instruct"
  "qwen2_5_vl pretrained=Qwen/Qwen2.5-VL-3B-Instruct"
  "llava_onevision pretrained=lmms-lab/llava-onevision-qwen2-7b-ov"
)
LMMS_EVAL=${LMMS_EVAL:-lmms-eval}
for entry in "${MODELS[@]}"; do
  read -r model args <<<"$entry"
  echo "== $model $args"
  "$LMMS_EVAL" --model "$model" --model_args "$args" --tasks "$TASKS" \
    --batch_size 1 --output_path "$OUT" --log_samples
done
siuo report "$OUT" --capability mmmu_val --out "$OUT/report.html"
siuo report "$OUT" --capability mmmu_val --out "$OUT/report.md"
echo "report: $OUT/report.html"
