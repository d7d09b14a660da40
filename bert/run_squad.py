r"""SQuAD v1.1 fine-tuning, prediction and evaluation (google-research/bert flag names).

  python -m bert.run_squad --init_checkpoint=$MODEL_DIR --do_train --do_predict \
      --train_file=train-v1.1.json --predict_file=dev-v1.1.json --output_dir=/tmp/squad \
      --export_dir=/tmp/squad/export
  python -m bert.run_squad --do_serve_demo --export_dir=/tmp/squad/export \
      --question="Who wrote it?" --context="The book was written by Jane Doe in 1901."

Initialization (`--init_checkpoint`), one flag for every source:
  * a Google BERT directory (`bert_config.json` + `bert_model.ckpt.*`) or a TF1 checkpoint
    prefix (`.../bert_model.ckpt`), read by `bert.load_pretrained`;
  * a Hugging Face directory (`config.json` + `model.safetensors`, e.g. MiniLM), read by
    `bert.load_pretrained`;
  * this project's pretraining `--model_dir` (or one `ckpt-N` prefix in it), an object-based
    `tf.train.Checkpoint(model=pretraining_model, optimizer=...)`: only `model.encoder` is
    restored (the pretraining heads and optimizer slots are skipped), the config comes from
    `--bert_config_file` or from the `phase_config.json` that run_pretraining writes beside it;
  * a SQuAD model written by this script (`<output_dir>` or its `ckpt-N`): encoder AND span
    head are restored. Running with --do_predict and without --do_train on an output_dir
    that holds a fine-tuned checkpoint uses that checkpoint; eval_results.json then reports
    the checkpoint's step as global_step.
`--bert_config_file` overrides the config found in the directory; `--vocab_file` defaults to
the directory's `vocab.txt`; `--spm_model_file` takes a SentencePiece model instead (as
ALBERT's scripts; e.g. one learned by `data.learn_vocab --kind=sentencepiece`). A vocabulary
larger than the model's `vocab_size` is refused. The span head is new (truncated normal 0.02)
unless the checkpoint has one.

Defaults are the BERT-Large SQuAD v1.1 recipe that the LAMB paper (You et al., 2020) and the
tuned-Adam comparison (Nado et al., 2021) reused: the google-research/bert README command for
BERT-Large on TPU, train_batch_size 24, learning_rate 3e-5, num_train_epochs 2.0, warmup 10%,
max_seq_length 384, doc_stride 128. (The defaults inside google-research/bert run_squad.py
itself are different: train_batch_size 32, learning_rate 5e-5, num_train_epochs 3.0.)
As in the original, num_train_steps = int(len(train_examples) / train_batch_size *
num_train_epochs) counts examples (questions), not windows.

Optimizer: `--optimizer=adamw` is the original BERT AdamW (beta 0.9/0.999, epsilon 1e-6, no
bias correction, decoupled weight decay 0.01 except LayerNorm and biases, global-norm clip
1.0); `--optimizer=lamb` uses the same weight decay / clip / epsilon with LAMB's bias
correction. `--optimizer_hparams` (JSON) overrides any `optimization.create_optimizer`
hyperparameter. Schedules: `original_bert` (linear warmup over a linear decay from step 0)
or `warmup_poly` (linear warmup 0 -> lr, then linear decay to 0).

Loss: mean over the global batch of (start cross-entropy + end cross-entropy) / 2. Each
replica computes its local sum divided by the GLOBAL batch; the optimizer sums over
replicas. The step is XLA-compiled (static shapes, drop_remainder) and runs
`--iterations_per_loop` steps per host call.

Resuming: every --save_checkpoints_steps the model, optimizer and dropout states go to
output_dir/train_state; run the same command again after a kill and training continues at
that step, skipping the batches already used (the input order is fixed by --seed).

Outputs in --output_dir: train.tf_record / eval.tf_record, the fine-tuned checkpoint
(`ckpt-N`), predictions.json, nbest_predictions.json, eval_results.json (exact_match, f1 and
counts; printed as JSON too), TensorBoard events in train/ and eval/. With --export_dir, a
SavedModel whose `serving_default` signature takes raw question and context strings
(see `bert.serving`).

Several predict files (`--predict_file=xquad-en-v1.1.json,dev-v1.1.json`): each file's
eval.tf_record, predictions, eval_results.json and eval/ go to
output_dir/predictions/<file stem>/, and eval_results_by_file.json lists them all.

Length buckets (`--bucket_lengths`, default auto): windows are grouped by real length into at
most --num_buckets buckets (chosen from the data to minimize padded tokens, lengths multiples
of 32, each extra bucket only if its saving repays its compilation, --bucket_compile_steps;
or given, e.g. 128,192,256,384); a batch holds one bucket's windows padded to its
length, so each bucket is one static shape compiled once, the global batch is constant, and
every replica runs the same bucket at the same step (`data.length_buckets`: a schedule fixed
by --seed, so a resumed run skips exactly the used batches). `--bucket_lengths=` (empty) is
the original: every window padded to max_seq_length. The windowing itself (doc_stride) is the
original's either way. output_dir/train_buckets.json gives the buckets, windows per bucket and
padding fraction.

Prediction: eval.tf_record holds the windows sorted by length. Off TPU the prediction step
runs as a TF graph (not XLA: on a CPU it is as fast per step, and no length needs compiling)
and each batch is cut to its longest window; with --predict_jit_compile, and always on TPU, it
is XLA-compiled and reads the windows in length buckets as training does.

Fine-tuning spread (Nado et al. report mean and spread over fine-tuning seeds):
`--seeds=1,2,3` fine-tunes once per seed from the same --init_checkpoint, each run a complete
output_dir/seed_<n>/ as above (export in export_dir/seed_<n>/), then writes the mean, sample
standard deviation, min and max of EM and F1 per predict file to output_dir/seed_spread.json.
"""

import dataclasses
import json
import os
import random
import re
import sys
import time

import numpy as np
import tensorflow as tf
from absl import app, logging

import bert
import optimization
from bert import checkpoints
from bert.training import options as opts
from bert.training import trainer as trainer_lib
from bert.training.options import option
from data import fileio, length_buckets, squad, tokenization

FINE_TUNED_CONFIG = "bert_config.json"  # written beside the fine-tuned checkpoint
TRAIN_STATE = "train_state"  # output_dir subdirectory of the resumable training state


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


# ----------------------------------------------------------------------------------------------
# Data


def prepare_train_data(
    train_file, tokenizer, output_dir, seed, max_seq_length, doc_stride, max_query_length
):
    """Reads and shuffles the training questions, writes train.tf_record.

    Returns (number of examples, the real length of every feature). A malformed file raises
    `data.squad.SquadFormatError` naming the file, the question and the field.
    """
    examples = squad.read_examples(train_file, is_training=True)
    if not examples:
        raise ValueError(f"{train_file}: no training questions")
    random.Random(seed).shuffle(examples)  # As the original: shuffle before windowing.
    path = os.path.join(output_dir, "train.tf_record")
    start = time.time()
    lengths = []

    def write(feature):
        writer.process_feature(feature)
        lengths.append(sum(feature.input_mask))

    with squad.FeatureWriter(path, is_training=True) as writer:
        squad.convert_examples_to_features(
            examples,
            tokenizer,
            max_seq_length=max_seq_length,
            doc_stride=doc_stride,
            max_query_length=max_query_length,
            is_training=True,
            output_fn=write,
        )
    logging.info(
        "%s: %d questions -> %d training features in %s (%.1f s)",
        train_file,
        len(examples),
        writer.num_features,
        path,
        time.time() - start,
    )
    return len(examples), lengths


# XLA compile time over step time on CPU cores, times batch x length x hidden^2: compiling
# grows with the layers as a step does, but not with their width or the batch. Measured side by
# side on one machine: 1.41e9 (demo tiny model, training), 1.27e9 (its forward), 1.09e9 (MiniLM
# forward at batch 16, 384 tokens: 3.9 s to compile a length, 3.2 s a step).
CPU_COMPILE_STEPS_SCALE = 1.25e9


def estimated_compile_steps(config, batch_size, max_seq_length) -> float:
    """What compiling one more length costs, in steps of `batch_size` at `max_seq_length`, on a
    CPU (see CPU_COMPILE_STEPS_SCALE): 12 for the demo's tiny model, 1.4 for MiniLM at batch 16."""
    return CPU_COMPILE_STEPS_SCALE / (batch_size * max_seq_length * config.hidden_size**2)


def choose_buckets(options, lengths, batch_size, num_steps, config, replicas=1) -> list:
    """The bucket lengths of windows of `lengths`, read in `num_steps` global batches of
    `batch_size` over `replicas`: --bucket_lengths, or chosen from the data (auto), each bucket
    repaying its compilation (--bucket_compile_steps); buckets of fewer than a batch of windows
    join a neighbour."""
    given = length_buckets.parse_bucket_lengths(options.bucket_lengths, options.max_seq_length)
    if given is None:
        compile_steps = options.bucket_compile_steps
        if compile_steps is None:  # A replica's step time follows its share of the batch.
            compile_steps = estimated_compile_steps(
                config, batch_size // replicas, options.max_seq_length
            )
        bucket_cost = length_buckets.compile_cost_tokens(
            compile_steps, options.max_seq_length, len(lengths), num_steps
        )
        return length_buckets.choose_bucket_lengths(
            lengths,
            options.max_seq_length,
            options.num_buckets,
            min_count=batch_size,
            bucket_cost=bucket_cost,
        )
    return length_buckets.merge_small_buckets(lengths, given, batch_size)


def bucket_bounds(buckets) -> list:
    """(shorter, length) of each bucket, as `squad.build_squad_dataset` takes them."""
    return list(zip([0, *buckets[:-1]], buckets))


def predict_name(predict_file):
    """What a predict file's outputs are named by: its file stem (xquad-en-v1.1.json ->
    xquad-en-v1.1), or the Hugging Face dataset name."""
    return os.path.splitext(os.path.basename(predict_file.rstrip("/")))[0]


@dataclasses.dataclass
class PredictData:
    """One predict file's questions, windows and the directory its outputs go to."""

    predict_file: str
    output_dir: str
    examples: list
    features: list


def prepare_predict_data(
    predict_file, tokenizer, output_dir, max_seq_length, doc_stride, max_query_length
):
    """Reads the evaluation questions, writes eval.tf_record; returns (examples, features)."""
    examples = squad.read_examples(predict_file, is_training=False)
    if not examples:
        raise ValueError(f"{predict_file}: no questions")
    features = squad.convert_examples_to_features(
        examples,
        tokenizer,
        max_seq_length=max_seq_length,
        doc_stride=doc_stride,
        max_query_length=max_query_length,
        is_training=False,
    )
    # Sorted by length (ties in feature order): without buckets, a batch is cut to its longest
    # window (see prediction_inputs); with them, the order does not matter.
    by_length = sorted(features, key=lambda feature: sum(feature.input_mask))
    squad.write_features(by_length, os.path.join(output_dir, "eval.tf_record"), is_training=False)
    logging.info("%s: %d questions -> %d features", predict_file, len(examples), len(features))
    return examples, features


def prepare_all_predict_data(options, tokenizer) -> dict:
    """{name: PredictData} of every --predict_file. One file keeps the original layout (its
    outputs in output_dir); several each get output_dir/predictions/<name>/."""
    paths = options.predict_files
    data = {}
    for path in paths:
        name = predict_name(path)
        directory = options.output_dir
        if len(paths) > 1:
            directory = os.path.join(options.output_dir, "predictions", name)
            tf.io.gfile.makedirs(directory)
        examples, features = prepare_predict_data(
            path,
            tokenizer,
            directory,
            options.max_seq_length,
            options.doc_stride,
            options.max_query_length,
        )
        data[name] = PredictData(path, directory, examples, features)
    return data


# ----------------------------------------------------------------------------------------------
# Training


def squad_loss(outputs, batch, global_batch_size):
    """This replica's share of the global-batch mean of (start CE + end CE) / 2."""

    def cross_entropy(logits, labels):
        return tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=tf.cast(logits, tf.float32)
        )

    start = cross_entropy(outputs["start_logits"], batch["start_positions"])
    end = cross_entropy(outputs["end_logits"], batch["end_positions"])
    return tf.reduce_sum(start + end) / (2.0 * global_batch_size)


def trainable_variables(model):
    """The SQuAD model's trainable variables without the pooler, which the span head never uses
    (so it gets no gradient, as in the original)."""
    pooler = {id(v) for v in model.encoder.pooler.trainable_variables}
    return [v for v in model.trainable_variables if id(v) not in pooler]


def model_inputs(batch):
    """The features the SQuAD model reads (the rest are labels or ids)."""
    return {k: batch[k] for k in squad.MODEL_INPUT_KEYS}


class SquadTask:
    """Span prediction for `bert.training.Trainer`: the loss of `squad_loss`."""

    log_metrics = {}

    def model_inputs(self, batch):
        return model_inputs(batch)

    def trainable_variables(self, model):
        return trainable_variables(model)

    def global_counts(self, batch):
        return {}  # The loss is a mean over the (fixed) global batch.

    def losses(self, outputs, batch, counts, global_batch_size):
        return {"loss": squad_loss(outputs, batch, global_batch_size)}

    def metrics(self, totals, steps):
        return {"loss": totals["loss"] / steps}


def create_optimizer_and_schedule(
    name,
    schedule_kind,
    learning_rate,
    num_train_steps,
    num_warmup_steps,
    hparams=None,
):
    """The optimizer (original BERT AdamW settings by default) and its schedule."""
    shape = {"warmup_steps": num_warmup_steps, "total_steps": num_train_steps}
    if schedule_kind == "original_bert":
        schedule = optimization.create_schedule("original_bert", peak_lr=learning_rate, **shape)
    else:  # Linear warmup from 0, linear decay to 0.
        schedule = optimization.create_schedule(
            "warmup_poly", init_lr=0.0, peak_lr=learning_rate, final_lr=0.0, **shape
        )
    settings = {"epsilon": 1e-6, "weight_decay": 0.01, "clipnorm": 1.0}
    if name == "adamw":
        settings["bias_correction"] = False  # google-research/bert AdamWeightDecayOptimizer
    settings.update(hparams or {})
    return optimization.create_optimizer(name, schedule, **settings), schedule


def training_input(options, buckets, bucket_sizes, num_train_steps, static_lengths=True):
    """The trainer's input: one dataset_fn without buckets, else a BucketedInput whose
    schedule is fixed by the bucket sizes and --seed. Without `static_lengths` the buckets'
    datasets share one spec ([B, None]; see `squad.build_squad_dataset`): one trace of the
    training step for all buckets instead of one each (~15 s each for MiniLM on a CPU core)."""

    def dataset_fn_of(bound):
        def dataset_fn(ctx):
            return squad.build_squad_dataset(
                os.path.join(options.output_dir, "train.tf_record"),
                ctx.get_per_replica_batch_size(options.train_batch_size),
                options.max_seq_length,
                is_training=True,
                input_context=ctx,
                seed=options.seed,
                length_bucket=bound,
                static_length=static_lengths,
            )

        return dataset_fn

    if list(buckets) == [options.max_seq_length]:
        return dataset_fn_of(None)
    schedule = length_buckets.bucket_schedule(
        bucket_sizes, options.train_batch_size, num_train_steps, options.seed
    )
    return trainer_lib.BucketedInput([dataset_fn_of(b) for b in bucket_bounds(buckets)], schedule)


def fine_tune(
    strategy,
    model,
    config,
    vocab_file,
    num_train_steps,
    num_warmup_steps,
    options,
    hparams,
    train_input,
):
    """Trains on `train_input` (see `training_input`), resuming from output_dir/train_state,
    then saves the fine-tuned model. Returns the number of updates applied."""
    if options.mixed_precision == "fp16":  # Dynamic loss scaling skips overflowed steps.
        hparams = {**(hparams or {}), "skip_nonfinite": True}
    with strategy.scope():
        optimizer, schedule = create_optimizer_and_schedule(
            options.optimizer,
            options.schedule,
            options.learning_rate,
            num_train_steps,
            num_warmup_steps,
            hparams,
        )
    trainer = trainer_lib.Trainer(
        strategy,
        model,
        optimizer,
        schedule,
        SquadTask(),
        trainer_lib.TrainerOptions(
            model_dir=options.output_dir,
            checkpoint_dir=os.path.join(options.output_dir, TRAIN_STATE),
            num_train_steps=num_train_steps,
            train_batch_size=options.train_batch_size,
            steps_per_loop=options.iterations_per_loop,
            save_checkpoints_steps=options.save_checkpoints_steps,
            keep_checkpoint_max=1,
            jit_compile=options.jit_compile,
            mixed_precision=options.mixed_precision,
        ),
    )

    start = time.time()
    trainer.train(train_input)
    step = trainer.current_step()
    logging.info("Trained %d steps in %.1f s", step, time.time() - start)
    # The fine-tuned model alone (no optimizer state), as the chief's model dir; other
    # multi-worker workers write theirs to a directory of their own (the save is collective).
    chief = trainer.is_chief
    worker_dir = "" if chief else f"worker_tmp_{strategy.cluster_resolver.task_id}"
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model),
        os.path.join(options.output_dir, worker_dir),
        max_to_keep=1,
    )
    logging.info("Saved the fine-tuned model to %s", manager.save(checkpoint_number=step))
    # The config and vocab beside the checkpoint make output_dir a self-contained model dir.
    if chief:
        config.to_json_file(os.path.join(options.output_dir, FINE_TUNED_CONFIG))
        name = os.path.basename(vocab_file) if options.spm_model_file else "vocab.txt"
        copy = os.path.join(options.output_dir, name)
        if os.path.abspath(vocab_file) != os.path.abspath(copy):
            tf.io.gfile.copy(vocab_file, copy, overwrite=True)
    return step


# ----------------------------------------------------------------------------------------------
# Prediction and evaluation


def predict_compiled(options, strategy) -> bool:
    """Whether prediction is XLA-compiled: --predict_jit_compile, by default on TPU only."""
    return isinstance(strategy, tf.distribute.TPUStrategy) or bool(options.predict_jit_compile)


def make_predict_step(strategy, model, jit_compile=True):
    """The distributed forward pass of prediction, made once per model and reused for every
    batch, bucket and predict file. It takes an iterator, so it is traced once per input spec:
    off TPU every prediction dataset has the spec [B, None] (one trace; with `jit_compile`, XLA
    compiles each length on first use); a TPU traces each static bucket length."""

    def forward(inputs):
        return model(inputs, training=False)

    forward = tf.function(forward, jit_compile=jit_compile)

    def replica_fn(batch):
        outputs = forward(model_inputs(batch))
        return batch["unique_ids"], outputs["start_logits"], outputs["end_logits"]

    @tf.function
    @tf.autograph.experimental.do_not_convert
    def predict_step(iterator):
        return strategy.run(replica_fn, args=(next(iterator),))

    return predict_step


def prediction_inputs(strategy, options, record, lengths, config, compiled):
    """The prediction pass over `record` (windows sorted by length, see prepare_predict_data):
    [(dataset, batches)] and the bucket lengths (None without buckets).

    Compiled, the windows go in length buckets (--bucket_lengths), each one static shape.
    Without XLA, each batch is cut to its longest window: on a CPU core the TF graph (oneDNN)
    runs MiniLM's forward about as fast as XLA (0.95-1.13x at 128-384 tokens), and a new
    length costs no compilation (benchmarks/squad_step_rates.md)."""
    batch_size = options.predict_batch_size

    def pass_over(length_bucket, count, **kwargs):
        dataset = squad.build_squad_dataset(
            record,
            batch_size,
            options.max_seq_length,
            is_training=False,
            length_bucket=length_bucket,
            **kwargs,
        )
        if not isinstance(strategy, tf.distribute.OneDeviceStrategy):
            # One device reads the dataset itself (see distribute.distribute_datasets).
            dataset = strategy.experimental_distribute_dataset(dataset)
        return dataset, -(-count // batch_size)  # The last batch filled up with dummies.

    if not compiled:
        return [pass_over(None, len(lengths), cut_to_longest=True)], None
    buckets = choose_buckets(
        options,
        lengths,
        batch_size,
        -(-len(lengths) // batch_size),
        config,
        strategy.num_replicas_in_sync,
    )
    if list(buckets) == [options.max_seq_length]:
        return [pass_over(None, len(lengths))], buckets
    counts = np.bincount(length_buckets.assign_buckets(lengths, buckets), minlength=len(buckets))
    static = isinstance(strategy, tf.distribute.TPUStrategy)
    inputs = [
        pass_over(bound, count, static_length=static)
        for bound, count in zip(bucket_bounds(buckets), counts)
        if count
    ]
    return inputs, buckets


def padded_length(lengths, batch_size, buckets=None) -> float:
    """Mean tokens computed per window: its bucket's length, or (without buckets, the windows
    sorted by length) its batch's longest window."""
    if buckets is not None:
        return length_buckets.padded_tokens(lengths, buckets) / len(lengths)
    ordered = np.sort(lengths)
    return float(
        sum(
            len(b) * b.max() for b in np.split(ordered, range(batch_size, len(ordered), batch_size))
        )
        / len(ordered)
    )


def predict_results(strategy, predict_step, dataset, batches) -> list:
    """Runs `predict_step` (see `make_predict_step`) over `batches` batches of a prediction
    dataset; returns their `squad.RawResult`s, without the padding rows (unique id -1)."""
    results = []
    start_time = time.time()
    iterator = iter(dataset)
    for i in range(batches):
        outputs = [strategy.experimental_local_results(t) for t in predict_step(iterator)]
        for unique_ids, start_logits, end_logits in zip(*outputs):
            results += squad.raw_results_from_arrays(
                unique_ids.numpy(), start_logits.numpy(), end_logits.numpy()
            )
        if (i + 1) % 100 == 0:
            logging.info(
                "predicted %d batches (%.1f batches/s)", i + 1, (i + 1) / (time.time() - start_time)
            )
    return results


def evaluate(examples, predictions):
    """Official SQuAD v1.1 EM / F1 (max over each question's gold answers), plus counts."""
    answers = {example.qas_id: example.answers for example in examples}
    scores = squad.squad_metric.evaluate_answers(answers, predictions)
    return {
        **scores,
        "num_questions": len(answers),
        "num_predictions": sum(q in predictions for q in answers),
    }


def run_prediction(strategy, predict_step, data: PredictData, options, step, config):
    """Predicts one file with `predict_step` (see `make_predict_step`); writes predictions.json
    / nbest_predictions.json / eval_results.json and eval/ summaries to its directory."""
    examples, features, output_dir = data.examples, data.features, data.output_dir
    lengths = [sum(feature.input_mask) for feature in features]
    compiled = predict_compiled(options, strategy)
    record = os.path.join(output_dir, "eval.tf_record")
    start = time.time()
    inputs, buckets = prediction_inputs(strategy, options, record, lengths, config, compiled)
    results = []
    for dataset, batches in inputs:
        results += predict_results(strategy, predict_step, dataset, batches)
    predict_seconds = time.time() - start
    predictions = squad.write_predictions(
        examples,
        features,
        results,
        os.path.join(output_dir, "predictions.json"),
        os.path.join(output_dir, "nbest_predictions.json"),
        n_best_size=options.n_best_size,
        max_answer_length=options.max_answer_length,
        do_lower_case=options.do_lower_case,
    )
    scores = evaluate(examples, predictions)
    scores.update(
        num_examples=len(examples),
        num_features=len(features),
        predict_seconds=round(predict_seconds, 1),
        global_step=step,
        xla=compiled,
        bucket_lengths=None if buckets is None else [int(b) for b in buckets],
        padded_length=round(padded_length(lengths, options.predict_batch_size, buckets), 1),
    )
    fileio.write_json_atomic(os.path.join(output_dir, "eval_results.json"), scores)
    writer = tf.summary.create_file_writer(os.path.join(output_dir, "eval"))
    with writer.as_default(step=step):
        tf.summary.scalar("exact_match", scores["exact_match"])
        tf.summary.scalar("f1", scores["f1"])
    writer.flush()
    logging.info("Eval results (%s): %s", data.predict_file, json.dumps(scores))
    return scores


# ----------------------------------------------------------------------------------------------
# Entry point


def serve_demo(export_dir, question, context):
    """Answers `question` about `context` with an exported SavedModel; returns the dict."""
    from bert import serving

    answer = serving.answer(export_dir, question, context)
    print(json.dumps(answer, ensure_ascii=False))
    return answer


def run(options: SquadOptions) -> dict | None:
    """Fine-tunes, predicts and exports as the options say.

    Returns the eval scores of the predict file, {file stem: scores} for several, the spread
    (as in seed_spread.json) with --seeds, or None without --do_predict.
    """
    hparams = options.validate()
    if options.do_serve_demo:
        serve_demo(options.export_dir, options.question, options.context)
        return None
    strategy = opts.start_runtime(options)
    if options.seed_list:
        return run_seeds(options, hparams, strategy)
    results = run_one(options, hparams, strategy)
    if results is None or len(results) > 1:
        return results
    return next(iter(results.values()))


def fine_tuned_step(init_checkpoint) -> int:
    """Fine-tuning steps behind `init_checkpoint`: N for a SQuAD model this script wrote (its
    `ckpt-N`, found in a directory or given as a prefix), 0 for anything else."""
    prefix, graph = (
        checkpoints.object_checkpoint(init_checkpoint) if init_checkpoint else (None, None)
    )
    if not graph or "span_head" not in graph.get("model", ()):
        return 0
    match = re.search(r"-(\d+)$", prefix)
    return int(match.group(1)) if match else 0


def run_one(options: SquadOptions, hparams: dict, strategy) -> dict | None:
    """One fine-tuning / prediction / export in options.output_dir; returns {file stem: scores}
    of the predict files, or None without --do_predict."""
    tf.io.gfile.makedirs(options.output_dir)
    # A fine-tuned checkpoint in output_dir is the model to predict / export with.
    fine_tuned = tf.train.latest_checkpoint(options.output_dir)
    init_checkpoint = options.init_checkpoint
    if not options.do_train and fine_tuned:
        init_checkpoint = fine_tuned
    config = checkpoints.resolve_config(init_checkpoint, options.bert_config_file)
    vocab_file = options.spm_model_file or checkpoints.resolve_vocab_file(
        options.vocab_file, options.init_checkpoint or init_checkpoint
    )
    if options.max_seq_length > config.max_position_embeddings:
        raise ValueError(
            f"--max_seq_length {options.max_seq_length} exceeds the model's "
            f"max_position_embeddings {config.max_position_embeddings}"
        )
    tokenizer = tokenization.create_tokenizer(
        vocab_file=None if options.spm_model_file else vocab_file,
        spm_model_file=options.spm_model_file,
        do_lower_case=options.do_lower_case,
    )
    tokenization.check_vocab_fits_model(
        tokenizer.vocab, vocab_file, config.vocab_size, options.bert_config_file or init_checkpoint
    )
    replicas = strategy.num_replicas_in_sync
    for name in ("train_batch_size", "predict_batch_size"):
        if getattr(options, name) % replicas:
            raise ValueError(
                f"--{name}={getattr(options, name)} is not divisible by {replicas} replicas"
            )

    # Read and convert the data before building anything, so bad input fails fast.
    if options.do_train:
        num_examples, lengths = prepare_train_data(
            options.train_file,
            tokenizer,
            options.output_dir,
            options.seed,
            options.max_seq_length,
            options.doc_stride,
            options.max_query_length,
        )
        num_train_steps = int(num_examples / options.train_batch_size * options.num_train_epochs)
        if num_train_steps < 1:
            raise ValueError(
                f"{num_examples} questions, batch {options.train_batch_size} and "
                f"{options.num_train_epochs} epochs make no training step"
            )
        num_warmup_steps = int(num_train_steps * options.warmup_proportion)
        buckets = choose_buckets(
            options, lengths, options.train_batch_size, num_train_steps, config, replicas
        )
        bucket_info = length_buckets.describe(lengths, buckets, options.max_seq_length)
        fileio.write_json_atomic(
            os.path.join(options.output_dir, "train_buckets.json"), bucket_info
        )
        # A TPU compiles one program per static shape; elsewhere XLA compiles each length of
        # one traced step when it first runs.
        train_input = training_input(
            options,
            buckets,
            bucket_info["windows_per_bucket"],
            num_train_steps,
            static_lengths=isinstance(strategy, tf.distribute.TPUStrategy),
        )
        logging.info(
            "Training: %d questions, %d features, batch %d, %d steps (%d warmup); buckets %s "
            "(windows %s), %.1f%% padding (%.1f%% at %d tokens)",
            num_examples,
            len(lengths),
            options.train_batch_size,
            num_train_steps,
            num_warmup_steps,
            buckets,
            bucket_info["windows_per_bucket"],
            100 * bucket_info["padding_fraction"],
            100 * bucket_info["padding_fraction_without_buckets"],
            options.max_seq_length,
        )
    if options.do_predict:
        predict_data = prepare_all_predict_data(options, tokenizer)

    with strategy.scope():
        model = bert.build_squad_model(config)
        if init_checkpoint:
            logging.info(
                "Initialized the %s", checkpoints.initialize_from_checkpoint(model, init_checkpoint)
            )
        else:
            logging.warning("No --init_checkpoint: the model starts from random weights")

    if options.do_train:
        step = fine_tune(
            strategy,
            model,
            config,
            vocab_file,
            num_train_steps,
            num_warmup_steps,
            options,
            hparams,
            train_input,
        )
    else:  # Predicting with a fine-tuned model (from output_dir or --init_checkpoint).
        step = fine_tuned_step(init_checkpoint)

    results = None
    if options.do_predict:
        predict_step = make_predict_step(strategy, model, predict_compiled(options, strategy))
        results = {
            name: run_prediction(strategy, predict_step, data, options, step, config)
            for name, data in predict_data.items()
        }
        if len(results) > 1:
            by_file = {
                name: {"predict_file": predict_data[name].predict_file, **scores}
                for name, scores in results.items()
            }
            fileio.write_json_atomic(
                os.path.join(options.output_dir, "eval_results_by_file.json"), by_file
            )
        for scores in results.values():
            print(json.dumps(scores))

    if options.export_dir:
        from bert import serving

        serving.export_saved_model(
            model,
            vocab_file,
            options.export_dir,
            do_lower_case=options.do_lower_case,
            max_seq_length=options.max_seq_length,
            max_query_length=options.max_query_length,
            max_answer_length=options.max_answer_length,
        )
        logging.info("Exported the SavedModel to %s", options.export_dir)
    return results


def seed_spread(results_by_seed: dict) -> dict:
    """EM and F1 over seeds per predict file: mean, sample standard deviation (n - 1; 0 for
    one seed), min, max and the values in seed order, as Nado et al. report fine-tuning spread.

    `results_by_seed` is {seed: {file stem: scores}}.
    """
    seeds = list(results_by_seed)
    spread = {}
    for name in results_by_seed[seeds[0]]:
        spread[name] = {}
        for metric in ("exact_match", "f1"):
            values = np.array([results_by_seed[seed][name][metric] for seed in seeds])
            spread[name][metric] = {
                "mean": float(values.mean()),
                "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                "min": float(values.min()),
                "max": float(values.max()),
                "values": values.tolist(),
            }
    return {"seeds": seeds, "predict_files": spread}


def run_seeds(options: SquadOptions, hparams: dict, strategy) -> dict:
    """One fine-tuning per --seeds seed, all from the same checkpoint, each a complete
    output_dir/seed_<n>/ (so a killed seed resumes there); writes the spread of their EM/F1
    to output_dir/seed_spread.json and returns it."""
    import keras

    results_by_seed = {}
    for seed in options.seed_list:
        keras.backend.clear_session()  # A fresh model, named as in a run of its own.
        keras.utils.set_random_seed(seed)
        opts.set_mixed_precision(options.mixed_precision)  # clear_session resets the policy.
        export_dir = options.export_dir and os.path.join(options.export_dir, f"seed_{seed}")
        seed_options = dataclasses.replace(
            options,
            seed=seed,
            seeds="",
            output_dir=os.path.join(options.output_dir, f"seed_{seed}"),
            export_dir=export_dir,
        )
        logging.info("Seed %d: fine-tuning in %s", seed, seed_options.output_dir)
        results_by_seed[seed] = run_one(seed_options, hparams, strategy)
    spread = seed_spread(results_by_seed)
    fileio.write_json_atomic(os.path.join(options.output_dir, "seed_spread.json"), spread)
    for name, metrics in spread["predict_files"].items():
        logging.info(
            "Spread over seeds %s on %s: %s",
            spread["seeds"],
            name,
            ", ".join(
                f"{metric} mean {m['mean']:.2f} std {m['std']:.2f} min {m['min']:.2f} "
                f"max {m['max']:.2f}"
                for metric, m in metrics.items()
            ),
        )
    return spread


def main(argv):
    del argv
    opts.exit_if_preempted(lambda: run(opts.from_flags(SquadOptions)))


if __name__ == "__main__":
    opts.define_flags(SquadOptions, module_name=sys.argv[0])
    app.run(main)
