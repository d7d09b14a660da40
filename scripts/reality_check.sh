#!/usr/bin/env bash
# The batch-size scaling study (LAMB vs AdamW, each tuned by the same quasi-random search).
#
# Locally (no TPU_NAME): the cpu preset on the embedded data, under an hour on 2 cores:
#   bash scripts/reality_check.sh
# On a Cloud TPU VM, every search worker pointed at one database (start it on several VMs to
# split the trials):
#   TPU_NAME=my-tpu BUCKET=gs://my-bucket STORAGE=postgresql://user:pass@host/studies \
#     bash scripts/reality_check.sh
# expects phase-1 TFRecords under $BUCKET/data/seq128/.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
if [ -n "${TPU_NAME:-}" ]; then
  : "${BUCKET:?set BUCKET=gs://your-bucket}"
  : "${STORAGE:?set STORAGE to a database URL every worker reaches}"
  exec "$PYTHON" -m bert.reality_check --preset=tpu --strategy=tpu --tpu="$TPU_NAME" \
    --mixed_precision=bf16 --input_file="$BUCKET/data/seq128/train-*" \
    --output_dir="$BUCKET/reality_check" --storage="$STORAGE" --steps_per_loop=200 "$@"
else
  exec "$PYTHON" -m bert.reality_check --preset=cpu --output_dir="${OUTPUT_DIR:-out/reality_check}" "$@"
fi
