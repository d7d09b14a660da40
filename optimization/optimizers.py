"""The Keras adapter: `ChainOptimizer` runs an `alias` rule in custom tf.distribute loops.

`create_optimizer(name, learning_rate, **hparams)` returns a `ChainOptimizer`.
One `apply_gradients` call (inside `strategy.run`, with per-replica gradients of
a loss already scaled to the global batch) does, in this order:

  1. all-reduce (SUM) the gradients across replicas;
  2. the whole-gradient `wrappers` (`alias.gradient_wrappers`):
     gradient_accumulation_steps = k > 1: add them to the accumulators and, on
     every k-th call, go on with the AVERAGE of the k accumulated gradients;
     skip_nonfinite (fp16 dynamic loss scaling): an update whose gradient has an
     inf or NaN is skipped: no weight, moment or step changes;
     clipnorm: clip by the GLOBAL norm, i.e. the norm of the whole global
     batch's gradient, after the reduction;
  3. the per-variable rule (`alias.RULES[name]`, a chain of `transforms`) with
     the learning rate of the schedule evaluated at `iterations` = number of
     updates applied so far, on the calls the wrappers let through.

Everything is branch-free (`tf.where`), so it works under XLA and inside
merge_call. Keras's own clipnorm (per replica, per variable), gradient
accumulation (`ops.cond` around a merge_call) and micro-step learning-rate
schedule are not used. Private Keras/TF calls go through `keras_private` only.
"""

import functools
from collections.abc import Mapping
from typing import Any

import keras
import tensorflow as tf

from optimization import alias
from optimization import keras_private as private
from optimization import transforms as tx
from optimization import tunable as tunable_lib
from optimization.hparams import DEFAULTS, resolve_hparams  # noqa: F401 (re-exported)
from optimization.schedules import create_schedule
from optimization.tunable import TunableSchedule

_Schedule = keras.optimizers.schedules.LearningRateSchedule


def variable_path(variable) -> str:
    """Full path used by the exclusion lists: Keras 3 `.path`, else tf.Variable `.name`."""
    path = getattr(variable, "path", None)
    return path if isinstance(path, str) else variable.name


def _tf_variable(variable):
    return variable.value if isinstance(variable, keras.Variable) else variable


def _dense(gradient, shape):
    """Dense gradient; IndexedSlices (embedding lookups) are scattered into `shape` (static)."""
    if isinstance(gradient, tf.IndexedSlices):
        return tf.math.unsorted_segment_sum(gradient.values, gradient.indices, shape[0])
    return tf.convert_to_tensor(gradient)


def _state_attribute(name: str, per_variable: bool) -> str:
    """Tracked attribute holding wrapper state `name`: "_accumulators", "_micro_step".

    The attribute names are part of the checkpoint keys, so they must not change.
    """
    return f"_{name}s" if per_variable else f"_{name}"


class ChainOptimizer(keras.optimizers.Optimizer):
    """A Keras optimizer running `alias.build(rule, hparams)`: wrappers, then the rule.

    Use `create_optimizer` to make one. State (all tracked, so
    `tf.train.Checkpoint(optimizer=...)` saves and restores it): `iterations`
    (applied updates), one slot per variable per rule slot ("m", "v",
    "momentum"), and with gradient accumulation an "accumulator" slot per
    variable plus the `micro_step` counter.
    """

    def __init__(
        self,
        rule: str,
        learning_rate,
        hparams: dict[str, Any],
        name: str | None = None,
        tunable: bool = False,
    ):
        if isinstance(learning_rate, int) and not isinstance(learning_rate, bool):
            learning_rate = float(learning_rate)
        if not isinstance(learning_rate, (float, _Schedule)):
            raise ValueError(
                "learning_rate must be a float or a keras LearningRateSchedule, "
                f"got {learning_rate!r}"
            )
        super().__init__(learning_rate=learning_rate, name=name or rule)
        self.rule = rule
        self.hparams = resolve_hparams(rule, hparams)
        # Not Keras's `clipnorm` / `gradient_accumulation_steps` attributes: those
        # would switch on Keras's per-replica clipping and micro-step accumulation.
        self.global_clip_norm = self.hparams["clipnorm"]
        self.accumulation_steps = self.hparams["gradient_accumulation_steps"]
        # tunable: the numbers the update reads are variables (`optimization.tunable`).
        self.tunables = tunable_lib.Hparams(self.hparams) if tunable else None
        built = {**self.hparams, **self.tunables.rule_arguments()} if tunable else self.hparams
        self._wrappers, self._rule = alias.build(rule, built)

    def assign_hparams(self, hparams: dict[str, Any]) -> None:
        """Sets the tunable hyperparameters (a new trial; see `optimization.tunable.assign`).

        `hparams` is validated as for a new optimizer; the structural ones (rule booleans,
        exclusions, clipping, accumulation, skipping) must be those this one was built with.
        """
        if self.tunables is None:
            raise ValueError("this optimizer was built with constant hyperparameters")
        built = {k: self.hparams[k] for k in ("gradient_accumulation_steps", "skip_nonfinite")}
        resolved = resolve_hparams(self.rule, {**built, **hparams})
        changed = sorted(
            k for k, v in resolved.items() if k not in tunable_lib.TUNABLE and v != self.hparams[k]
        )
        if changed:
            raise ValueError(
                f"{changed} are structural (part of the compiled program): "
                f"{[self.hparams[k] for k in changed]} here, {[resolved[k] for k in changed]} asked"
            )
        self.tunables.assign(resolved)
        self.hparams = resolved

    @property
    def iterations(self):
        """Number of updates applied (global batches), also the schedule's step."""
        return private.iterations_variable(self)

    def _wrapper_slots(self, name):
        return getattr(self, _state_attribute(name, True))

    def _counter(self, name):
        return getattr(self, _state_attribute(name, False))

    @property
    def micro_step(self):
        """Micro-batches accumulated since the last update (a variable); None if k = 1."""
        return self._counter("micro_step") if "micro_step" in self._wrappers.counters else None

    @property
    def slot_names(self):
        """Per-variable state names: the rule's slots, then the wrappers' ("accumulator")."""
        return self._rule.slots + self._wrappers.slots

    def slot(self, variable, name: str):
        """The optimizer variable `name` (see `slot_names`) kept for model variable `variable`."""
        if name not in self.slot_names:
            raise ValueError(f"no slot {name!r}; this optimizer has {list(self.slot_names)}")
        index = private.variable_index(self, variable)
        if name in self._rule.slots:
            return self._slots[name][index]
        return self._wrapper_slots(name)[index]

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Keras's method has no effect here; the exclusions are hyperparameters."""
        raise NotImplementedError(
            "pass exclude_from_weight_decay=[regex, ...] (and exclude_from_layer_adaptation) to "
            "optimization.create_optimizer instead"
        )

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        # Resolved once per variable: excluded variables' rules have no decay/trust ops.
        self._variable_rules = [self._rule.for_variable(variable_path(v)) for v in variables]
        # Creation order fixes the checkpoint keys: rule slots, accumulators, micro_step.
        self._slots = {s: self.add_optimizer_variables(variables, s) for s in self._rule.slots}
        for s in self._wrappers.slots:
            setattr(self, _state_attribute(s, True), self.add_optimizer_variables(variables, s))
        for c in self._wrappers.counters:
            counter = self.add_variable(
                shape=(), dtype="int64", name=c, aggregation="only_first_replica"
            )
            setattr(self, _state_attribute(c, False), counter)

    def apply(self, grads, trainable_variables=None, observe=None):
        """Reduces, wraps and applies `grads` (see the module docstring).

        `observe(grads, variables)`, if given, is called with the all-reduced (dense)
        gradients before the wrappers, so that a measurement of the global batch's gradient
        (`bert.training.step`'s gradient noise scale) needs no all-reduce of its own.
        """
        if trainable_variables is None:
            if not self.built:
                raise ValueError(
                    "call optimizer.build(variables) or pass trainable_variables first"
                )
            trainable_variables = private.trainable_variables(self)
        trainable_variables = list(trainable_variables)
        grads = list(grads)
        if len(grads) != len(trainable_variables):
            raise ValueError(f"got {len(grads)} gradients for {len(trainable_variables)} variables")
        if not self.built:
            with keras.name_scope(self.name, caller=self):
                self.build(trainable_variables)
        with keras.name_scope(self.name, caller=self):
            grads, trainable_variables = private.check_and_filter(self, grads, trainable_variables)
            self._apply(grads, trainable_variables, observe)
        return self.iterations

    def _apply(self, grads, variables, observe=None):
        indices = [private.variable_index(self, v) for v in variables]
        grads = [_dense(g, v.shape) for g, v in zip(grads, variables)]
        ctx = tf.distribute.get_replica_context()
        if ctx is not None:  # In replica context: sum over replicas (a no-op on one).
            grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        if observe is not None:
            observe(grads, variables)

        state = {
            s: [_tf_variable(self.slot(v, s)) for v in variables] for s in self._wrappers.slots
        }
        state.update({c: self._counter(c) for c in self._wrappers.counters})
        grads, apply, new_state = self._wrappers.update(grads, state)
        learning_rate = tf.cast(private.current_learning_rate(self), tf.float32)
        count = tf.cast(self.iterations + 1, tf.float32)

        # Per variable: its gradient and the new values of its wrapper slots.
        per_variable = [
            (g, tuple(new_state[s][i] for s in self._wrappers.slots)) for i, g in enumerate(grads)
        ]
        private.merge_call(
            self,
            self._distributed_update,
            per_variable,
            [_tf_variable(v) for v in variables],
            indices,
            learning_rate,
            count,
            apply,
        )
        for c in self._wrappers.counters:
            self._counter(c).assign(new_state[c])
        if apply is not None:
            self.iterations.assign_add(tf.cast(apply, self.iterations.dtype))
        else:
            self.iterations.assign_add(1)

    def _distributed_update(
        self, distribution, per_variable, variables, indices, learning_rate, count, apply
    ):
        for (grad, wrapper_slots), variable, index in zip(per_variable, variables, indices):
            distribution.extended.update(
                variable,
                functools.partial(self._update_variable, index=index),
                args=(grad, wrapper_slots, learning_rate, count, apply),
                group=False,
            )

    def _update_variable(
        self, variable, grad, wrapper_slots, learning_rate, count, apply, *, index
    ):
        """Runs on each device copy of `variable` (tf.distribute update context)."""
        grad = tf.cast(grad, variable.dtype)
        slots = {s: _tf_variable(self._slots[s][index]) for s in self._rule.slots}
        state = {s: tf.convert_to_tensor(v) for s, v in slots.items()}
        update, new_state = self._variable_rules[index].update(
            grad, state, tf.convert_to_tensor(variable), tx.StepInfo(count, learning_rate)
        )
        if apply is not None:
            # Branch-free: keep the old state unless the wrappers let this call update.
            new_state = {s: tf.where(apply, new_state[s], state[s]) for s in state}
            update = tf.where(apply, update, tf.zeros_like(update))
        for s, value in zip(self._wrappers.slots, wrapper_slots):
            _tf_variable(self._wrapper_slots(s)[index]).assign(value)
        for s, v in slots.items():
            v.assign(new_state[s])
        variable.assign_add(update)

    def get_config(self):
        config = {"name": self.name, "rule": self.rule, "learning_rate": None, **self.hparams}
        lr = private.learning_rate_setting(self)
        if isinstance(lr, _Schedule):
            config["learning_rate"] = keras.optimizers.schedules.serialize(lr)
        else:
            config["learning_rate"] = float(lr.numpy())
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        lr = config.pop("learning_rate")
        if isinstance(lr, dict):
            lr = keras.optimizers.schedules.deserialize(lr, custom_objects=custom_objects)
        rule = config.pop("rule")
        name = config.pop("name", None)
        return cls(rule, lr, config, name=name)


def create_optimizer(name: str, learning_rate, **hparams) -> ChainOptimizer:
    """Returns optimizer `name` (a key of `alias.RULES`: 'adamw', 'lamb', 'lars', ...).

    Args:
      name: the update rule (a function of `alias`).
      learning_rate: a float or a keras LearningRateSchedule (evaluated at `iterations`).
      **hparams: see `DEFAULTS[name]`; unknown names or invalid values raise ValueError.
    """
    return ChainOptimizer(name, learning_rate, hparams)


def create_optimizer_and_schedule(
    optimizer: Mapping[str, Any],
    schedule: Mapping[str, Any],
    *,
    step_offset: int = 0,
    gradient_accumulation_steps: int = 1,
    skip_nonfinite: bool = False,
    tunable: bool = False,
) -> tuple[ChainOptimizer, _Schedule]:
    """The optimizer of a run and the learning-rate schedule it steps.

    Args:
      optimizer: {"name": ..., **hparams} (as an experiment phase's "optimizer").
      schedule: {"kind": ..., **arguments} (as an experiment phase's "schedule").
      step_offset: the optimizer's update count at the schedule's step 0 (a phase that keeps
        the previous phase's optimizer state restarts its schedule there).
      gradient_accumulation_steps: micro-batches per update (added to the hparams if > 1).
      skip_nonfinite: skip updates whose gradient is not finite (fp16 loss scaling; see
        `bert.training.precision.skips_nonfinite`).
      tunable: the searchable numbers (learning-rate schedule, betas, epsilon, weight decay,
        trust-ratio bounds, momentum) are variables that `optimization.tunable.assign` sets
        for another trial without a retrace; False (normal runs) traces them as constants.
    Build it in the strategy's scope. Returns (optimizer, schedule).
    """
    schedule_args = dict(schedule)
    kind = schedule_args.pop("kind")
    if step_offset:
        schedule_args["step_offset"] = step_offset
    learning_rate = create_schedule(kind, **schedule_args)
    if tunable:
        learning_rate = TunableSchedule(learning_rate)
    hparams = dict(optimizer)
    name = hparams.pop("name")
    if gradient_accumulation_steps > 1:
        hparams["gradient_accumulation_steps"] = gradient_accumulation_steps
    if skip_nonfinite:
        hparams["skip_nonfinite"] = True
    return ChainOptimizer(name, learning_rate, hparams, tunable=tunable), learning_rate
