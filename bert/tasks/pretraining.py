"""The pretraining task: masked-LM + next-sentence losses and metrics for `bert.training.Trainer`.

Loss scaling: every replica's loss is its local sum divided by a GLOBAL count (masked
positions, or examples of the global micro-batch), so the sum over replicas that the
optimizer takes is exactly the gradient of the global-batch mean loss.
"""

import tensorflow as tf


def pretraining_losses(
    outputs: dict, batch: dict, global_mlm_weight: tf.Tensor, global_batch_size: int
) -> dict:
    """Per-replica losses scaled to the global batch, plus metric numerators.

    Args:
      outputs: model outputs with "mlm_logits" [B, P, V] and "nsp_logits" [B, 2].
      batch: the input batch (masked_lm_ids, masked_lm_weights, next_sentence_labels).
      global_mlm_weight: sum of masked_lm_weights over the whole global (micro-)batch.
      global_batch_size: number of examples in the global (micro-)batch.
    """
    # [B*P, V]: the cross-entropy and the accuracy then reduce the same
    # tensor, and XLA computes the row maximum once (not per shape).
    mlm_logits = tf.cast(outputs["mlm_logits"], tf.float32)
    mlm_logits = tf.reshape(mlm_logits, (-1, tf.shape(mlm_logits)[-1]))
    mlm_ids = tf.reshape(batch["masked_lm_ids"], (-1,))
    nsp_logits = tf.cast(outputs["nsp_logits"], tf.float32)
    weights = tf.reshape(tf.cast(batch["masked_lm_weights"], tf.float32), (-1,))
    mlm_ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=mlm_ids, logits=mlm_logits)
    nsp_ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=batch["next_sentence_labels"], logits=nsp_logits
    )
    mlm_loss = tf.reduce_sum(mlm_ce * weights) / tf.maximum(global_mlm_weight, 1.0)
    nsp_loss = tf.reduce_sum(nsp_ce) / float(global_batch_size)
    mlm_correct = tf.cast(_label_is_max(mlm_logits, mlm_ids), tf.float32)
    nsp_correct = tf.cast(
        tf.equal(tf.argmax(nsp_logits, -1, output_type=tf.int32), batch["next_sentence_labels"]),
        tf.float32,
    )
    return {
        "loss": mlm_loss + nsp_loss,
        "mlm_loss": mlm_loss,
        "nsp_loss": nsp_loss,
        # Numerators of the accuracies; divided by global counts on the host.
        "mlm_correct": tf.reduce_sum(mlm_correct * weights),
        "mlm_weight": tf.reduce_sum(weights),
        "nsp_correct": tf.reduce_sum(nsp_correct),
        "examples": tf.cast(tf.shape(nsp_ce)[0], tf.float32),
    }


def _label_is_max(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Whether each label's logit is the largest one (the accuracy's numerator).

    Equal to `argmax(logits) == labels` except on exact ties, which count as
    correct here. It needs only the row maximum, which XLA shares with the
    cross-entropy, and a gather of one logit per row, where an argmax would be
    another full pass over the 30522-way vocabulary (cost: benchmarks/README.md).
    """
    label_logits = tf.gather(logits, labels, batch_dims=len(labels.shape))
    return label_logits >= tf.reduce_max(logits, axis=-1)


MODEL_INPUTS = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions")


def model_inputs(batch: dict) -> dict:
    """The features the pretraining model reads (the rest are labels)."""
    return {name: batch[name] for name in MODEL_INPUTS}


class PretrainingTask:
    """Masked-LM + next-sentence prediction, the task of `bert.build_pretraining_model`."""

    log_metrics = {"mlm_accuracy": "mlm_acc", "nsp_accuracy": "nsp_acc"}

    def model_inputs(self, batch: dict) -> dict:
        return model_inputs(batch)

    def trainable_variables(self, model) -> list:
        return model.trainable_variables

    def global_counts(self, batch: dict) -> dict:
        # The masked-LM loss is a mean over the masked positions of the GLOBAL batch.
        return {"mlm_weight": tf.reduce_sum(batch["masked_lm_weights"])}

    def losses(self, outputs, batch, counts, global_batch_size) -> dict:
        return pretraining_losses(outputs, batch, counts["mlm_weight"], global_batch_size)

    def metrics(self, totals: dict, steps: int) -> dict:
        return {
            "loss": totals["loss"] / steps,
            "mlm_loss": totals["mlm_loss"] / steps,
            "nsp_loss": totals["nsp_loss"] / steps,
            "mlm_accuracy": totals["mlm_correct"] / max(totals["mlm_weight"], 1.0),
            "nsp_accuracy": totals["nsp_correct"] / max(totals["examples"], 1.0),
        }
