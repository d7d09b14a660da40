"""Learning-rate schedules (serializable keras LearningRateSchedules).

All schedules are evaluated at the optimizer's update count `step` (0-based: the
first update uses step 0) and work on the phase-local step t = step - step_offset
(clamped at 0), so a phase-2 schedule starts at its own step 0.

  original_bert   google-research/bert optimization.py, step by step:
                  t <  W: init_lr * t / W
                  t >= W: init_lr * (1 - min(t, T) / T) ** power
                  (the decay runs from step 0, so at t = W the rate drops from
                  ~init_lr to init_lr * (1 - W / T)).
  warmup_poly     t <= t_w: init + (peak - init) * (t / t_w) ** warmup_power
                  t >  t_w: final + (peak - final) * ((T - t) / (T - t_w)) ** decay_power,
                  with t clamped to T (so t >= T gives final); continuous at t_w.
  warmup_cosine   the same warmup, then final + (peak - final) * (1 + cos(pi * s)) / 2,
                  s = (min(t, T) - t_w) / (T - t_w).
  constant        learning_rate.
"""

import inspect
import math
from typing import Tuple

import keras
import tensorflow as tf


def _phase_step(step, step_offset):
    t = tf.cast(step, tf.float32) - float(step_offset)
    return tf.maximum(t, 0.0)


def _check_int(kind, name, value, minimum=0):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"schedule {kind!r}: {name} must be an integer >= {minimum}, got {value!r}"
        )
    return value


def _check_number(kind, name, value, minimum=0.0):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ValueError(f"schedule {kind!r}: {name} must be a number >= {minimum}, got {value!r}")
    return float(value)


def _as_int(value):
    """JSON/config ints may arrive as floats like 3125.0."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@keras.saving.register_keras_serializable(package="optimization")
class OriginalBertSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """google-research/bert: linear warmup overriding a polynomial decay that starts at step 0."""

    kind = "original_bert"

    def __init__(self, init_lr, num_train_steps, num_warmup_steps, power=1.0, step_offset=0):
        k = self.kind
        self.init_lr = _check_number(k, "init_lr", init_lr)
        self.num_train_steps = _check_int(k, "num_train_steps", _as_int(num_train_steps), 1)
        self.num_warmup_steps = _check_int(k, "num_warmup_steps", _as_int(num_warmup_steps))
        self.power = _check_number(k, "power", power)
        self.step_offset = _check_int(k, "step_offset", _as_int(step_offset))

    def __call__(self, step):
        t = _phase_step(step, self.step_offset)
        total = float(self.num_train_steps)
        # (T - t) / T rather than 1 - t / T: exact differences keep float32 accurate near T.
        decayed = self.init_lr * tf.pow((total - tf.minimum(t, total)) / total, self.power)
        if not self.num_warmup_steps:
            return decayed
        warmup = self.init_lr * t / float(self.num_warmup_steps)
        return tf.where(t < float(self.num_warmup_steps), warmup, decayed)

    def get_config(self):
        return {
            "init_lr": self.init_lr,
            "num_train_steps": self.num_train_steps,
            "num_warmup_steps": self.num_warmup_steps,
            "power": self.power,
            "step_offset": self.step_offset,
        }


class _WarmupThenDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Shared warmup (init -> peak over t_w steps, power p_w) and config for the decays."""

    kind = ""

    def __init__(
        self, init_lr, peak_lr, final_lr, warmup_steps, total_steps, warmup_power=1.0, step_offset=0
    ):
        k = self.kind
        self.init_lr = _check_number(k, "init_lr", init_lr)
        self.peak_lr = _check_number(k, "peak_lr", peak_lr)
        self.final_lr = _check_number(k, "final_lr", final_lr)
        self.warmup_steps = _check_int(k, "warmup_steps", _as_int(warmup_steps))
        self.total_steps = _check_int(k, "total_steps", _as_int(total_steps), 1)
        if self.total_steps <= self.warmup_steps:
            raise ValueError(
                f"schedule {k!r}: total_steps ({total_steps}) must be greater than "
                f"warmup_steps ({warmup_steps})"
            )
        self.warmup_power = _check_number(k, "warmup_power", warmup_power)
        self.step_offset = _check_int(k, "step_offset", _as_int(step_offset))

    def _decay_fraction(self, s, remaining):
        """Fraction of (peak - final) left at decay progress s = 1 - remaining, both in [0, 1]."""
        raise NotImplementedError

    def __call__(self, step):
        t = tf.minimum(_phase_step(step, self.step_offset), float(self.total_steps))
        t_w = float(self.warmup_steps)
        if self.warmup_steps:
            warm = self.init_lr + (self.peak_lr - self.init_lr) * tf.pow(
                tf.minimum(t / t_w, 1.0), self.warmup_power
            )
        else:
            warm = tf.constant(self.peak_lr, tf.float32)
        span = float(self.total_steps) - t_w
        s = tf.maximum(t - t_w, 0.0) / span
        remaining = tf.minimum(float(self.total_steps) - t, span) / span
        decayed = self.final_lr + (self.peak_lr - self.final_lr) * self._decay_fraction(
            s, remaining
        )
        return tf.where(t <= t_w, warm, decayed)

    def get_config(self):
        return {
            "init_lr": self.init_lr,
            "peak_lr": self.peak_lr,
            "final_lr": self.final_lr,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "warmup_power": self.warmup_power,
            "step_offset": self.step_offset,
        }


@keras.saving.register_keras_serializable(package="optimization")
class WarmupPolySchedule(_WarmupThenDecay):
    """Polynomial warmup to peak_lr at warmup_steps, then polynomial decay to final_lr at total_steps."""

    kind = "warmup_poly"

    def __init__(
        self,
        init_lr,
        peak_lr,
        final_lr,
        warmup_steps,
        total_steps,
        warmup_power=1.0,
        decay_power=1.0,
        step_offset=0,
    ):
        super().__init__(
            init_lr, peak_lr, final_lr, warmup_steps, total_steps, warmup_power, step_offset
        )
        self.decay_power = _check_number(self.kind, "decay_power", decay_power)

    def _decay_fraction(self, s, remaining):
        return tf.pow(remaining, self.decay_power)

    def get_config(self):
        return {**super().get_config(), "decay_power": self.decay_power}


@keras.saving.register_keras_serializable(package="optimization")
class WarmupCosineSchedule(_WarmupThenDecay):
    """Polynomial warmup to peak_lr, then cosine decay to final_lr at total_steps."""

    kind = "warmup_cosine"

    def _decay_fraction(self, s, remaining):
        return 0.5 * (1.0 + tf.cos(math.pi * s))


@keras.saving.register_keras_serializable(package="optimization")
class ConstantSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A constant learning rate (step_offset accepted for uniformity)."""

    kind = "constant"

    def __init__(self, learning_rate, step_offset=0):
        self.learning_rate = _check_number(self.kind, "learning_rate", learning_rate)
        self.step_offset = _check_int(self.kind, "step_offset", _as_int(step_offset))

    def __call__(self, step):
        del step
        return tf.constant(self.learning_rate, tf.float32)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "step_offset": self.step_offset}


SCHEDULES = {
    cls.kind: cls
    for cls in (OriginalBertSchedule, WarmupPolySchedule, WarmupCosineSchedule, ConstantSchedule)
}


def create_schedule(kind: str, **kwargs) -> keras.optimizers.schedules.LearningRateSchedule:
    """Returns schedule `kind` (one of SCHEDULES) built from `kwargs`; ValueError on bad input."""
    if kind not in SCHEDULES:
        raise ValueError(f"schedule kind must be one of {sorted(SCHEDULES)}, got {kind!r}")
    cls = SCHEDULES[kind]
    try:
        return cls(**kwargs)
    except TypeError as e:  # Unknown or missing argument names.
        params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        raise ValueError(
            f"schedule {kind!r}: bad arguments {sorted(kwargs)} ({e}); expected {params}"
        ) from None


def lamb_scaling(batch_size: int) -> Tuple[float, float]:
    """Untuned LAMB (You et al., Table 4): lr = 5e-3 * sqrt(B / 32768), warmup ratio = B / 163840.

    The warmup ratio is 1/320 at B = 512 and 1/5 at B = 32768 (the fraction of
    the run's steps spent warming up).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    return 5e-3 * math.sqrt(batch_size / 32768), batch_size / 163840
