"""One pretraining phase of an experiment: its options and the driver that runs it.

`run_phase(PretrainingOptions(...))` loads the experiment (configs/ or a path), applies the
phase overrides, builds the model, optimizer and schedule, and trains and evaluates the
`PretrainingTask` with the `Trainer`, resuming from the phase's latest checkpoint or starting
from the previous phase's (`init_checkpoint`). `python -m bert.run_pretraining` is this with
flags; a study builds its trials with it.
"""

import dataclasses
import os

import tensorflow as tf
from absl import app, logging

import bert
import optimization
from bert import checkpoints
from bert.tasks import pretraining
from bert.training import experiment as experiment_lib
from bert.training import options as opts
from bert.training import precision
from bert.training import trainer as trainer_lib
from bert.training.options import option
from data import fileio, pretraining_input


@dataclasses.dataclass
class PretrainingOptions(opts.RuntimeOptions):
    """One phase's run: the flags of `python -m bert.run_pretraining` (fields marked PHASE
    override the experiment's phase)."""

    experiment: str = option("tiny_lamb", "Experiment config: a name in configs/ or a path.")
    phase: int = option(1, "Which phase of the experiment to run (1 or 2).")
    model_dir: str | None = option(None, "Where checkpoints, logs and summaries of this phase go.")
    input_file: str | None = option(None, "Glob (or comma list of globs) of pretraining TFRecords.")
    eval_input_file: str | None = option(None, "TFRecords for evaluation (default: input_file).")
    init_checkpoint: str | None = option(
        None, "Checkpoint (or directory) of the previous phase to start from."
    )
    keep_optimizer_state: bool = option(
        False,
        "Phase 2: also restore the optimizer moments and update count from "
        "init_checkpoint (the schedule still restarts at its own step 0).",
    )
    bert_config_file: str | None = option(
        None, "bert_config.json overriding the experiment's model."
    )
    # PHASE: None keeps the experiment's value.
    train_batch_size: int | None = option(None, "GLOBAL batch size per optimizer update.")
    gradient_accumulation_steps: int | None = option(
        None, "Micro-batches per update (train_batch_size must divide evenly)."
    )
    max_seq_length: int | None = option(None, "Sequence length of the input records.")
    max_predictions_per_seq: int | None = option(None, "Masked positions per sequence.")
    num_train_steps: int | None = option(None, "Optimizer updates in this phase.")
    num_warmup_steps: int | None = option(None, "Warmup updates of the schedule.")
    learning_rate: float | None = option(None, "Peak learning rate of the schedule.")
    optimizer: str | None = option(None, "Optimizer name overriding the experiment's.")
    # Loop and outputs.
    steps_per_loop: int = option(100, "Updates per host call of the compiled loop.")
    save_checkpoints_steps: int = option(1000, "Checkpoint every this many updates.")
    keep_checkpoint_max: int = option(5, "Checkpoints to keep.")
    do_train: bool = option(True, "Run training.")
    do_eval: bool = option(True, "Evaluate masked-LM / next-sentence accuracy at the end.")
    eval_batch_size: int | None = option(None, "Global eval batch (default: the micro-batch).")
    max_eval_steps: int = option(20, "Evaluation batches (the whole held-out slice if any).")
    heldout_examples: int = option(
        0,
        "Hold the first N records of input_file (in file order) out of training and evaluate "
        "on them instead (Nado et al. select trials on 10k training examples).",
    )
    eval_every_steps: int = option(
        0, "Also evaluate every N updates during training (eval_log.jsonl: the learning curve)."
    )
    dynamic_masking: bool = option(
        False, "Mask in tf.data from unmasked records (fresh masks every epoch)."
    )
    log_gradient_noise_scale: bool = option(
        True,
        "Log the gradient noise scale B_simple = tr(Sigma)/|G|^2 (McCandlish et al. 2018) and "
        "its parts noise_trace and grad_sq_true, from one replica's micro-batch gradient and "
        "the whole update's: needs several replicas or gradient_accumulation_steps > 1 (with "
        "one replica and no accumulation nothing is logged).",
    )
    skip_corrupt_records: bool = option(
        False,
        "Skip the rest of a TFRecord file from its first unreadable (truncated or corrupt) "
        "record on, with a warning naming the file and counts in the logs and TensorBoard, "
        "instead of failing with the file's name.",
    )

    PHASE_OVERRIDES = (
        "train_batch_size",
        "gradient_accumulation_steps",
        "max_seq_length",
        "max_predictions_per_seq",
        "num_train_steps",
        "num_warmup_steps",
        "learning_rate",
        "optimizer",
    )

    def phase_overrides(self) -> dict:
        """The phase fields given on the command line."""
        return {
            name: getattr(self, name)
            for name in self.PHASE_OVERRIDES
            if getattr(self, name) is not None
        }

    def validate(self) -> None:
        if not self.model_dir:
            raise app.UsageError("--model_dir is required")
        if self.do_train and not self.input_file:
            raise app.UsageError("--input_file is required for training")


def load_phase(options: PretrainingOptions) -> tuple:
    """(phase config with the options' overrides, BertConfig, model source) of a run."""
    exp = experiment_lib.load_experiment(options.experiment)
    phase = experiment_lib.apply_overrides(exp.phase(options.phase), **options.phase_overrides())
    source = options.bert_config_file or exp.model
    config = (
        bert.BertConfig.from_json_file(source)
        if source.endswith(".json")
        else bert.BertConfig.preset(source)
    )
    return phase, config, source


def check_inputs(options: PretrainingOptions, config, model_source: str) -> None:
    """Refuses training or evaluation records made with another vocabulary than the model's."""
    for pattern in filter(None, (options.input_file, options.eval_input_file)):
        pretraining_input.check_vocab_size(pattern, config.vocab_size, model_source)


def schedule_step_offset(options: PretrainingOptions) -> int:
    """Updates already counted by the optimizer state the run starts from (kept moments)."""
    if options.keep_optimizer_state and options.init_checkpoint:
        return checkpoints.optimizer_step_in_checkpoint(options.init_checkpoint)
    return 0


def micro_batch_size(phase, strategy) -> int:
    """The global batch of one accumulated micro-step (every replica gets an equal share)."""
    micro_batch = phase.train_batch_size // phase.gradient_accumulation_steps
    if micro_batch % strategy.num_replicas_in_sync:
        raise ValueError(
            f"micro-batch {micro_batch} is not divisible by "
            f"{strategy.num_replicas_in_sync} replicas"
        )
    return micro_batch


def make_dataset_fn(
    options: PretrainingOptions,
    phase,
    config,
    file_pattern: str,
    is_training: bool,
    global_batch: int,
    seed: int,
    heldout: bool = False,
    corrupt_record_counter=None,
):
    """The distributed input of a phase: training records (the held-out slice skipped), the
    held-out slice (`heldout`) or other evaluation records."""

    def dataset_fn(ctx):
        return pretraining_input.build_dataset(
            file_pattern,
            batch_size=ctx.get_per_replica_batch_size(global_batch),
            seq_length=phase.max_seq_length,
            max_predictions_per_seq=phase.max_predictions_per_seq,
            is_training=is_training,
            input_context=ctx,
            seed=seed,
            dynamic_masking=options.dynamic_masking,
            vocab_size=config.vocab_size,
            skip_corrupt_records=options.skip_corrupt_records,
            corrupt_record_counter=corrupt_record_counter,
            heldout_examples=options.heldout_examples if is_training or heldout else 0,
            heldout=heldout,
        )

    return dataset_fn


def eval_input(options: PretrainingOptions, micro_batch: int) -> tuple:
    """(records, global batch, batches, from the held-out slice) that evaluate a phase."""
    eval_batch = options.eval_batch_size or micro_batch
    if options.heldout_examples and not options.eval_input_file:
        batches = options.heldout_examples // eval_batch
        if not batches:
            raise ValueError(
                f"--heldout_examples={options.heldout_examples} is smaller than one evaluation "
                f"batch ({eval_batch}); hold out more or lower --eval_batch_size"
            )
        return options.input_file, eval_batch, batches, True
    return options.eval_input_file or options.input_file, eval_batch, options.max_eval_steps, False


def run_phase(options: PretrainingOptions) -> dict:
    """Trains (and evaluates) one phase of an experiment; returns {"train": ..., "eval": ...}."""
    options.validate()
    strategy = opts.start_runtime(options)
    phase, config, source = load_phase(options)
    check_inputs(options, config, source)
    tf.io.gfile.makedirs(options.model_dir)
    logging.info(
        "Strategy %s with %d replicas; phase %d: %s",
        type(strategy).__name__,
        strategy.num_replicas_in_sync,
        options.phase,
        phase,
    )

    step_offset = schedule_step_offset(options)
    with strategy.scope():
        model = bert.build_pretraining_model(config)
        optimizer, schedule = optimization.create_optimizer_and_schedule(
            phase.optimizer,
            phase.schedule,
            step_offset=step_offset,
            gradient_accumulation_steps=phase.gradient_accumulation_steps,
            skip_nonfinite=precision.skips_nonfinite(options.mixed_precision),
        )
    micro_batch = micro_batch_size(phase, strategy)
    corrupt_records = pretraining_input.CorruptRecordCounter()

    trainer = trainer_lib.Trainer(
        strategy,
        model,
        optimizer,
        schedule,
        pretraining.PretrainingTask(),
        trainer_lib.TrainerOptions(
            model_dir=options.model_dir,
            num_train_steps=phase.num_train_steps,
            train_batch_size=phase.train_batch_size,
            gradient_accumulation_steps=phase.gradient_accumulation_steps,
            steps_per_loop=options.steps_per_loop,
            save_checkpoints_steps=options.save_checkpoints_steps,
            keep_checkpoint_max=options.keep_checkpoint_max,
            eval_every_steps=options.eval_every_steps,
            jit_compile=options.jit_compile,
            mixed_precision=options.mixed_precision,
            log_gradient_noise_scale=options.log_gradient_noise_scale,
        ),
    )
    if not trainer.restored_from and options.init_checkpoint:
        # Encoder AND pretraining heads come from the previous phase; moments start fresh
        # unless --keep_optimizer_state.
        trainer.initialize_from(options.init_checkpoint, options.keep_optimizer_state)
    if trainer.is_chief:
        fileio.write_json_atomic(
            os.path.join(options.model_dir, "phase_config.json"),
            {
                "experiment": options.experiment,
                "phase": options.phase,
                "bert_config": config.to_dict(),
                "phase_config": phase.__dict__,
                "schedule_step_offset": step_offset,
                "strategy": options.strategy,
                "num_replicas": strategy.num_replicas_in_sync,
            },
        )
    eval_file, eval_batch, eval_steps, heldout = eval_input(options, micro_batch)
    eval_dataset_fn = make_dataset_fn(
        options, phase, config, eval_file, False, eval_batch, options.seed, heldout, corrupt_records
    )

    def evaluate():
        return _naming_corrupt_files(
            eval_file, lambda: trainer.evaluate(eval_dataset_fn, eval_steps, eval_batch)
        )

    results = {}
    if options.do_train:
        train_dataset_fn = make_dataset_fn(
            options,
            phase,
            config,
            options.input_file,
            True,
            micro_batch,
            options.seed,
            corrupt_record_counter=corrupt_records,
        )
        results["train"] = _naming_corrupt_files(
            options.input_file,
            lambda: trainer.train(
                train_dataset_fn,
                host_metrics=corrupt_records.metrics if options.skip_corrupt_records else None,
                evaluate=evaluate if options.do_eval else None,
            ),
        )
    if options.do_eval:
        results["eval"] = evaluate()
    return results


def _naming_corrupt_files(file_pattern, run):
    """Runs `run()`; TensorFlow's DataLossError (no file name) becomes one naming the file."""
    try:
        return run()
    except tf.errors.DataLossError:
        error = pretraining_input.find_corrupt_file(file_pattern)
        if error is None:
            raise
        raise error from None
