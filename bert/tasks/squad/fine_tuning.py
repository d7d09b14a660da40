"""One SQuAD run in an output_dir: read the data, build the model, fine-tune, predict, export.

Training resumes from output_dir/train_state (model, optimizer and dropout states every
--save_checkpoints_steps); the fine-tuned model alone then goes to output_dir/ckpt-N with its
config and vocabulary beside it, so output_dir is a self-contained model directory that
--init_checkpoint (and prediction without --do_train) reads back.
"""

import json
import os
import re
import time

import tensorflow as tf
from absl import logging

import bert
from bert import checkpoints
from bert.tasks.squad import prediction
from bert.tasks.squad.preparation import (
    choose_buckets,
    prepare_all_predict_data,
    prepare_train_data,
    training_input,
)
from bert.tasks.squad.task import SquadTask, create_optimizer_and_schedule
from bert.training import checkpointing, precision
from bert.training import trainer as trainer_lib
from data import fileio, length_buckets, tokenization

FINE_TUNED_CONFIG = "bert_config.json"  # written beside the fine-tuned checkpoint
TRAIN_STATE = "train_state"  # output_dir subdirectory of the resumable training state


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


def prepare_training(options, tokenizer, config, strategy):
    """Writes train.tf_record and train_buckets.json; returns the trainer's input (see
    `training_input`), the number of training steps and of warmup steps."""
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
        lengths,
        options.train_batch_size,
        num_train_steps,
        config,
        replicas=strategy.num_replicas_in_sync,
        **options.bucket_choice(),
    )
    bucket_info = length_buckets.describe(lengths, buckets, options.max_seq_length)
    fileio.write_json_atomic(os.path.join(options.output_dir, "train_buckets.json"), bucket_info)
    # A TPU compiles one program per static shape; elsewhere XLA compiles each length of
    # one traced step when it first runs.
    train_input = training_input(
        os.path.join(options.output_dir, "train.tf_record"),
        options.train_batch_size,
        options.max_seq_length,
        options.seed,
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
    return train_input, num_train_steps, num_warmup_steps


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
    """Trains on `train_input` (see `training_input`) as `options` (the SquadOptions) say,
    resuming from output_dir/train_state, then saves the fine-tuned model (see
    `save_fine_tuned`). Returns the number of updates applied."""
    with strategy.scope():
        optimizer, schedule = create_optimizer_and_schedule(
            options.optimizer,
            options.schedule,
            options.learning_rate,
            num_train_steps,
            num_warmup_steps,
            hparams,
            skip_nonfinite=precision.skips_nonfinite(options.mixed_precision),
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
    vocab_name = os.path.basename(vocab_file) if options.spm_model_file else "vocab.txt"
    save_fine_tuned(
        strategy, model, step, trainer.is_chief, options.output_dir, config, vocab_file, vocab_name
    )
    return step


def save_fine_tuned(strategy, model, step, chief, output_dir, config, vocab_file, vocab_name):
    """Writes the fine-tuned model alone (no optimizer state) as output_dir/ckpt-`step` and,
    on the chief, the config and the vocabulary (as `vocab_name`) beside it."""
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model),
        checkpointing.worker_directory(strategy, output_dir),
        max_to_keep=1,
    )
    logging.info("Saved the fine-tuned model to %s", manager.save(checkpoint_number=step))
    # The config and vocab beside the checkpoint make output_dir a self-contained model dir.
    if chief:
        config.to_json_file(os.path.join(output_dir, FINE_TUNED_CONFIG))
        copy = os.path.join(output_dir, vocab_name)
        if os.path.abspath(vocab_file) != os.path.abspath(copy):
            tf.io.gfile.copy(vocab_file, copy, overwrite=True)


def run_one(options, hparams: dict, strategy) -> dict | None:
    """One fine-tuning / prediction / export in options.output_dir as `options` (the
    SquadOptions, validated) say; returns {file stem: scores} of the predict files, or None
    without --do_predict."""
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
        train_input, num_train_steps, num_warmup_steps = prepare_training(
            options, tokenizer, config, strategy
        )
    if options.do_predict:
        predict_data = prepare_all_predict_data(
            options.predict_files,
            tokenizer,
            options.output_dir,
            options.max_seq_length,
            options.doc_stride,
            options.max_query_length,
        )

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
        predict_step = prediction.make_predict_step(
            strategy, model, prediction.predict_compiled(strategy, options.predict_jit_compile)
        )
        results = {
            name: prediction.run_prediction(strategy, predict_step, data, options, step, config)
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
