"""Keras 3 optimizers built from `transforms`, for custom tf.distribute loops.

`create_optimizer(name, learning_rate, **hparams)` returns a `ChainOptimizer`.
One `apply_gradients` call (inside `strategy.run`, with per-replica gradients of
a loss already scaled to the global batch) does, in this order:

  1. all-reduce (SUM) the gradients across replicas;
  2. if gradient_accumulation_steps = k > 1: add them to the accumulators and,
     on every k-th call, use the AVERAGE of the k accumulated gradients.
     Branch-free: the update is computed on every call and selected with
     `tf.where`, so it works under XLA and inside merge_call;
  3. clip the final gradient by its GLOBAL norm (clipnorm), i.e. the norm of
     the whole global batch's gradient, after the reduction;
     with skip_nonfinite=True (fp16 dynamic loss scaling), an update whose final
     gradient has an inf or NaN is skipped: no weight, moment or step changes;
  4. apply the update rule (a chain of transforms) with the learning rate of
     the schedule evaluated at `iterations` = number of updates applied so far.

Keras's own clipnorm (per replica, per variable), gradient accumulation
(`ops.cond` around a merge_call) and micro-step learning-rate schedule are not used.
"""

import functools
import re
from typing import Any, Dict, Optional

import keras
import tensorflow as tf
from keras.src.optimizers.schedules import learning_rate_schedule

from optimization import transforms as tx

# Hyperparameters every rule accepts.
_COMMON = {
    "clipnorm": None,
    "gradient_accumulation_steps": 1,
    "skip_nonfinite": False,
}
_ADAM = {
    "beta_1": 0.9,
    "beta_2": 0.999,
    "epsilon": 1e-6,
    "bias_correction": True,
    "epsilon_inside_sqrt": False,
    "weight_decay": 0.01,
    "exclude_from_weight_decay": list(tx.DEFAULT_EXCLUDE),
}
_TRUST = {
    "exclude_from_layer_adaptation": None,  # None: same list as weight decay.
    "trust_ratio_bounds": None,
}
_MOMENTUM = {
    "momentum": 0.9,
    "weight_decay": 0.0,
    "exclude_from_weight_decay": list(tx.DEFAULT_EXCLUDE),
}

# name -> defaults of every accepted hyperparameter.
DEFAULTS: Dict[str, Dict[str, Any]] = {
    "adamw": {**_COMMON, **_ADAM},
    "lamb": {**_COMMON, **_ADAM, **_TRUST},
    "lars": {**_COMMON, **_MOMENTUM, **_TRUST, "nesterov": False},
    "momentum": {**_COMMON, **_MOMENTUM, "nesterov": False},
    "nesterov": {**_COMMON, **_MOMENTUM, "nesterov": True},
}


def build_transform(name: str, h: Dict[str, Any]) -> tx.Transform:
    """The update rule of optimizer `name` with (validated, complete) hparams `h`."""
    decay = tx.add_decayed_weights(h["weight_decay"], h["exclude_from_weight_decay"])
    if name in ("adamw", "lamb"):
        adam = tx.scale_by_adam(
            h["beta_1"], h["beta_2"], h["epsilon"], h["bias_correction"], h["epsilon_inside_sqrt"]
        )
        if name == "adamw":
            return tx.chain(adam, decay, tx.scale_by_learning_rate())
    trust = None
    if name in ("lamb", "lars"):
        exclude = h["exclude_from_layer_adaptation"]
        if exclude is None:
            exclude = h["exclude_from_weight_decay"]
        trust = tx.scale_by_trust_ratio(exclude, h["trust_ratio_bounds"])
    if name == "lamb":
        # LAMB (You et al., Alg. 2): trust ratio on r + wd * w.
        return tx.chain(adam, decay, trust, tx.scale_by_learning_rate())
    momentum = tx.trace(h["momentum"], h["nesterov"])
    if name == "lars":
        # LARS (You et al. 2017): ratio on g + wd * w, then momentum.
        return tx.chain(decay, trust, momentum, tx.scale_by_learning_rate())
    # SGD with (Nesterov) momentum and decoupled weight decay (SGDW).
    return tx.chain(momentum, decay, tx.scale_by_learning_rate())


# -----------------------------------------------------------------------------
# Validation


def _check_unit_interval(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def _check_nonnegative(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


def _check_bool(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def _check_patterns(name, value):
    if value is None:
        return None
    if isinstance(value, str) or not all(isinstance(p, str) for p in value):
        raise ValueError(f"{name} must be a list of regular expressions (strings), got {value!r}")
    for p in value:
        try:
            re.compile(p)
        except re.error as e:
            raise ValueError(f"{name}: {p!r} is not a valid regular expression ({e})") from e
    return list(value)


def _check_bounds(name, value):
    if value is None:
        return None
    try:
        lower, upper = (float(b) for b in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be null or a pair [lower, upper], got {value!r}") from None
    if not 0.0 <= lower <= upper:
        raise ValueError(f"{name} must satisfy 0 <= lower <= upper, got {value!r}")
    return (lower, upper)


def _check_clipnorm(name, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{name} must be null or a number > 0, got {value!r}")
    return float(value)


def _check_accumulation(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


_CHECKS = {
    "beta_1": _check_unit_interval,
    "beta_2": _check_unit_interval,
    "momentum": _check_unit_interval,
    "epsilon": _check_nonnegative,
    "weight_decay": _check_nonnegative,
    "bias_correction": _check_bool,
    "epsilon_inside_sqrt": _check_bool,
    "nesterov": _check_bool,
    "exclude_from_weight_decay": _check_patterns,
    "exclude_from_layer_adaptation": _check_patterns,
    "trust_ratio_bounds": _check_bounds,
    "clipnorm": _check_clipnorm,
    "gradient_accumulation_steps": _check_accumulation,
    "skip_nonfinite": _check_bool,
}


def resolve_hparams(name: str, hparams: Dict[str, Any]) -> Dict[str, Any]:
    """Defaults of `name` updated with `hparams`, validated; ValueError otherwise."""
    if name not in DEFAULTS:
        raise ValueError(f"optimizer name must be one of {sorted(DEFAULTS)}, got {name!r}")
    unknown = sorted(set(hparams) - set(DEFAULTS[name]))
    if unknown:
        raise ValueError(
            f"optimizer {name!r} got unknown hyperparameter(s) {unknown}; "
            f"expected some of {sorted(DEFAULTS[name])}"
        )
    resolved = dict(DEFAULTS[name])
    resolved.update(hparams)
    return {k: _CHECKS[k](k, v) for k, v in resolved.items()}


# -----------------------------------------------------------------------------
# The optimizer


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


def clip_by_global_norm(gradients, clip_norm):
    """g * clip_norm / max(||g||_global, clip_norm) (as tf.clip_by_global_norm)."""
    norm = tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(tf.cast(g, tf.float32))) for g in gradients]))
    scale = clip_norm / tf.maximum(norm, clip_norm)
    return [g * tf.cast(scale, g.dtype) for g in gradients]


class ChainOptimizer(keras.optimizers.Optimizer):
    """A Keras optimizer whose update rule is a `transforms.Transform`.

    Use `create_optimizer` to make one. State (all tracked, so
    `tf.train.Checkpoint(optimizer=...)` saves and restores it): `iterations`
    (applied updates), one slot per variable per transform slot, and with
    gradient accumulation one accumulator per variable plus `micro_step`.
    """

    def __init__(
        self, rule: str, learning_rate, hparams: Dict[str, Any], name: Optional[str] = None
    ):
        if isinstance(learning_rate, int) and not isinstance(learning_rate, bool):
            learning_rate = float(learning_rate)
        if not isinstance(learning_rate, (float, learning_rate_schedule.LearningRateSchedule)):
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
        self._transform = build_transform(rule, self.hparams)

    @property
    def iterations(self):
        """Number of updates applied (global batches), also the schedule's step."""
        return self._iterations

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
        self._variable_names = [variable_path(v) for v in variables]
        self._slots = {s: self.add_optimizer_variables(variables, s) for s in self._transform.slots}
        if self.accumulation_steps > 1:
            self._accumulators = self.add_optimizer_variables(variables, "accumulator")
            self._micro_step = self.add_variable(
                shape=(), dtype="int64", name="micro_step", aggregation="only_first_replica"
            )

    def apply(self, grads, trainable_variables=None):
        """Reduces, accumulates, clips and applies `grads` (see the module docstring)."""
        if trainable_variables is None:
            if not self.built:
                raise ValueError(
                    "call optimizer.build(variables) or pass trainable_variables first"
                )
            trainable_variables = self._trainable_variables
        trainable_variables = list(trainable_variables)
        grads = list(grads)
        if len(grads) != len(trainable_variables):
            raise ValueError(f"got {len(grads)} gradients for {len(trainable_variables)} variables")
        if not self.built:
            with keras.name_scope(self.name, caller=self):
                self.build(trainable_variables)
        self._check_variables_are_known(trainable_variables)
        with keras.name_scope(self.name, caller=self):
            grads, trainable_variables = self._filter_empty_gradients(grads, trainable_variables)
            self._apply(grads, trainable_variables)
        return self._iterations

    def _apply(self, grads, variables):
        indices = [self._get_variable_index(v) for v in variables]
        grads = [_dense(g, v.shape) for g, v in zip(grads, variables)]
        ctx = tf.distribute.get_replica_context()
        if ctx is not None:  # In replica context: sum over replicas (a no-op on one).
            grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)

        k = self.accumulation_steps
        is_update = None  # None: every call updates.
        if k > 1:
            micro_step = self._micro_step + 1
            is_update = tf.equal(micro_step, k)
            sums = [
                tf.convert_to_tensor(_tf_variable(self._accumulators[i])) + g
                for i, g in zip(indices, grads)
            ]
            grads = [s / k for s in sums]
        applied = is_update
        if self.hparams["skip_nonfinite"]:
            finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
            applied = finite if is_update is None else tf.logical_and(is_update, finite)
            # A skipped step must not write inf/NaN through the masked arithmetic below.
            grads = [tf.where(finite, g, tf.zeros_like(g)) for g in grads]
        if self.global_clip_norm is not None:
            grads = clip_by_global_norm(grads, self.global_clip_norm)
        learning_rate = tf.cast(self._get_current_learning_rate(), tf.float32)
        count = tf.cast(self._iterations + 1, tf.float32)

        if k > 1:
            per_variable = [(g, (s, is_update, applied)) for g, s in zip(grads, sums)]
        elif applied is not None:
            per_variable = [(g, (None, None, applied)) for g in grads]
        else:
            per_variable = [(g, ()) for g in grads]
        tf.__internal__.distribute.interim.maybe_merge_call(
            self._distributed_update,
            self._distribution_strategy,
            per_variable,
            [_tf_variable(v) for v in variables],
            indices,
            learning_rate,
            count,
        )

        if k > 1:
            self._micro_step.assign(tf.where(is_update, tf.constant(0, tf.int64), micro_step))
        if applied is not None:
            self._iterations.assign_add(tf.cast(applied, self._iterations.dtype))
        else:
            self._iterations.assign_add(1)

    def _distributed_update(
        self, distribution, per_variable, variables, indices, learning_rate, count
    ):
        for (grad, extra), variable, index in zip(per_variable, variables, indices):
            distribution.extended.update(
                variable,
                functools.partial(self._update_variable, index=index),
                args=(grad, learning_rate, count) + tuple(extra),
                group=False,
            )

    def _update_variable(
        self,
        variable,
        grad,
        learning_rate,
        count,
        summed=None,
        is_update=None,
        applied=None,
        *,
        index,
    ):
        """Runs on each device copy of `variable` (tf.distribute update context)."""
        grad = tf.cast(grad, variable.dtype)
        slots = {s: _tf_variable(self._slots[s][index]) for s in self._transform.slots}
        state = {s: tf.convert_to_tensor(v) for s, v in slots.items()}
        update, new_state = self._transform.update(
            grad,
            state,
            tf.convert_to_tensor(variable),
            tx.StepInfo(count, learning_rate),
            self._variable_names[index],
        )
        if applied is not None:
            # Branch-free: keep the old state unless this call applies an update (the k-th
            # micro-step with accumulation; a finite gradient with skip_nonfinite).
            new_state = {s: tf.where(applied, new_state[s], state[s]) for s in state}
            update = tf.where(applied, update, tf.zeros_like(update))
        if is_update is not None:
            accumulator = _tf_variable(self._accumulators[index])
            accumulator.assign(tf.where(is_update, tf.zeros_like(summed), summed))
        for s, v in slots.items():
            v.assign(new_state[s])
        variable.assign_add(update)

    def get_config(self):
        config = {"name": self.name, "rule": self.rule, "learning_rate": None, **self.hparams}
        lr = self._learning_rate
        if isinstance(lr, learning_rate_schedule.LearningRateSchedule):
            config["learning_rate"] = learning_rate_schedule.serialize(lr)
        else:
            config["learning_rate"] = float(lr.numpy())
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        lr = config.pop("learning_rate")
        if isinstance(lr, dict):
            lr = learning_rate_schedule.deserialize(lr, custom_objects=custom_objects)
        rule = config.pop("rule")
        name = config.pop("name", None)
        return cls(rule, lr, config, name=name)


def create_optimizer(name: str, learning_rate, **hparams) -> ChainOptimizer:
    """Returns optimizer `name` ('adamw', 'lamb', 'lars', 'momentum', 'nesterov').

    Args:
      name: the update rule.
      learning_rate: a float or a keras LearningRateSchedule (evaluated at `iterations`).
      **hparams: see `DEFAULTS[name]`; unknown names or invalid values raise ValueError.
    """
    return ChainOptimizer(name, learning_rate, hparams)
