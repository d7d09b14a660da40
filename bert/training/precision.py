"""The precision policy of a run: compute dtypes, loss scaling and skipping non-finite updates.

`--mixed_precision` is one of MIXED_PRECISION. bf16 keeps fp32's exponent range and needs
nothing more. fp16 overflows: its gradients are computed on a loss multiplied by a dynamic
scale (`DynamicLossScale`), and an update whose gradient overflowed must change nothing, so the
optimizer is built with `skip_nonfinite=skips_nonfinite(mode)` (the argument of
`optimization.create_optimizer_and_schedule`). Both decisions are made here, from the mode,
and nowhere else.
"""

import tensorflow as tf

MIXED_PRECISION = ("bf16", "fp16", "none")

_KERAS_POLICIES = {"bf16": "mixed_bfloat16", "fp16": "mixed_float16", "none": "float32"}


def set_mixed_precision(mode: str) -> None:
    """Sets the Keras global dtype policy for bf16 / fp16 / none."""
    import keras

    if mode not in _KERAS_POLICIES:
        raise ValueError(
            f"--mixed_precision must be one of {sorted(_KERAS_POLICIES)}, got {mode!r}"
        )
    keras.mixed_precision.set_global_policy(_KERAS_POLICIES[mode])


def uses_loss_scaling(mode: str) -> bool:
    """Whether the loss is scaled dynamically (fp16: small gradients would underflow)."""
    return mode == "fp16"


def skips_nonfinite(mode: str) -> bool:
    """Whether the optimizer must skip updates whose gradient has an inf or NaN.

    Dynamic loss scaling overflows on purpose now and then (that is how it finds the scale),
    so it is exactly the loss-scaled modes.
    """
    return uses_loss_scaling(mode)


def check_optimizer(optimizer, mode: str) -> None:
    """ValueError if `optimizer` (from `optimization.create_optimizer`) does not fit `mode`."""
    if skips_nonfinite(mode) and not getattr(optimizer, "hparams", {}).get("skip_nonfinite"):
        raise ValueError(f"{mode} training needs an optimizer created with skip_nonfinite=True")


class DynamicLossScale:
    """The fp16 loss scale: halved after an overflowed step, doubled after a run of good ones.

    `scale` and `good_steps` are variables of the run (created in `strategy`'s scope, one value
    for all replicas) and go into its checkpoints (`trackables`).
    """

    def __init__(self, strategy, initial_scale: float, growth_interval: int):
        self.growth_interval = growth_interval
        with strategy.scope():
            sync = dict(
                synchronization=tf.VariableSynchronization.ON_WRITE,
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
                trainable=False,
            )
            self.scale = tf.Variable(initial_scale, dtype=tf.float32, name="loss_scale", **sync)
            self.good_steps = tf.Variable(0, dtype=tf.int64, name="good_steps", **sync)

    def trackables(self) -> dict:
        """The checkpoint entries (their names are checkpoint keys: do not change them)."""
        return {"loss_scale": self.scale, "good_steps": self.good_steps}

    def update(self, ctx, local_grad_sq) -> None:
        """Halves or grows the scale after a step, from every replica's squared gradient norm."""
        overflow = ctx.all_reduce(
            tf.distribute.ReduceOp.SUM,
            tf.cast(tf.logical_not(tf.math.is_finite(local_grad_sq)), tf.float32),
        )
        finite = tf.equal(overflow, 0.0)
        good = tf.where(finite, self.good_steps + 1, 0)
        grow = good >= self.growth_interval
        scale = tf.where(
            finite,
            tf.where(grow, self.scale * 2.0, self.scale),
            tf.maximum(self.scale / 2.0, 1.0),
        )
        self.scale.assign(scale)
        self.good_steps.assign(tf.where(grow, tf.zeros_like(good), good))


def create_loss_scale(strategy, mode: str, initial_scale: float, growth_interval: int):
    """The run's DynamicLossScale, or None if `mode` does not scale the loss."""
    if not uses_loss_scaling(mode):
        return None
    return DynamicLossScale(strategy, initial_scale, growth_interval)
