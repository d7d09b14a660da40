r"""BERT pretraining, one phase per run: masked-LM + next-sentence prediction.

Phase 1 (sequence 128) and phase 2 (sequence 512, started from phase 1's weights with
the learning rate re-warmed from zero) take their batch, length, optimizer and schedule
from an experiment file in configs/; any flag given on the command line overrides it.

  python -m bert.run_pretraining --experiment=lamb_64k_32k --phase=1 \
      --input_file='gs://bucket/data/seq128/*.tfrecord' --model_dir=gs://bucket/lamb/phase1 \
      --strategy=tpu --tpu=my-tpu
  python -m bert.run_pretraining --experiment=lamb_64k_32k --phase=2 \
      --input_file='gs://bucket/data/seq512/*.tfrecord' --model_dir=gs://bucket/lamb/phase2 \
      --init_checkpoint=gs://bucket/lamb/phase1 --strategy=tpu --tpu=my-tpu

A killed job restarted with the same flags resumes from its latest checkpoint.
"""

import json
import os

from absl import app, flags, logging


def define_flags():
    """Command-line flags (defined only when run as a program)."""
    flags.DEFINE_string(
        "experiment", "tiny_lamb", "Experiment config: a name in configs/ or a path."
    )
    flags.DEFINE_integer("phase", 1, "Which phase of the experiment to run (1 or 2).")
    flags.DEFINE_string(
        "model_dir", None, "Where checkpoints, logs and summaries of this phase go."
    )
    flags.DEFINE_string(
        "input_file", None, "Glob (or comma list of globs) of pretraining TFRecords."
    )
    flags.DEFINE_string("eval_input_file", None, "TFRecords for evaluation (default: input_file).")
    flags.DEFINE_string(
        "init_checkpoint", None, "Checkpoint (or directory) of the previous phase to start from."
    )
    flags.DEFINE_bool(
        "keep_optimizer_state",
        False,
        "Phase 2: also restore the optimizer moments and update count from "
        "init_checkpoint (the schedule still restarts at its own step 0).",
    )
    flags.DEFINE_string(
        "bert_config_file", None, "bert_config.json overriding the experiment's model."
    )
    flags.DEFINE_enum(
        "strategy",
        "one_device",
        ["tpu", "multi_worker", "mirrored", "one_device"],
        "tf.distribute strategy.",
    )
    flags.DEFINE_string("tpu", "", "TPU name or grpc address for TPUClusterResolver.")
    flags.DEFINE_integer(
        "num_cpu_devices",
        0,
        "With --strategy=mirrored on a CPU-only host: logical CPU devices to use.",
    )
    flags.DEFINE_integer("train_batch_size", None, "GLOBAL batch size per optimizer update.")
    flags.DEFINE_integer(
        "gradient_accumulation_steps",
        None,
        "Micro-batches per update (train_batch_size must divide evenly).",
    )
    flags.DEFINE_integer("max_seq_length", None, "Sequence length of the input records.")
    flags.DEFINE_integer("max_predictions_per_seq", None, "Masked positions per sequence.")
    flags.DEFINE_integer("num_train_steps", None, "Optimizer updates in this phase.")
    flags.DEFINE_integer("num_warmup_steps", None, "Warmup updates of the schedule.")
    flags.DEFINE_float("learning_rate", None, "Peak learning rate of the schedule.")
    flags.DEFINE_string("optimizer", None, "Optimizer name overriding the experiment's.")
    flags.DEFINE_integer("steps_per_loop", 100, "Updates per host call of the compiled loop.")
    flags.DEFINE_integer("save_checkpoints_steps", 1000, "Checkpoint every this many updates.")
    flags.DEFINE_integer("keep_checkpoint_max", 5, "Checkpoints to keep.")
    flags.DEFINE_enum("mixed_precision", "none", ["bf16", "fp16", "none"], "Compute dtype policy.")
    flags.DEFINE_bool("jit_compile", True, "Compile the training step with XLA.")
    flags.DEFINE_bool("do_train", True, "Run training.")
    flags.DEFINE_bool("do_eval", True, "Evaluate masked-LM / next-sentence accuracy at the end.")
    flags.DEFINE_integer("eval_batch_size", None, "Global eval batch (default: the micro-batch).")
    flags.DEFINE_integer("max_eval_steps", 20, "Evaluation batches.")
    flags.DEFINE_bool(
        "dynamic_masking", False, "Mask in tf.data from unmasked records (fresh masks every epoch)."
    )
    flags.DEFINE_integer("seed", 12345, "Seed of the input pipeline and initialization.")


FLAGS = flags.FLAGS


def run_phase(
    experiment: str,
    phase: int,
    model_dir: str,
    input_file: str = None,
    eval_input_file: str = None,
    init_checkpoint: str = None,
    keep_optimizer_state: bool = False,
    bert_config_file: str = None,
    strategy: str = "one_device",
    tpu: str = "",
    num_cpu_devices: int = 0,
    overrides: dict = None,
    steps_per_loop: int = 100,
    save_checkpoints_steps: int = 1000,
    keep_checkpoint_max: int = 5,
    mixed_precision: str = "none",
    jit_compile: bool = True,
    do_train: bool = True,
    do_eval: bool = True,
    eval_batch_size: int = None,
    max_eval_steps: int = 20,
    dynamic_masking: bool = False,
    seed: int = 12345,
) -> dict:
    """Trains (and evaluates) one phase of an experiment; returns the last metrics.

    `overrides` holds phase fields (train_batch_size, num_train_steps, learning_rate,
    num_warmup_steps, optimizer, ...) that replace the experiment's values.
    """
    from bert import distribute

    if strategy == "mirrored":
        distribute.configure_cpu_devices(num_cpu_devices)
    import keras
    import tensorflow as tf
    import bert
    import optimization
    from bert import experiment as experiment_lib
    from bert import pretraining
    from data import pretraining_input

    if do_train and not input_file:
        raise ValueError("an input_file is required for training")
    exp = experiment_lib.load_experiment(experiment)
    phase_number = phase
    phase = experiment_lib.apply_overrides(exp.phase(phase_number), **(overrides or {}))
    model_source = bert_config_file or exp.model
    config = (
        bert.BertConfig.from_json_file(model_source)
        if model_source.endswith(".json")
        else bert.BertConfig.preset(model_source)
    )

    tf.io.gfile.makedirs(model_dir)
    keras.utils.set_random_seed(seed)
    pretraining.set_mixed_precision(mixed_precision)
    dist = distribute.create_strategy(strategy, tpu, num_cpu_devices)
    logging.info(
        "Strategy %s with %d replicas; phase %d: %s",
        type(dist).__name__,
        dist.num_replicas_in_sync,
        phase_number,
        phase,
    )

    step_offset = 0
    if keep_optimizer_state and init_checkpoint:
        step_offset = pretraining.optimizer_step_in_checkpoint(init_checkpoint)
    schedule_args = dict(phase.schedule)
    kind = schedule_args.pop("kind")
    if step_offset:
        schedule_args["step_offset"] = step_offset
    with dist.scope():
        model = bert.build_pretraining_model(config)
        schedule = optimization.create_schedule(kind, **schedule_args)
        optimizer_args = dict(phase.optimizer)
        name = optimizer_args.pop("name")
        if phase.gradient_accumulation_steps > 1:
            optimizer_args["gradient_accumulation_steps"] = phase.gradient_accumulation_steps
        if mixed_precision == "fp16":
            optimizer_args["skip_nonfinite"] = True  # dynamic loss scaling skips overflowed steps
        optimizer = optimization.create_optimizer(name, schedule, **optimizer_args)

    micro_batch = phase.train_batch_size // phase.gradient_accumulation_steps
    if micro_batch % dist.num_replicas_in_sync:
        raise ValueError(
            f"micro-batch {micro_batch} is not divisible by {dist.num_replicas_in_sync} replicas"
        )

    def make_dataset_fn(file_pattern, is_training, global_batch):
        def dataset_fn(ctx, skip_micro_batches):
            dataset = pretraining_input.build_dataset(
                file_pattern,
                batch_size=ctx.get_per_replica_batch_size(global_batch),
                seq_length=phase.max_seq_length,
                max_predictions_per_seq=phase.max_predictions_per_seq,
                is_training=is_training,
                input_context=ctx,
                seed=seed,
                dynamic_masking=dynamic_masking,
                vocab_size=config.vocab_size,
            )
            # Each micro-step takes one batch per replica fed by this pipeline.
            per_pipeline = ctx.num_replicas_in_sync // ctx.num_input_pipelines
            return (
                dataset.skip(skip_micro_batches * per_pipeline) if skip_micro_batches else dataset
            )

        return dataset_fn

    options = pretraining.TrainerOptions(
        model_dir=model_dir,
        num_train_steps=phase.num_train_steps,
        train_batch_size=phase.train_batch_size,
        gradient_accumulation_steps=phase.gradient_accumulation_steps,
        steps_per_loop=steps_per_loop,
        save_checkpoints_steps=save_checkpoints_steps,
        keep_checkpoint_max=keep_checkpoint_max,
        jit_compile=jit_compile,
        mixed_precision=mixed_precision,
    )
    trainer = pretraining.PretrainingTrainer(
        dist,
        model,
        optimizer,
        schedule,
        options,
        train_dataset_fn=make_dataset_fn(input_file, True, micro_batch),
        init_checkpoint=init_checkpoint,
        keep_optimizer_state=keep_optimizer_state,
    )
    if trainer.is_chief:
        pretraining.write_json_atomic(
            os.path.join(model_dir, "phase_config.json"),
            {
                "experiment": experiment,
                "phase": phase_number,
                "bert_config": config.to_dict(),
                "phase_config": phase.__dict__,
                "schedule_step_offset": step_offset,
                "strategy": strategy,
                "num_replicas": dist.num_replicas_in_sync,
            },
        )
    results = {}
    if do_train:
        results["train"] = trainer.train()
    if do_eval:
        eval_batch = eval_batch_size or micro_batch
        results["eval"] = trainer.evaluate(
            make_dataset_fn(eval_input_file or input_file, False, eval_batch),
            max_eval_steps,
            eval_batch,
        )
    return results


def main(argv):
    del argv
    if not FLAGS.model_dir:
        raise app.UsageError("--model_dir is required")
    if FLAGS.do_train and not FLAGS.input_file:
        raise app.UsageError("--input_file is required for training")
    overrides = {
        name: getattr(FLAGS, name)
        for name in (
            "train_batch_size",
            "gradient_accumulation_steps",
            "max_seq_length",
            "max_predictions_per_seq",
            "num_train_steps",
            "num_warmup_steps",
            "learning_rate",
            "optimizer",
        )
        if getattr(FLAGS, name) is not None
    }
    results = run_phase(
        FLAGS.experiment,
        FLAGS.phase,
        FLAGS.model_dir,
        input_file=FLAGS.input_file,
        eval_input_file=FLAGS.eval_input_file,
        init_checkpoint=FLAGS.init_checkpoint,
        keep_optimizer_state=FLAGS.keep_optimizer_state,
        bert_config_file=FLAGS.bert_config_file,
        strategy=FLAGS.strategy,
        tpu=FLAGS.tpu,
        num_cpu_devices=FLAGS.num_cpu_devices,
        overrides=overrides,
        steps_per_loop=FLAGS.steps_per_loop,
        save_checkpoints_steps=FLAGS.save_checkpoints_steps,
        keep_checkpoint_max=FLAGS.keep_checkpoint_max,
        mixed_precision=FLAGS.mixed_precision,
        jit_compile=FLAGS.jit_compile,
        do_train=FLAGS.do_train,
        do_eval=FLAGS.do_eval,
        eval_batch_size=FLAGS.eval_batch_size,
        max_eval_steps=FLAGS.max_eval_steps,
        dynamic_masking=FLAGS.dynamic_masking,
        seed=FLAGS.seed,
    )
    if "eval" in results:
        print(json.dumps(results["eval"]))


if __name__ == "__main__":
    define_flags()
    app.run(main)
