"""Whole-gradient steps that wrap the per-variable rule.

A `GradientWrapper` sees the gradients of ALL variables at once (after the
all-reduce), before the per-variable `transforms` rule runs. It may change
them (average accumulated micro-batches, clip by the global norm) and may hold
the rule back for this call (`apply` false): then no weight, slot or update
count changes. It can keep state of its own: per-variable `slots` (shaped like
each variable) and scalar int64 `counters`.

    update(grads, state) -> (grads, apply, new_state)

  grads:      list of dense gradients, one per variable.
  state:      dict name -> value: a list of tensors (one per variable) for each
              slot, a scalar tensor for each counter.
  apply:      scalar bool tensor, or None when the rule always runs.
  new_state:  the wrapper's state after this call (written whether or not the
              rule runs).

Everything is branch-free (values selected with `tf.where`), so a step
compiles with XLA and runs inside a tf.distribute merge_call.
"""

from collections.abc import Callable
from typing import NamedTuple

import tensorflow as tf


class GradientWrapper(NamedTuple):
    """A whole-gradient step: its per-variable slot names, counter names and update."""

    slots: tuple[str, ...]
    counters: tuple[str, ...]
    update: Callable


def accumulate_gradients(steps: int) -> GradientWrapper:
    """Sums `steps` micro-batch gradients; on every `steps`-th call, the rule gets their average.

    State: an "accumulator" per variable and the "micro_step" counter (calls since
    the last update). The accumulators restart from zero after each update.
    """

    def update(grads, state):
        micro_step = state["micro_step"] + 1
        is_update = tf.equal(micro_step, steps)
        sums = [tf.convert_to_tensor(a) + g for a, g in zip(state["accumulator"], grads)]
        new_state = {
            "accumulator": [tf.where(is_update, tf.zeros_like(s), s) for s in sums],
            "micro_step": tf.where(is_update, tf.constant(0, tf.int64), micro_step),
        }
        return [s / steps for s in sums], is_update, new_state

    return GradientWrapper(("accumulator",), ("micro_step",), update)


def skip_nonfinite() -> GradientWrapper:
    """Holds the rule back when any gradient has an inf or NaN (fp16 dynamic loss scaling).

    The gradients are replaced by zeros then, so that no inf/NaN reaches the
    masked arithmetic of the rule.
    """

    def update(grads, state):
        del state
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
        return [tf.where(finite, g, tf.zeros_like(g)) for g in grads], finite, {}

    return GradientWrapper((), (), update)


def clip_by_global_norm(clip_norm: float) -> GradientWrapper:
    """g * clip_norm / max(||g||_global, clip_norm) (as tf.clip_by_global_norm).

    The norm is over the whole (global-batch, all-reduced) gradient of all variables.
    """

    def update(grads, state):
        del state
        squares = [tf.reduce_sum(tf.square(tf.cast(g, tf.float32))) for g in grads]
        norm = tf.sqrt(tf.add_n(squares))
        scale = clip_norm / tf.maximum(norm, clip_norm)
        return [g * tf.cast(scale, g.dtype) for g in grads], None, {}

    return GradientWrapper((), (), update)


def chain(*wrappers: GradientWrapper) -> GradientWrapper:
    """Runs the wrappers in order; the rule runs only if every one of them lets it."""
    slots = tuple(s for w in wrappers for s in w.slots)
    counters = tuple(c for w in wrappers for c in w.counters)
    if len(set(slots + counters)) != len(slots + counters):
        raise ValueError(f"chain(): duplicate state names {slots + counters}")

    def update(grads, state):
        apply, new_state = None, {}
        for w in wrappers:
            grads, part_apply, part = w.update(grads, {n: state[n] for n in w.slots + w.counters})
            new_state.update(part)
            if part_apply is not None:
                apply = part_apply if apply is None else tf.logical_and(apply, part_apply)
        return grads, apply, new_state

    return GradientWrapper(slots, counters, update)
