"""Learning-rate schedules (serializable keras LearningRateSchedules).

All schedules are evaluated at the optimizer's update count `step` (0-based: the
first update uses step 0) and work on the phase-local step t = step - step_offset
(clamped at 0), so a phase-2 schedule starts at its own step 0.

Shared argument names, so that callers (e.g. experiment overrides) need no
per-schedule knowledge: peak_lr (P), warmup_steps (W), total_steps (T) and
step_offset. Older names stay accepted by `create_schedule` and `from_config`
(original_bert: init_lr, num_train_steps, num_warmup_steps; constant:
learning_rate); `canonical_args` renames them.

  original_bert   google-research/bert optimization.py, step by step:
                  t <  W: P * t / W
                  t >= W: P * (1 - min(t, T) / T) ** power
                  (the decay runs from step 0, so at t = W the rate drops from
                  ~P to P * (1 - W / T)).
  warmup_poly     t <= W: init + (P - init) * (t / W) ** warmup_power
                  t >  W: final + (P - final) * ((T - t) / (T - W)) ** decay_power,
                  with t clamped to T (so t >= T gives final); continuous at W.
                  (init_lr here is the rate warmup starts from.)
  warmup_cosine   the same warmup, then final + (P - final) * (1 + cos(pi * s)) / 2,
                  s = (min(t, T) - W) / (T - W).
  constant        P.
"""

import inspect
import math
from typing import ClassVar

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


def _is_number(value) -> bool:
    return isinstance(value, (int, float))


def _float(value):
    """A step count as the rate formulas use it: a float, or a variable's value as it is.

    The arguments are numbers except in `optimization.tunable.TunableSchedule`, which
    evaluates these formulas with float32 variables in their place.
    """
    return float(value) if _is_number(value) else value


def _float32(value):
    return tf.constant(value, tf.float32) if _is_number(value) else tf.convert_to_tensor(value)


def _is_zero(value) -> bool:
    """Whether `value` is the number 0 (a variable never is: its value can change)."""
    return _is_number(value) and not value


def _as_int(value):
    """JSON/config ints may arrive as floats like 3125.0."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class _PhaseSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Shared handling of `step_offset`, the argument aliases and the config.

    `__call__` turns the optimizer step into the phase-local step t (see the
    module docstring) and returns `self.rate(t)`; subclasses define `rate` and
    `_config` (their arguments other than step_offset, under the shared names).
    """

    kind = ""
    aliases: ClassVar[dict] = {}  # accepted older argument name -> shared name

    def __init__(self, step_offset=0):
        self.step_offset = _check_int(self.kind, "step_offset", _as_int(step_offset))

    def rate(self, t):
        raise NotImplementedError

    def __call__(self, step):
        return self.rate(_phase_step(step, self.step_offset))

    def _config(self):
        raise NotImplementedError

    def get_config(self):
        return {**self._config(), "step_offset": self.step_offset}

    @classmethod
    def from_config(cls, config):
        return cls(**canonical_args(cls.kind, config))


@keras.saving.register_keras_serializable(package="optimization")
class OriginalBertSchedule(_PhaseSchedule):
    """google-research/bert: linear warmup overriding a polynomial decay that starts at step 0.

    The original's init_lr / num_train_steps / num_warmup_steps are accepted
    (create_schedule, from_config) as peak_lr / total_steps / warmup_steps.
    """

    kind = "original_bert"
    aliases: ClassVar[dict] = {
        "init_lr": "peak_lr",
        "num_train_steps": "total_steps",
        "num_warmup_steps": "warmup_steps",
    }

    def __init__(self, peak_lr, total_steps, warmup_steps, power=1.0, step_offset=0):
        super().__init__(step_offset)
        k = self.kind
        self.peak_lr = _check_number(k, "peak_lr", peak_lr)
        self.total_steps = _check_int(k, "total_steps", _as_int(total_steps), 1)
        self.warmup_steps = _check_int(k, "warmup_steps", _as_int(warmup_steps))
        self.power = _check_number(k, "power", power)

    def rate(self, t):
        total = _float(self.total_steps)
        # (T - t) / T rather than 1 - t / T: exact differences keep float32 accurate near T.
        decayed = self.peak_lr * tf.pow((total - tf.minimum(t, total)) / total, self.power)
        if _is_zero(self.warmup_steps):
            return decayed
        # A tunable warmup of 0 steps divides by 0 here, in the branch `where` never selects.
        warmup = self.peak_lr * t / _float(self.warmup_steps)
        return tf.where(t < _float(self.warmup_steps), warmup, decayed)

    def _config(self):
        return {
            "peak_lr": self.peak_lr,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "power": self.power,
        }


class _WarmupThenDecay(_PhaseSchedule):
    """Shared warmup (init -> peak over t_w steps, power p_w) and config for the decays."""

    def __init__(
        self, init_lr, peak_lr, final_lr, warmup_steps, total_steps, warmup_power=1.0, step_offset=0
    ):
        super().__init__(step_offset)
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

    def _decay_fraction(self, s, remaining):
        """Fraction of (peak - final) left at decay progress s = 1 - remaining, both in [0, 1]."""
        raise NotImplementedError

    def rate(self, t):
        t = tf.minimum(t, _float(self.total_steps))
        t_w = _float(self.warmup_steps)
        if _is_zero(self.warmup_steps):
            warm = _float32(self.peak_lr)
        else:
            warm = self.init_lr + (self.peak_lr - self.init_lr) * tf.pow(
                tf.minimum(t / t_w, 1.0), self.warmup_power
            )
            if not _is_number(t_w):  # Tunable: a warmup of 0 steps starts at the peak.
                warm = tf.where(t_w > 0.0, warm, self.peak_lr)
        span = _float(self.total_steps) - t_w
        s = tf.maximum(t - t_w, 0.0) / span
        remaining = tf.minimum(_float(self.total_steps) - t, span) / span
        decayed = self.final_lr + (self.peak_lr - self.final_lr) * self._decay_fraction(
            s, remaining
        )
        return tf.where(t <= t_w, warm, decayed)

    def _config(self):
        return {
            "init_lr": self.init_lr,
            "peak_lr": self.peak_lr,
            "final_lr": self.final_lr,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "warmup_power": self.warmup_power,
        }


@keras.saving.register_keras_serializable(package="optimization")
class WarmupPolySchedule(_WarmupThenDecay):
    """Polynomial warmup to peak_lr at warmup_steps, then polynomial decay to final_lr at
    total_steps."""

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

    def _config(self):
        return {**super()._config(), "decay_power": self.decay_power}


@keras.saving.register_keras_serializable(package="optimization")
class WarmupCosineSchedule(_WarmupThenDecay):
    """Polynomial warmup to peak_lr, then cosine decay to final_lr at total_steps."""

    kind = "warmup_cosine"

    def _decay_fraction(self, s, remaining):
        return 0.5 * (1.0 + tf.cos(math.pi * s))


@keras.saving.register_keras_serializable(package="optimization")
class ConstantSchedule(_PhaseSchedule):
    """A constant rate `peak_lr` (older name: learning_rate).

    step_offset goes through the shared phase-step handling like every schedule,
    so a resumed phase may pass it; a constant rate is the same at every step.
    """

    kind = "constant"
    aliases: ClassVar[dict] = {"learning_rate": "peak_lr"}

    def __init__(self, peak_lr, step_offset=0):
        super().__init__(step_offset)
        self.peak_lr = _check_number(self.kind, "peak_lr", peak_lr)

    def rate(self, t):
        del t
        return _float32(self.peak_lr)

    def _config(self):
        return {"peak_lr": self.peak_lr}


SCHEDULES = {
    cls.kind: cls
    for cls in (OriginalBertSchedule, WarmupPolySchedule, WarmupCosineSchedule, ConstantSchedule)
}


def canonical_args(kind: str, kwargs: dict) -> dict:
    """`kwargs` of schedule `kind` with older argument names replaced by the shared ones.

    ValueError if `kind` is unknown or an argument is given under both names.
    """
    if kind not in SCHEDULES:
        raise ValueError(f"schedule kind must be one of {sorted(SCHEDULES)}, got {kind!r}")
    aliases = SCHEDULES[kind].aliases
    out = {}
    for key, value in kwargs.items():
        name = aliases.get(key, key)
        if name in out:
            raise ValueError(
                f"schedule {kind!r}: {name} is given twice (also as {key!r} or its other "
                f"name); use only {name}"
            )
        out[name] = value
    return out


def create_schedule(kind: str, **kwargs) -> keras.optimizers.schedules.LearningRateSchedule:
    """Returns schedule `kind` (one of SCHEDULES) built from `kwargs`; ValueError on bad input.

    Every schedule takes the shared names peak_lr, warmup_steps (if it warms up),
    total_steps (if it decays) and step_offset; older names (`aliases`) are accepted.
    """
    cls = SCHEDULES.get(kind)
    renamed = [f"{cls.aliases[k]} was given as {k}" for k in kwargs if k in cls.aliases]
    kwargs = canonical_args(kind, kwargs)
    try:
        return cls(**kwargs)
    except TypeError as e:  # Unknown or missing argument names.
        params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        older = ", ".join(f"{old} for {new}" for old, new in cls.aliases.items())
        raise ValueError(
            f"schedule {kind!r}: bad arguments {sorted(kwargs)} ({e}); expected {params}"
            + (f" (also accepted: {older})" if older else "")
        ) from None
    except ValueError as e:
        if not renamed:
            raise
        raise ValueError(f"{e} ({'; '.join(renamed)})") from None


def lamb_scaling(batch_size: int) -> tuple[float, float]:
    """Untuned LAMB (You et al., Table 4): lr = 5e-3 * sqrt(B / 32768), warmup ratio = B / 163840.

    The warmup ratio is 1/320 at B = 512 and 1/5 at B = 32768 (the fraction of
    the run's steps spent warming up).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    return 5e-3 * math.sqrt(batch_size / 32768), batch_size / 163840
