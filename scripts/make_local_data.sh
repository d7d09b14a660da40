#!/usr/bin/env bash
# Local pretraining data for scripts/run_phase{1,2}.sh without a TPU: the embedded synthetic
# corpus, a learned WordPiece vocabulary, and records at sequence 128 (phase 1) and 512 (phase 2).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
DATA_DIR="${DATA_DIR:-out/local/data}"
"$PYTHON" -m data.synthetic --output_dir="$DATA_DIR/raw"
"$PYTHON" -m data.learn_vocab --input_file="$DATA_DIR/raw/corpus.txt" --output="$DATA_DIR/vocab.txt" \
  --vocab_size=2000 --kind=wordpiece --do_lower_case
for spec in 128:20 512:80; do
  seq="${spec%%:*}"; pred="${spec##*:}"
  "$PYTHON" -m data.create_pretraining_data --input_file="$DATA_DIR/raw/corpus.txt" \
    --output_file="$DATA_DIR/seq$seq/train" --num_output_shards=2 --vocab_file="$DATA_DIR/vocab.txt" \
    --max_seq_length="$seq" --max_predictions_per_seq="$pred" --dupe_factor=5 --num_workers=2
done
echo "data in $DATA_DIR; now: bash scripts/run_phase1.sh && bash scripts/run_phase2.sh"
