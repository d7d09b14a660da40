"""The compiled training step, the loop of micro-steps one host call runs, and the eval step.

One replica's step: the task's loss on its micro-batch (scaled to the GLOBAL batch by counts
all-reduced first), its gradients (through the fp16 loss scale, if any), the optimizer's
update (which all-reduces, accumulates and clips) and the loss-scale update. On one device or
a TPU the whole step is one XLA program named STEP_FUNCTION_NAME; under
(MultiWorker)MirroredStrategy the optimizer's cross-replica all-reduce cannot run inside XLA,
so only the forward and backward pass are compiled.

With `log_gradient_noise_scale`, the step also measures the gradient noise scale (see
`GradientNoiseScale`) from norms it already has: no extra forward, backward or all-reduce.
"""

from collections.abc import Callable

import tensorflow as tf

# Name of the compiled per-replica update (found by profilers in XLA dumps and traces).
STEP_FUNCTION_NAME = "bert_train_step"


def global_norm(tensors) -> tf.Tensor:
    return tf.sqrt(global_norm_sq(tensors))


def global_norm_sq(tensors) -> tf.Tensor:
    # The same ops as the optimizer's clip by global norm, so that XLA can share them.
    return tf.add_n([tf.reduce_sum(tf.square(tf.cast(t, tf.float32))) for t in tensors])


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


def estimate_noise_scale(
    small_sq: float, big_sq: float, small_batch: float, big_batch: float
) -> tuple[float, float]:
    """(|G|^2, tr(Sigma)) from mean squared gradient norms at two batch sizes.

    McCandlish et al. 2018, appendix A: E|G_B|^2 = |G|^2 + tr(Sigma) / B, so the two batch
    sizes give unbiased estimates of both. Average each over many steps before dividing
    (B_simple = tr(Sigma) / |G|^2): a single step's pair is too noisy.
    """
    grad_sq = (big_batch * big_sq - small_batch * small_sq) / (big_batch - small_batch)
    trace = (small_sq - big_sq) / (1.0 / small_batch - 1.0 / big_batch)
    return grad_sq, trace


class GradientNoiseScale:
    """B_simple = tr(Sigma) / |G|^2 from the two gradients every step already has.

    Small batch: one replica's micro-batch (its gradient times the replica count is the mean
    gradient over its examples; exact for per-example means, up to the spread of masked
    positions between replicas for the masked LM). Big batch: the whole update's batch, the
    all-reduced gradient the optimizer gets, averaged over the accumulated micro-batches. With
    one replica and no accumulation the two are the same batch and nothing is measured.

    Each micro-step returns weighted squared norms whose sums over replicas and micro-steps
    (what `TrainStep.run` returns) are per-update sums; `metrics` turns a host call's sums
    into the logged estimate. Non-finite norms (fp16 overflow) get weight 0.
    """

    def __init__(self, micro_batch_size: int, num_replicas: int, accumulation_steps: int):
        self.num_replicas, self.accumulation_steps = num_replicas, accumulation_steps
        self.small_batch = micro_batch_size / num_replicas
        self.big_batch = micro_batch_size * accumulation_steps

    @staticmethod
    def measurable(num_replicas: int, accumulation_steps: int) -> bool:
        """Whether a step has two different batch sizes to compare."""
        return num_replicas * accumulation_steps > 1

    def big_grad_sq(self, optimizer, grads, variables) -> tuple[tf.Tensor, tf.Tensor]:
        """(|G_big|^2, whether this micro-step completes an update), from the reduced grads."""
        k = self.accumulation_steps
        if k == 1:
            return global_norm_sq(grads), tf.constant(True)
        # The optimizer's accumulators before this micro-step's update (as its wrapper adds).
        sums = [_read(optimizer.slot(v, "accumulator")) + g for v, g in zip(variables, grads)]
        is_update = tf.equal(_read(optimizer.micro_step) + 1, k)
        return global_norm_sq([s / k for s in sums]), is_update

    def step_values(self, local_grad_sq, big_sq, is_update) -> dict:
        """This replica's share of the per-update sums of one micro-step."""
        r, k = self.num_replicas, self.accumulation_steps
        small = tf.math.is_finite(local_grad_sq)
        big = tf.logical_and(is_update, tf.math.is_finite(big_sq))
        zero = tf.zeros([], tf.float32)
        return {  # |G_small|^2 = r^2 local_grad_sq; r * k of them per update; r replicas report.
            "noise_small_sq": tf.where(small, local_grad_sq * (r / k), zero),
            "noise_small_weight": tf.where(small, 1.0 / (r * k), 0.0),
            "noise_big_sq": tf.where(big, big_sq / r, zero),
            "noise_big_weight": tf.where(big, 1.0 / r, 0.0),
        }

    def metrics(self, totals: dict) -> dict:
        """The logged estimate of a host call's sums: `noise_trace` (tr(Sigma)), `grad_sq_true`
        (|G|^2) and, when both are positive, `gradient_noise_scale`."""
        if min(totals["noise_small_weight"], totals["noise_big_weight"]) <= 0:
            return {}
        grad_sq, trace = estimate_noise_scale(
            totals["noise_small_sq"] / totals["noise_small_weight"],
            totals["noise_big_sq"] / totals["noise_big_weight"],
            self.small_batch,
            self.big_batch,
        )
        metrics = {"noise_trace": trace, "grad_sq_true": grad_sq}
        if grad_sq > 0 and trace > 0:
            metrics["gradient_noise_scale"] = trace / grad_sq
        return metrics


def _read(variable) -> tf.Tensor:
    return tf.convert_to_tensor(getattr(variable, "value", variable))


class TrainStep:
    """The per-replica update of one micro-batch and the loop of them in one host call.

    Args:
      strategy, model, optimizer, task: those of the run (`bert.tasks.base.Task`).
      variables: the task's trainable variables (what the optimizer updates).
      micro_batch_size: examples of one global micro-batch (the task's loss denominator).
      loss_scale: a `precision.DynamicLossScale`, or None.
      jit_compile: XLA-compile the step (see the module docstring for what is compiled).
      gradient_accumulation_steps: micro-batches per update (the optimizer's).
      log_gradient_noise_scale: measure it (`GradientNoiseScale`) when a step has two batch
        sizes; `noise_scale` is then set and `noise_scale_metrics` returns the estimate.
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
        gradient_accumulation_steps: int = 1,
        log_gradient_noise_scale: bool = False,
    ):
        self.strategy, self.model, self.optimizer, self.task = strategy, model, optimizer, task
        self.variables = variables
        self.micro_batch_size = micro_batch_size
        self.loss_scale = loss_scale
        replicas = strategy.num_replicas_in_sync
        self.noise_scale = (
            GradientNoiseScale(micro_batch_size, replicas, gradient_accumulation_steps)
            if log_gradient_noise_scale
            and GradientNoiseScale.measurable(replicas, gradient_accumulation_steps)
            else None
        )
        noise_scale = self.noise_scale
        whole_step = compiles_whole_step(strategy, jit_compile)
        compute_gradients = self.compute_gradients
        if jit_compile and not whole_step:
            compute_gradients = tf.function(compute_gradients, jit_compile=True)

        def step(batch):
            ctx = tf.distribute.get_replica_context()
            grads, losses = compute_gradients(batch, global_counts(task, ctx, batch))
            if noise_scale is None:
                optimizer.apply_gradients(zip(grads, variables))
            else:
                big = []  # filled by the optimizer's observer with its reduced gradients
                optimizer.apply(
                    grads,
                    variables,
                    observe=lambda g, v: big.extend(noise_scale.big_grad_sq(optimizer, g, v)),
                )
                losses.update(noise_scale.step_values(losses["local_grad_sq"], *big))
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

    def noise_scale_metrics(self, totals: dict) -> dict:
        """The gradient noise scale of a host call's `totals` ({} when not measured)."""
        return {} if self.noise_scale is None else self.noise_scale.metrics(totals)

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
