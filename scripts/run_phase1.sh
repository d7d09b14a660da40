#!/usr/bin/env bash
# Phase 1 of BERT pretraining (sequence 128).
#
# On a Cloud TPU VM (see README for creating it):
#   TPU_NAME=my-tpu BUCKET=gs://my-bucket EXPERIMENT=lamb_64k_32k bash scripts/run_phase1.sh
# expects TFRecords made by data.create_pretraining_data under $BUCKET/data/seq128/.
#
# Locally on CPU (no TPU_NAME): runs the tiny recipe on data under $DATA_DIR
# (default out/local/data, made by scripts/make_local_data.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
if [ -n "${TPU_NAME:-}" ]; then
  : "${BUCKET:?set BUCKET=gs://your-bucket}"
  EXPERIMENT="${EXPERIMENT:-lamb_64k_32k}"
  exec "$PYTHON" -m bert.run_pretraining --experiment="$EXPERIMENT" --phase=1 \
    --strategy=tpu --tpu="$TPU_NAME" --mixed_precision=bf16 \
    --input_file="$BUCKET/data/seq128/train-*" \
    --model_dir="$BUCKET/runs/$EXPERIMENT/phase1" \
    --steps_per_loop=200 --save_checkpoints_steps=500 "$@"
else
  DATA_DIR="${DATA_DIR:-out/local/data}"
  EXPERIMENT="${EXPERIMENT:-tiny_lamb}"
  RUN_DIR="${RUN_DIR:-out/local/runs/$EXPERIMENT}"
  exec "$PYTHON" -m bert.run_pretraining --experiment="$EXPERIMENT" --phase=1 \
    --strategy=one_device --input_file="$DATA_DIR/seq128/train-*" \
    --model_dir="$RUN_DIR/phase1" --steps_per_loop=20 --save_checkpoints_steps=100 "$@"
fi
