"""Hyperparameters that a compiled step reads from variables, so a new trial needs no retrace.

A search runs many trials of one program (same optimizer, batch and sequence length) that
differ only in numbers: the learning rate and its schedule, betas, epsilon, weight decay,
trust-ratio bounds, momentum. Traced as Python constants, every new value is a new program
to compile. `optimization.create_optimizer_and_schedule(..., tunable=True)` builds the
optimizer and schedule with these numbers in scalar float32 variables instead;
`assign(optimizer, schedule, optimizer_config, schedule_config)` sets a trial's values.

What stays structural (Python, part of the program): the rule and its booleans
(bias_correction, epsilon_inside_sqrt, nesterov, decoupled_weight_decay), the exclusion
lists, clipnorm, gradient accumulation, skipping non-finite updates, the schedule's kind and
step_offset. Assigning a trial that differs in one of these raises ValueError.

Where the constant path decides structure from a value, the tunable one keeps the ops:
weight decay 0 is `u + 0 w` (not a pass-through), absent trust-ratio bounds are [0, inf]
(clamps that change nothing), a warmup of 0 steps selects the decay with `tf.where`. The
values match the constant path's in float32: 1 - beta is kept in its own variable, computed in
float64 on the host as the constant path computes it (1 - float32(0.999) would be off by
1e-5 relative).

The variables are not tracked by the optimizer's checkpoint (its keys stay those of a normal
run); a program that uses them assigns them before every trial.
"""

import copy
import math

import keras
import tensorflow as tf

# Optimizer hyperparameters that may be variables; every other one is structural.
SCALARS = ("beta_1", "beta_2", "epsilon", "weight_decay", "momentum")
BOUNDS = ("phi_bounds", "ratio_bounds")
TUNABLE = SCALARS + BOUNDS
# A tunable bound stands for "no bound" with these values (clamps that are the identity).
NO_BOUNDS = (0.0, math.inf)


class Scalar:
    """One tunable number: its float32 variable and that of 1 - value (both set on the host).

    Created in the strategy's scope, so that every replica reads the same value.
    """

    def __init__(self, name: str, value: float):
        sync = dict(
            trainable=False,
            dtype=tf.float32,
            synchronization=tf.VariableSynchronization.ON_WRITE,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )
        self.name = name
        self.variable = tf.Variable(float(value), name=name, **sync)
        self.complement = tf.Variable(1.0 - float(value), name=f"one_minus_{name}", **sync)
        self.value = float(value)

    def assign(self, value: float) -> None:
        self.value = float(value)
        self.variable.assign(self.value)
        self.complement.assign(1.0 - self.value)


def read(x, dtype):
    """A hyperparameter as the update reads it: a number as it is, a `Scalar` as a tensor."""
    return tf.cast(tf.convert_to_tensor(x.variable), dtype) if isinstance(x, Scalar) else x


def one_minus(x, dtype):
    """1 - x: in float64 on the host for a number (as always), a `Scalar`'s own variable."""
    return tf.cast(tf.convert_to_tensor(x.complement), dtype) if isinstance(x, Scalar) else 1.0 - x


def is_tunable(x) -> bool:
    return isinstance(x, Scalar) or (
        isinstance(x, tuple) and len(x) == 2 and all(isinstance(b, Scalar) for b in x)
    )


class Hparams:
    """The tunable hyperparameters of one optimizer (name -> `Scalar`, or a pair for bounds).

    A plain object, not a tf.Module: the optimizer does not track these variables, so its
    checkpoints keep the keys of a normal run.
    """

    def __init__(self, hparams: dict):
        self.scalars: dict = {}
        for name in TUNABLE:
            if name not in hparams:
                continue
            if name in BOUNDS:
                bounds = hparams[name] or NO_BOUNDS
                self.scalars[name] = tuple(
                    Scalar(f"{name}_{side}", b) for side, b in zip(("lower", "upper"), bounds)
                )
            else:
                self.scalars[name] = Scalar(name, hparams[name])

    def rule_arguments(self) -> dict:
        """What `alias.build` receives in place of the numbers."""
        return dict(self.scalars)

    def assign(self, hparams: dict) -> None:
        for name, scalar in self.scalars.items():
            if name in BOUNDS:
                for part, b in zip(scalar, hparams[name] or NO_BOUNDS):
                    part.assign(b)
            else:
                scalar.assign(hparams[name])


@keras.saving.register_keras_serializable(package="optimization")
class TunableSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A schedule of one kind whose arguments are variables; `assign` another of that kind.

    It evaluates the constant schedule's own `rate` with variables in place of its numbers,
    so the formula is written once (`optimization.schedules`). step_offset stays a number.
    """

    def __init__(self, schedule):
        self.kind = schedule.kind
        self.step_offset = schedule.step_offset
        self._values = {name: Scalar(name, v) for name, v in schedule._config().items()}
        self._reader = copy.copy(schedule)
        for name, scalar in self._values.items():
            setattr(self._reader, name, scalar.variable)

    def assign(self, schedule) -> None:
        """Takes the arguments of constant schedule `schedule` (same kind and step_offset)."""
        if schedule.kind != self.kind or schedule.step_offset != self.step_offset:
            raise ValueError(
                f"this program's schedule is {self.kind!r} at step_offset {self.step_offset}; "
                f"got {schedule.kind!r} at step_offset {schedule.step_offset} (build another)"
            )
        for name, value in schedule._config().items():
            self._values[name].assign(value)

    def __call__(self, step):
        return self._reader(step)

    def get_config(self):
        """The current arguments, as the constant schedule of this kind takes them."""
        return {"kind": self.kind, "step_offset": self.step_offset, **self.values()}

    def values(self) -> dict:
        return {name: scalar.value for name, scalar in self._values.items()}

    @classmethod
    def from_config(cls, config):
        from optimization.schedules import create_schedule

        config = dict(config)
        return cls(create_schedule(config.pop("kind"), **config))


def assign(optimizer, schedule, optimizer_config: dict, schedule_config: dict) -> None:
    """Sets a trial's hyperparameters on a tunable optimizer and schedule (no retrace).

    `optimizer_config` ({"name": ..., **hparams}) and `schedule_config` ({"kind": ...,
    **arguments}) are an experiment phase's; they are validated as for a new optimizer and
    schedule, and must not differ from the built ones in anything structural.
    """
    from optimization.schedules import create_schedule

    if not isinstance(schedule, TunableSchedule) or getattr(optimizer, "tunables", None) is None:
        raise ValueError("build the optimizer and schedule with tunable=True to assign them")
    args = dict(schedule_config)
    kind = args.pop("kind")
    if schedule.step_offset:
        args["step_offset"] = schedule.step_offset
    constant = create_schedule(kind, **args)
    hparams = dict(optimizer_config)
    name = hparams.pop("name")
    if name != optimizer.rule:
        raise ValueError(f"this program's optimizer is {optimizer.rule!r}, got {name!r}")
    optimizer.assign_hparams(hparams)
    schedule.assign(constant)
