#!/usr/bin/env bash
# Local pretraining data for scripts/run_phase{1,2}.sh without a TPU: the embedded synthetic
# corpus, a learned vocabulary, and records at sequence 128 (phase 1) and 512 (phase 2).
# VOCAB_KIND=sentencepiece learns a SentencePiece model instead of a WordPiece vocab.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
DATA_DIR="${DATA_DIR:-out/local/data}"
VOCAB_KIND="${VOCAB_KIND:-wordpiece}"
"$PYTHON" -m data.synthetic --output_dir="$DATA_DIR/raw"
case "$VOCAB_KIND" in
  wordpiece) VOCAB="$DATA_DIR/vocab.txt"; VOCAB_FLAG="--vocab_file=$VOCAB" ;;
  sentencepiece) VOCAB="$DATA_DIR/spm.model"; VOCAB_FLAG="--spm_model_file=$VOCAB" ;;
  *) echo "VOCAB_KIND must be wordpiece or sentencepiece, got '$VOCAB_KIND'" >&2; exit 2 ;;
esac
"$PYTHON" -m data.learn_vocab --input_file="$DATA_DIR/raw/corpus.txt" --output="$VOCAB" \
  --vocab_size=2000 --kind="$VOCAB_KIND" --do_lower_case
for spec in 128:20 512:80; do
  seq="${spec%%:*}"; pred="${spec##*:}"
  "$PYTHON" -m data.create_pretraining_data --input_file="$DATA_DIR/raw/corpus.txt" \
    --output_file="$DATA_DIR/seq$seq/train" --num_output_shards=2 "$VOCAB_FLAG" \
    --max_seq_length="$seq" --max_predictions_per_seq="$pred" --dupe_factor=5 --num_workers=2
done
echo "data in $DATA_DIR; now: bash scripts/run_phase1.sh && bash scripts/run_phase2.sh"
