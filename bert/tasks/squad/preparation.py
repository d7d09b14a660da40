"""SQuAD data for fine-tuning and prediction: TFRecords, length buckets, the training input.

Training questions are shuffled (--seed) before windowing, as in the original, and written to
train.tf_record; each predict file's windows go to its eval.tf_record sorted by length. The
length buckets are chosen from the windows' real lengths (`choose_buckets`); the trainer's
input reads one bucket per step on a schedule fixed by the seed (`training_input`).
"""

import dataclasses
import os
import random
import time

import tensorflow as tf
from absl import logging

from bert.tasks.squad.options import predict_name
from bert.training import trainer as trainer_lib
from data import length_buckets, squad


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


def choose_buckets(
    lengths,
    batch_size,
    num_steps,
    config,
    *,
    max_seq_length,
    bucket_lengths=length_buckets.AUTO,
    num_buckets=length_buckets.DEFAULT_NUM_BUCKETS,
    compile_steps=None,
    replicas=1,
) -> list:
    """The bucket lengths of windows of `lengths`, read in `num_steps` global batches of
    `batch_size` over `replicas`: `bucket_lengths` as --bucket_lengths gives them, or chosen
    from the data (auto, at most `num_buckets`), each bucket repaying its compilation
    (`compile_steps`, --bucket_compile_steps; None: estimated); buckets of fewer than a batch
    of windows join a neighbour."""
    given = length_buckets.parse_bucket_lengths(bucket_lengths, max_seq_length)
    if given is None:
        if compile_steps is None:  # A replica's step time follows its share of the batch.
            compile_steps = estimated_compile_steps(config, batch_size // replicas, max_seq_length)
        bucket_cost = length_buckets.compile_cost_tokens(
            compile_steps, max_seq_length, len(lengths), num_steps
        )
        return length_buckets.choose_bucket_lengths(
            lengths, max_seq_length, num_buckets, min_count=batch_size, bucket_cost=bucket_cost
        )
    return length_buckets.merge_small_buckets(lengths, given, batch_size)


def bucket_bounds(buckets) -> list:
    """(shorter, length) of each bucket, as `squad.build_squad_dataset` takes them."""
    return list(zip([0, *buckets[:-1]], buckets))


def training_input(
    record,
    batch_size,
    max_seq_length,
    seed,
    buckets,
    bucket_sizes,
    num_train_steps,
    static_lengths=True,
):
    """The trainer's input over `record` (train.tf_record) in global batches of `batch_size`:
    one dataset_fn without buckets, else a BucketedInput whose schedule is fixed by the bucket
    sizes and `seed`. Without `static_lengths` the buckets' datasets share one spec ([B, None];
    see `squad.build_squad_dataset`): one trace of the training step for all buckets instead
    of one each (~15 s each for MiniLM on a CPU core)."""

    def dataset_fn_of(bound):
        def dataset_fn(ctx):
            return squad.build_squad_dataset(
                record,
                ctx.get_per_replica_batch_size(batch_size),
                max_seq_length,
                is_training=True,
                input_context=ctx,
                seed=seed,
                length_bucket=bound,
                static_length=static_lengths,
            )

        return dataset_fn

    if list(buckets) == [max_seq_length]:
        return dataset_fn_of(None)
    schedule = length_buckets.bucket_schedule(bucket_sizes, batch_size, num_train_steps, seed)
    return trainer_lib.BucketedInput([dataset_fn_of(b) for b in bucket_bounds(buckets)], schedule)


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


def prepare_all_predict_data(
    predict_files, tokenizer, output_dir, max_seq_length, doc_stride, max_query_length
) -> dict:
    """{name: PredictData} of every predict file. One file keeps the original layout (its
    outputs in output_dir); several each get output_dir/predictions/<name>/."""
    data = {}
    for path in predict_files:
        name = predict_name(path)
        directory = output_dir
        if len(predict_files) > 1:
            directory = os.path.join(output_dir, "predictions", name)
            tf.io.gfile.makedirs(directory)
        examples, features = prepare_predict_data(
            path, tokenizer, directory, max_seq_length, doc_stride, max_query_length
        )
        data[name] = PredictData(path, directory, examples, features)
    return data
