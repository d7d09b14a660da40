"""SQuAD prediction and scoring: the forward pass over each predict file, answers, EM / F1.

eval.tf_record holds the windows sorted by length. Off TPU the prediction step runs as a TF
graph (not XLA: on a CPU it is as fast per step, and no length needs compiling) and each batch
is cut to its longest window; with --predict_jit_compile, and always on TPU, it is
XLA-compiled and reads the windows in length buckets as training does.
"""

import json
import os
import time

import numpy as np
import tensorflow as tf
from absl import logging

from bert.tasks.squad.preparation import PredictData, bucket_bounds, choose_buckets
from bert.tasks.squad.task import model_inputs
from data import fileio, length_buckets, squad


def predict_compiled(strategy, predict_jit_compile=None) -> bool:
    """Whether prediction is XLA-compiled: --predict_jit_compile, by default on TPU only."""
    return isinstance(strategy, tf.distribute.TPUStrategy) or bool(predict_jit_compile)


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


def prediction_inputs(strategy, record, lengths, batch_size, max_seq_length, buckets=None):
    """The prediction pass over `record` (windows sorted by length, see prepare_predict_data)
    in batches of `batch_size`: [(dataset, batches)].

    With `buckets` (compiled prediction, see `choose_buckets`) the windows go in those length
    buckets, each one static shape. Without (None), each batch is cut to its longest window:
    on a CPU core the TF graph (oneDNN) runs MiniLM's forward about as fast as XLA (0.95-1.13x
    at 128-384 tokens), and a new length costs no compilation
    (benchmarks/squad_step_rates.md)."""

    def pass_over(length_bucket, count, **kwargs):
        dataset = squad.build_squad_dataset(
            record,
            batch_size,
            max_seq_length,
            is_training=False,
            length_bucket=length_bucket,
            **kwargs,
        )
        if not isinstance(strategy, tf.distribute.OneDeviceStrategy):
            # One device reads the dataset itself (see distribute.distribute_datasets).
            dataset = strategy.experimental_distribute_dataset(dataset)
        return dataset, -(-count // batch_size)  # The last batch filled up with dummies.

    if buckets is None:
        return [pass_over(None, len(lengths), cut_to_longest=True)]
    if list(buckets) == [max_seq_length]:
        return [pass_over(None, len(lengths))]
    counts = np.bincount(length_buckets.assign_buckets(lengths, buckets), minlength=len(buckets))
    static = isinstance(strategy, tf.distribute.TPUStrategy)
    return [
        pass_over(bound, count, static_length=static)
        for bound, count in zip(bucket_bounds(buckets), counts)
        if count
    ]


def prediction_buckets(strategy, lengths, batch_size, config, bucket_choice: dict) -> list:
    """The length buckets of compiled prediction over windows of `lengths`: one pass of
    batches of `batch_size`, chosen as `choose_buckets` does with `bucket_choice` (see
    `SquadOptions.bucket_choice`)."""
    return choose_buckets(
        lengths,
        batch_size,
        -(-len(lengths) // batch_size),
        config,
        replicas=strategy.num_replicas_in_sync,
        **bucket_choice,
    )


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
    """Predicts one file with `predict_step` (see `make_predict_step`) as `options` (the
    SquadOptions) say; writes predictions.json / nbest_predictions.json / eval_results.json
    and eval/ summaries to its directory."""
    examples, features, output_dir = data.examples, data.features, data.output_dir
    lengths = [sum(feature.input_mask) for feature in features]
    batch_size = options.predict_batch_size
    compiled = predict_compiled(strategy, options.predict_jit_compile)
    record = os.path.join(output_dir, "eval.tf_record")
    start = time.time()
    buckets = None
    if compiled:
        buckets = prediction_buckets(strategy, lengths, batch_size, config, options.bucket_choice())
    inputs = prediction_inputs(
        strategy, record, lengths, batch_size, options.max_seq_length, buckets
    )
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
        padded_length=round(padded_length(lengths, batch_size, buckets), 1),
    )
    fileio.write_json_atomic(os.path.join(output_dir, "eval_results.json"), scores)
    writer = tf.summary.create_file_writer(os.path.join(output_dir, "eval"))
    with writer.as_default(step=step):
        tf.summary.scalar("exact_match", scores["exact_match"])
        tf.summary.scalar("f1", scores["f1"])
    writer.flush()
    logging.info("Eval results (%s): %s", data.predict_file, json.dumps(scores))
    return scores
