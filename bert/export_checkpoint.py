r"""Exports a BERT checkpoint for use elsewhere: a Hugging Face or a Google (TF1) directory.

  python -m bert.export_checkpoint --init_checkpoint=/tmp/pretraining --vocab_file=vocab.txt \
      --output_dir=/tmp/bert-hf --format=huggingface
  python -m bert.export_checkpoint --init_checkpoint=/tmp/squad --output_dir=/tmp/squad-tf1 \
      --format=tf1

`--init_checkpoint` takes every source `run_squad --init_checkpoint` takes: this project's
pretraining model_dir or fine-tuned SQuAD output_dir (or a `ckpt-N` in one), a Google
directory or TF1 prefix, or a Hugging Face directory. The exported model has the heads the
source has: the masked-LM and next-sentence heads of a pretraining checkpoint, the span head
of a SQuAD one, none for an encoder (`bert.checkpoints.restore_model`).

`--format=huggingface` writes `config.json`, `model.safetensors` (the names `transformers`'
`BertModel`, `BertForPreTraining` and `BertForQuestionAnswering` expect; the last has no
pooler), `vocab.txt`, `tokenizer_config.json` and `special_tokens_map.json`; `--format=tf1`
writes Google's `bert_config.json`, `bert_model.ckpt.*` and `vocab.txt`. The output directory
is written beside `--output_dir` and renamed into place at the end, so it is never
half-written; it must not exist yet (or be empty).

`--bert_config_file` and `--vocab_file` default, as in run_squad, to the files beside the
checkpoint (a pretraining model_dir has no `vocab.txt`: pass `--vocab_file`).
`--do_lower_case` goes into the Hugging Face tokenizer config.

The work is done by `bert.checkpoints.export`.
"""

import sys

from absl import app

from bert.checkpoints.export import ExportOptions, export
from data import cli


def main(argv):
    del argv
    try:
        export(cli.from_flags(ExportOptions))
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        sys.exit(f"export_checkpoint: error: {e}")


if __name__ == "__main__":
    cli.define_flags(ExportOptions, module_name=sys.argv[0])
    app.run(main)
