"""The options of SQuAD fine-tuning: the flags of `python -m bert.run_squad`, checked together.

Flag names and defaults are google-research/bert's (see `bert.run_squad`); `validate` refuses
inconsistent combinations with `app.UsageError` before anything is read or built.
"""

import dataclasses
import json
import os

from absl import app

from bert.training import options as opts
from bert.training.options import option
from data import length_buckets


def predict_name(predict_file):
    """What a predict file's outputs are named by: its file stem (xquad-en-v1.1.json ->
    xquad-en-v1.1), or the Hugging Face dataset name."""
    return os.path.splitext(os.path.basename(predict_file.rstrip("/")))[0]


@dataclasses.dataclass
class SquadOptions(opts.RuntimeOptions):
    """The flags of `python -m bert.run_squad` (google-research/bert names)."""

    bert_config_file: str | None = option(
        None, "bert_config.json (or HF config.json); default: the one in init_checkpoint."
    )
    init_checkpoint: str | None = option(
        None,
        "Google BERT dir / TF1 prefix, Hugging Face dir, this project's pretraining "
        "model_dir or checkpoint, or a fine-tuned SQuAD output_dir (see module doc).",
    )
    vocab_file: str | None = option(None, "WordPiece vocab (default: init_checkpoint/vocab.txt).")
    spm_model_file: str | None = option(
        None, "SentencePiece model, instead of --vocab_file (as ALBERT's scripts)."
    )
    do_lower_case: bool = option(True, "Lower-case (uncased models).")
    train_file: str | None = option(None, "SQuAD JSON for training, e.g. train-v1.1.json.")
    predict_file: str | None = option(
        None,
        "SQuAD JSON for predictions, e.g. dev-v1.1.json; several: a comma-separated list "
        "(outputs per file in output_dir/predictions/<file stem>/).",
    )
    output_dir: str | None = option(None, "Where records, checkpoints and predictions go.")
    do_train: bool = option(False, "Fine-tune on train_file.")
    do_predict: bool = option(False, "Predict predict_file and evaluate (EM/F1).")
    train_batch_size: int = option(24, "GLOBAL training batch.")
    predict_batch_size: int = option(8, "GLOBAL prediction batch.")
    learning_rate: float = option(3e-5, "Peak learning rate.")
    num_train_epochs: float = option(2.0, "Epochs over the training questions.")
    warmup_proportion: float = option(0.1, "Fraction of the steps spent in linear warmup.")
    max_seq_length: int = option(384, "Tokens per window ([CLS] q [SEP] doc [SEP]).")
    doc_stride: int = option(128, "Stride between document windows.")
    max_query_length: int = option(64, "Question tokens kept.")
    n_best_size: int = option(20, "Start/end candidates per window.")
    max_answer_length: int = option(30, "Longest answer in tokens.")
    iterations_per_loop: int = option(50, "Training steps per host call (log interval).")
    save_checkpoints_steps: int = option(
        1000, "Save the training state (for resuming) this often; 0: never."
    )
    optimizer: str = option("adamw", "Update rule.", ("adamw", "lamb"))
    optimizer_hparams: str = option(
        "{}",
        "JSON object of optimization.create_optimizer overrides, e.g. "
        "'{\"bias_correction\": true}'.",
    )
    schedule: str = option(
        "original_bert", "Learning-rate schedule.", ("original_bert", "warmup_poly")
    )
    export_dir: str | None = option(
        None,
        "Write (after training/prediction) or, with --do_serve_demo, read a "
        "SavedModel answering raw (question, context) strings.",
    )
    do_serve_demo: bool = option(False, "Answer --question about --context with --export_dir.")
    question: str | None = option(None, "Question for --do_serve_demo.")
    context: str | None = option(None, "Context paragraph for --do_serve_demo.")
    bucket_lengths: str = option(
        length_buckets.AUTO,
        "Length buckets: 'auto' (chosen from the data), comma-separated lengths, or empty "
        "(every window padded to max_seq_length, the original).",
    )
    num_buckets: int = option(
        length_buckets.DEFAULT_NUM_BUCKETS, "Most buckets --bucket_lengths=auto chooses."
    )
    bucket_compile_steps: float | None = option(
        None,
        "What XLA-compiling one more bucket length costs, in steps at max_seq_length: "
        "--bucket_lengths=auto adds a bucket only if the padding it removes from the run (or "
        "the prediction pass) takes longer. Default: estimated for a CPU from the model size "
        "(see estimated_compile_steps); set it on a TPU.",
    )
    predict_jit_compile: bool | None = option(
        None,
        "XLA-compile prediction: the windows then go in length buckets (--bucket_lengths). "
        "Default: on TPU only; elsewhere the TF graph runs each batch cut to its longest "
        "window (no length to compile; per step about as fast as XLA on a CPU).",
    )
    seeds: str = option(
        "",
        "Comma-separated seeds: one fine-tuning per seed from the same checkpoint, each in "
        "output_dir/seed_<n>/, and their EM/F1 spread in output_dir/seed_spread.json; "
        "empty: one run with --seed.",
    )

    @property
    def predict_files(self) -> list:
        return [path.strip() for path in (self.predict_file or "").split(",") if path.strip()]

    @property
    def seed_list(self) -> list:
        return [int(seed) for seed in self.seeds.split(",") if seed.strip()]

    def bucket_choice(self) -> dict:
        """The keyword arguments of `preparation.choose_buckets` that these flags set."""
        return {
            "max_seq_length": self.max_seq_length,
            "bucket_lengths": self.bucket_lengths,
            "num_buckets": self.num_buckets,
            "compile_steps": self.bucket_compile_steps,
        }

    def validate(self) -> dict:
        """Raises app.UsageError for inconsistent flags; returns the optimizer overrides."""
        if self.do_serve_demo:
            for name in ("export_dir", "question", "context"):
                if not getattr(self, name):
                    raise app.UsageError(f"--do_serve_demo needs --{name}")
            return {}
        if not (self.do_train or self.do_predict or self.export_dir):
            raise app.UsageError("at least one of --do_train, --do_predict, --export_dir is needed")
        if not self.output_dir:
            raise app.UsageError("--output_dir is required")
        if self.do_train and not self.train_file:
            raise app.UsageError("--do_train needs --train_file")
        if self.save_checkpoints_steps < 0:
            raise app.UsageError(
                f"--save_checkpoints_steps must be >= 0, got {self.save_checkpoints_steps}"
            )
        if self.do_predict and not self.predict_files:
            raise app.UsageError("--do_predict needs --predict_file")
        names = [predict_name(path) for path in self.predict_files]
        if len(set(names)) < len(names):
            raise app.UsageError(
                f"--predict_file: the files' outputs are named by file stem and {names} repeat "
                "one; rename a file"
            )
        try:
            seeds = self.seed_list
        except ValueError:
            raise app.UsageError(
                f"--seeds must be comma-separated integers, got {self.seeds!r}"
            ) from None
        if len(set(seeds)) < len(seeds):
            raise app.UsageError(f"--seeds repeats a seed: {self.seeds!r}")
        if seeds and not (self.do_train and self.do_predict):
            raise app.UsageError("--seeds needs --do_train and --do_predict (it measures EM/F1)")
        try:
            length_buckets.parse_bucket_lengths(self.bucket_lengths, self.max_seq_length)
        except ValueError as e:
            raise app.UsageError(f"--bucket_lengths: {e}") from None
        if self.num_buckets < 1:
            raise app.UsageError(f"--num_buckets must be >= 1, got {self.num_buckets}")
        if self.bucket_compile_steps is not None and self.bucket_compile_steps < 0:
            raise app.UsageError(
                f"--bucket_compile_steps must be >= 0, got {self.bucket_compile_steps}"
            )
        if self.max_seq_length <= self.max_query_length + 3:
            raise app.UsageError(
                f"--max_seq_length ({self.max_seq_length}) must exceed "
                f"--max_query_length + 3 ({self.max_query_length + 3})"
            )
        if self.spm_model_file and self.vocab_file:
            raise app.UsageError("give --vocab_file (WordPiece) or --spm_model_file, not both")
        if self.spm_model_file and self.export_dir:
            raise app.UsageError(
                "--export_dir tokenizes in-graph with WordPiece only; it does not take "
                "--spm_model_file"
            )
        try:
            hparams = json.loads(self.optimizer_hparams)
        except json.JSONDecodeError as e:
            raise app.UsageError(f"--optimizer_hparams is not valid JSON: {e}") from None
        if not isinstance(hparams, dict):
            raise app.UsageError("--optimizer_hparams must be a JSON object")
        return hparams
