"""The SQuAD span task for `bert.training.Trainer`: model inputs, loss, trainable variables.

Loss: mean over the global batch of (start cross-entropy + end cross-entropy) / 2. Each
replica computes its local sum divided by the GLOBAL batch; the optimizer sums over replicas.
The optimizer is the original BERT AdamW (or LAMB with the same settings), with its schedule.
"""

import tensorflow as tf

import optimization
from data import squad


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
    *,
    skip_nonfinite=False,
):
    """The optimizer (original BERT AdamW settings by default) and its schedule.

    `hparams` override the settings; `skip_nonfinite` as in
    `optimization.create_optimizer_and_schedule` (see `bert.training.precision`).
    """
    shape = {"warmup_steps": num_warmup_steps, "total_steps": num_train_steps}
    if schedule_kind == "original_bert":
        schedule = {"kind": "original_bert", "peak_lr": learning_rate, **shape}
    else:  # Linear warmup from 0, linear decay to 0.
        schedule = {"kind": "warmup_poly", "init_lr": 0.0, "peak_lr": learning_rate}
        schedule.update(final_lr=0.0, **shape)
    optimizer = {"name": name, "epsilon": 1e-6, "weight_decay": 0.01, "clipnorm": 1.0}
    if name == "adamw":
        optimizer["bias_correction"] = False  # google-research/bert AdamWeightDecayOptimizer
    optimizer.update(hparams or {})
    return optimization.create_optimizer_and_schedule(
        optimizer, schedule, skip_nonfinite=skip_nonfinite
    )
