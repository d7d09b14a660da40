"""The compiled training step, the loop of micro-steps one host call runs, and the eval step.

One replica's step: the task's loss on its micro-batch (scaled to the GLOBAL batch by counts
all-reduced first), its gradients (through the fp16 loss scale, if any), the optimizer's
update (which all-reduces, accumulates and clips) and the loss-scale update. On one device or
a TPU the whole step is one XLA program named STEP_FUNCTION_NAME; under
(MultiWorker)MirroredStrategy the optimizer's cross-replica all-reduce cannot run inside XLA,
so only the forward and backward pass are compiled.
"""

from collections.abc import Callable

import tensorflow as tf

# Name of the compiled per-replica update (found by profilers in XLA dumps and traces).
STEP_FUNCTION_NAME = "bert_train_step"


def global_norm(tensors) -> tf.Tensor:
    return tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(tf.cast(t, tf.float32))) for t in tensors]))


def sum_over_replicas(strategy, per_replica: dict) -> dict:
    return {
        k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()
    }


def global_counts(task, ctx, batch: dict) -> dict:
    """The task's global counts of `batch`: its local sums, summed over replicas."""
    return {
        name: ctx.all_reduce(tf.distribute.ReduceOp.SUM, value)
        for name, value in task.global_counts(batch).items()
    }


def compiles_whole_step(strategy, jit_compile: bool) -> bool:
    """Whether the whole replica step (optimizer update included) is one XLA program."""
    return jit_compile and isinstance(
        strategy, (tf.distribute.OneDeviceStrategy, tf.distribute.TPUStrategy)
    )


class TrainStep:
    """The per-replica update of one micro-batch and the loop of them in one host call.

    Args:
      strategy, model, optimizer, task: those of the run (`bert.tasks.base.Task`).
      variables: the task's trainable variables (what the optimizer updates).
      micro_batch_size: examples of one global micro-batch (the task's loss denominator).
      loss_scale: a `precision.DynamicLossScale`, or None.
      jit_compile: XLA-compile the step (see the module docstring for what is compiled).
    """

    def __init__(
        self,
        strategy,
        model,
        optimizer,
        task,
        variables,
        micro_batch_size: int,
        loss_scale=None,
        jit_compile: bool = True,
    ):
        self.strategy, self.model, self.optimizer, self.task = strategy, model, optimizer, task
        self.variables = variables
        self.micro_batch_size = micro_batch_size
        self.loss_scale = loss_scale
        whole_step = compiles_whole_step(strategy, jit_compile)
        compute_gradients = self.compute_gradients
        if jit_compile and not whole_step:
            compute_gradients = tf.function(compute_gradients, jit_compile=True)

        def step(batch):
            ctx = tf.distribute.get_replica_context()
            grads, losses = compute_gradients(batch, global_counts(task, ctx, batch))
            optimizer.apply_gradients(zip(grads, variables))
            if loss_scale is not None:
                loss_scale.update(ctx, losses["local_grad_sq"])
            return losses

        step.__name__ = STEP_FUNCTION_NAME
        self.step = tf.function(step, jit_compile=True) if whole_step else step
        replica_step = self.step

        # The first micro-step runs before the loop so that the loop-carried totals exist.
        @tf.function
        def loop(iterator, num_micro_steps):
            totals = sum_over_replicas(strategy, strategy.run(replica_step, (next(iterator),)))
            for _ in tf.range(num_micro_steps - 1):
                new = sum_over_replicas(strategy, strategy.run(replica_step, (next(iterator),)))
                totals = {k: totals[k] + new[k] for k in totals}
            return totals

        self.loop = loop

    def compute_gradients(self, batch: dict, counts: dict):
        """Gradients of this replica's loss and the loss dict (plus "local_grad_sq")."""
        scale = None if self.loss_scale is None else self.loss_scale.scale
        with tf.GradientTape() as tape:
            outputs = self.model(self.task.model_inputs(batch), training=True)
            losses = self.task.losses(outputs, batch, counts, self.micro_batch_size)
            scaled = losses["loss"] if scale is None else losses["loss"] * scale
        grads = tape.gradient(scaled, self.variables)
        if scale is not None:
            grads = [tf.convert_to_tensor(g) / scale for g in grads]
        losses["local_grad_sq"] = tf.square(global_norm(grads))
        return grads, losses

    def run(self, iterator, num_micro_steps: int) -> dict:
        """Runs `num_micro_steps` micro-steps in one host call; returns the summed values."""
        totals = self.loop(iterator, tf.constant(num_micro_steps, tf.int32))
        return {name: float(value) for name, value in totals.items()}


def make_eval_step(strategy, model, task, global_batch_size: int) -> Callable:
    """The distributed evaluation step: the task's losses of a global batch, summed."""

    def replica_eval(batch):
        counts = global_counts(task, tf.distribute.get_replica_context(), batch)
        outputs = model(task.model_inputs(batch), training=False)
        return task.losses(outputs, batch, counts, global_batch_size)

    @tf.function
    def eval_step(batch):
        return sum_over_replicas(strategy, strategy.run(replica_eval, args=(batch,)))

    return eval_step
