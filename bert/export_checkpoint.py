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
`BertModel`, `BertForPreTraining` and `BertForQuestionAnswering` expect), `vocab.txt`,
`tokenizer_config.json` and `special_tokens_map.json`; `--format=tf1` writes Google's
`bert_config.json`, `bert_model.ckpt.*` and `vocab.txt`. The output directory is written
beside `--output_dir` and renamed into place at the end, so it is never half-written; it
must not exist yet (or be empty).

`--bert_config_file` and `--vocab_file` default, as in run_squad, to the files beside the
checkpoint (a pretraining model_dir has no `vocab.txt`: pass `--vocab_file`).
`--do_lower_case` goes into the Hugging Face tokenizer config.
"""

import dataclasses
import os
import sys

from absl import app, logging

from bert import checkpoints
from bert.training import options as opts
from bert.training.options import option

FORMATS = ("huggingface", "tf1")


@dataclasses.dataclass
class ExportOptions:
    """The flags of `python -m bert.export_checkpoint`."""

    init_checkpoint: str | None = option(
        None,
        "Pretraining model_dir, fine-tuned SQuAD output_dir (or a ckpt-N in one), Google "
        "directory / TF1 prefix, or Hugging Face directory.",
    )
    output_dir: str | None = option(None, "Directory to create (must be new or empty).")
    format: str | None = option(None, "What to write.", FORMATS)
    bert_config_file: str | None = option(
        None, "bert_config.json (or HF config.json); default: the one in init_checkpoint."
    )
    vocab_file: str | None = option(None, "WordPiece vocab (default: init_checkpoint/vocab.txt).")
    do_lower_case: bool = option(True, "Lower-case (uncased models); for the HF tokenizer.")

    def validate(self):
        for name in ("init_checkpoint", "output_dir", "format"):
            if not getattr(self, name):
                raise app.UsageError(f"--{name} is required")
        if self.format not in FORMATS:
            raise app.UsageError(f"--format must be one of {list(FORMATS)}, got {self.format!r}")


def export(options: ExportOptions) -> checkpoints.RestoredModel:
    """Restores `options.init_checkpoint` and writes it to `options.output_dir`.

    Everything is checked (config, vocabulary, checkpoint, output directory)
    before anything is written.

    Returns:
        The restored model (`bert.checkpoints.RestoredModel`) that was written.
    """
    options.validate()
    output_dir = os.fspath(options.output_dir)
    checkpoints.check_new_directory(output_dir)
    restored = checkpoints.restore_model(options.init_checkpoint, options.bert_config_file)
    vocab_file = checkpoints.resolve_vocab_file(options.vocab_file, options.init_checkpoint)
    logging.info(
        "Restored a %s (%d variables) from the %s",
        type(restored.model).__name__,
        len(restored.names),
        restored.source,
    )
    if options.format == "huggingface":
        checkpoints.save_huggingface(
            restored.model,
            restored.config,
            output_dir,
            vocab_file,
            do_lower_case=options.do_lower_case,
            names=restored.names,
        )
    else:
        checkpoints.save_google(
            restored.model, restored.config, output_dir, vocab_file, names=restored.names
        )
    logging.info("Wrote the %s directory %s", options.format, output_dir)
    return restored


def main(argv):
    del argv
    try:
        export(opts.from_flags(ExportOptions))
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        sys.exit(f"export_checkpoint: error: {e}")


if __name__ == "__main__":
    opts.define_flags(ExportOptions, module_name=sys.argv[0])
    app.run(main)
