"""Exporting a checkpoint of any kind as a Hugging Face or a Google (TF1) directory.

`ExportOptions` are the flags of `python -m bert.export_checkpoint`; `export` restores the
source with the heads it has (`detection.restore_model`) and writes it (`writing`).
"""

import dataclasses
import os

from absl import app, logging

from bert.checkpoints.detection import RestoredModel, resolve_vocab_file, restore_model
from bert.checkpoints.writing import check_new_directory, save_google, save_huggingface
from data.cli import option

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


def export(options: ExportOptions) -> RestoredModel:
    """Restores `options.init_checkpoint` and writes it to `options.output_dir`.

    Everything is checked (config, vocabulary, checkpoint, output directory)
    before anything is written.

    Returns:
        The restored model (`bert.checkpoints.RestoredModel`) that was written.
    """
    options.validate()
    output_dir = os.fspath(options.output_dir)
    check_new_directory(output_dir)
    restored = restore_model(options.init_checkpoint, options.bert_config_file)
    vocab_file = resolve_vocab_file(options.vocab_file, options.init_checkpoint)
    logging.info(
        "Restored a %s (%d variables) from the %s",
        type(restored.model).__name__,
        len(restored.names),
        restored.source,
    )
    if options.format == "huggingface":
        save_huggingface(
            restored.model,
            restored.config,
            output_dir,
            vocab_file,
            do_lower_case=options.do_lower_case,
            names=restored.names,
        )
    else:
        save_google(restored.model, restored.config, output_dir, vocab_file, names=restored.names)
    logging.info("Wrote the %s directory %s", options.format, output_dir)
    return restored
