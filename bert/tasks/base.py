"""The contract between a task and `bert.training.Trainer`.

A task owns only what differs between tasks: which features the model reads, what it trains,
the loss and the numerators of its metrics. The trainer owns the rest (distribution, the
compiled step, loss scaling, checkpoints, logs). Tasks implement `Task` structurally (no base
class to inherit): `bert.tasks.pretraining.PretrainingTask`, the SQuAD task, or a new one
(tests/test_trainer.py trains a pair classifier written in 25 lines).
"""

from typing import Any, Protocol, runtime_checkable

import tensorflow as tf


@runtime_checkable
class Task(Protocol):
    """What `Trainer` calls on a task.

    Inside the compiled step, on each replica's micro-batch:

      1. `global_counts(batch)`: local sums (e.g. masked positions) that the trainer
         all-reduces (SUM) over replicas, so that a loss can be a mean over the GLOBAL batch;
      2. `model_inputs(batch)`: the features the model is called on (the rest are labels);
      3. `losses(outputs, batch, counts, global_batch_size)`: a dict of scalars with this
         replica's "loss" (its local sum divided by a GLOBAL count: `counts` or
         `global_batch_size`, the examples of the global micro-batch), so that the sum over
         replicas the optimizer takes is the gradient of the global-batch mean; plus the
         numerators of the metrics. Every value is summed over replicas and micro-steps.

    On the host, after each host call and evaluation:

      4. `metrics(totals, micro_steps)`: the metrics (at least "loss") from the sums of the
         values of `losses` over `micro_steps` micro-steps;
      5. `log_metrics`: metric name -> short name, the metrics in the progress line.

    And once: `trainable_variables(model)`, what the optimizer updates.
    """

    log_metrics: dict[str, str]

    def model_inputs(self, batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """The features the model reads."""
        ...

    def trainable_variables(self, model: Any) -> list:
        """The variables the optimizer updates."""
        ...

    def global_counts(self, batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Local sums over `batch` the trainer all-reduces (SUM) before `losses`."""
        ...

    def losses(
        self,
        outputs: Any,
        batch: dict[str, tf.Tensor],
        counts: dict[str, tf.Tensor],
        global_batch_size: int,
    ) -> dict[str, tf.Tensor]:
        """This replica's "loss", scaled to the global batch, plus metric numerators."""
        ...

    def metrics(self, totals: dict[str, float], micro_steps: int) -> dict[str, float]:
        """Host-side metrics from the summed values of `losses`."""
        ...
