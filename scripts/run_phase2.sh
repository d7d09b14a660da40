#!/usr/bin/env bash
# Phase 2 of BERT pretraining (sequence 512), started from phase 1's final checkpoint
# (encoder and pretraining heads) with the learning rate re-warmed from zero.
#
# On a Cloud TPU VM:
#   TPU_NAME=my-tpu BUCKET=gs://my-bucket EXPERIMENT=lamb_64k_32k bash scripts/run_phase2.sh
# Locally on CPU (no TPU_NAME): the tiny recipe, after scripts/run_phase1.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
if [ -n "${TPU_NAME:-}" ]; then
  : "${BUCKET:?set BUCKET=gs://your-bucket}"
  EXPERIMENT="${EXPERIMENT:-lamb_64k_32k}"
  exec "$PYTHON" -m bert.run_pretraining --experiment="$EXPERIMENT" --phase=2 \
    --strategy=tpu --tpu="$TPU_NAME" --mixed_precision=bf16 \
    --input_file="$BUCKET/data/seq512/train-*" \
    --init_checkpoint="$BUCKET/runs/$EXPERIMENT/phase1" \
    --model_dir="$BUCKET/runs/$EXPERIMENT/phase2" \
    --steps_per_loop=200 --save_checkpoints_steps=500 "$@"
else
  DATA_DIR="${DATA_DIR:-out/local/data}"
  EXPERIMENT="${EXPERIMENT:-tiny_lamb}"
  RUN_DIR="${RUN_DIR:-out/local/runs/$EXPERIMENT}"
  exec "$PYTHON" -m bert.run_pretraining --experiment="$EXPERIMENT" --phase=2 \
    --strategy=one_device --input_file="$DATA_DIR/seq512/train-*" \
    --init_checkpoint="$RUN_DIR/phase1" --model_dir="$RUN_DIR/phase2" \
    --steps_per_loop=20 --save_checkpoints_steps=100 "$@"
fi
