"""Small composable parts of update rules, in the spirit of optax.

A `Transform` maps the (already all-reduced, accumulated and clipped) gradient
of ONE variable to an update, possibly keeping per-variable state ("slots",
e.g. Adam's first and second moments). Transforms are chained; the last one of
every rule in this package is `scale_by_learning_rate`, so the variable is
updated with `w <- w + u`.

Every `update` function has the signature

    update(u, state, w, step, name) -> (new_u, new_state)

  u:      the incoming update (a dense tensor, the gradient for the first part).
  state:  dict slot name -> current slot value (tensors) for this variable.
  w:      the current value of the variable.
  step:   `StepInfo` (1-based update count, learning rate).
  name:   the variable's full path, a Python string used for the exclusion lists.

Exclusions are decided per variable from its name at trace time, so an excluded
variable's graph simply has no weight-decay / trust-ratio ops.
"""

import re
from typing import Callable, Dict, NamedTuple, Optional, Sequence, Tuple

import tensorflow as tf

# google-research/bert's list; searched with re.search in the full variable path.
DEFAULT_EXCLUDE = ("LayerNorm", "layer_norm", "bias")


class StepInfo(NamedTuple):
    """What a transform may know about the current update."""

    count: tf.Tensor  # 1-based number of this applied update (float32).
    learning_rate: tf.Tensor  # learning rate for this update (float32 scalar).


class Transform(NamedTuple):
    """An update-rule part: names of its per-variable slots and its update function."""

    slots: Tuple[str, ...]
    update: Callable


def name_matches(name: str, patterns: Optional[Sequence[str]]) -> bool:
    """True if any regex in `patterns` is found (re.search) in `name`."""
    return any(re.search(p, name) is not None for p in (patterns or ()))


def scale_by_adam(
    beta_1: float,
    beta_2: float,
    epsilon: float,
    bias_correction: bool = True,
    epsilon_inside_sqrt: bool = False,
) -> Transform:
    """Adam direction.

    m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2
    m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t)   (or m, v if not bias_correction)
    u = m_hat / (sqrt(v_hat) + eps)                  (epsilon_inside_sqrt=False)
    u = m_hat / sqrt(v_hat + eps)                    (epsilon_inside_sqrt=True)
    """

    def update(u, state, w, step, name):
        del w, name
        m = beta_1 * state["m"] + (1.0 - beta_1) * u
        v = beta_2 * state["v"] + (1.0 - beta_2) * tf.square(u)
        m_hat, v_hat = m, v
        if bias_correction:
            t = tf.cast(step.count, u.dtype)
            m_hat = m / (1.0 - tf.pow(tf.constant(beta_1, u.dtype), t))
            v_hat = v / (1.0 - tf.pow(tf.constant(beta_2, u.dtype), t))
        if epsilon_inside_sqrt:
            denominator = tf.sqrt(v_hat + epsilon)
        else:
            denominator = tf.sqrt(v_hat) + epsilon
        return m_hat / denominator, {"m": m, "v": v}

    return Transform(("m", "v"), update)


def add_decayed_weights(
    weight_decay: float, exclude: Optional[Sequence[str]] = DEFAULT_EXCLUDE
) -> Transform:
    """Decoupled weight decay: u <- u + wd * w (skipped for names matching `exclude`).

    Placed before `scale_by_learning_rate`, so the decay is scaled by the learning rate.
    """

    def update(u, state, w, step, name):
        del step
        if weight_decay == 0.0 or name_matches(name, exclude):
            return u, state
        return u + weight_decay * w, state

    return Transform((), update)


def scale_by_trust_ratio(
    exclude: Optional[Sequence[str]] = DEFAULT_EXCLUDE, bounds: Optional[Tuple[float, float]] = None
) -> Transform:
    """Layer-wise trust ratio: u <- phi(||w||) / ||u|| * u.

    phi(z) = min(max(z, lower), upper) with `bounds=(lower, upper)`, identity if None.
    The ratio is 1 when ||w|| or ||u|| is zero, and the part is skipped for
    variables whose name matches `exclude`.
    """

    def update(u, state, w, step, name):
        del step
        if name_matches(name, exclude):
            return u, state
        w_norm = tf.norm(w)
        u_norm = tf.norm(u)
        phi = w_norm
        if bounds is not None:
            phi = tf.minimum(tf.maximum(w_norm, bounds[0]), bounds[1])
        usable = tf.logical_and(w_norm > 0.0, u_norm > 0.0)
        # Divide by a safe value so that the unused branch of `where` is never NaN.
        ratio = tf.where(usable, phi / tf.where(usable, u_norm, 1.0), 1.0)
        return ratio * u, state

    return Transform((), update)


def trace(momentum: float, nesterov: bool = False) -> Transform:
    """Heavy-ball / Nesterov momentum (as optax.trace and torch.optim.SGD).

    b <- mu b + u;  u <- b (heavy ball) or u + mu b (Nesterov).
    """

    def update(u, state, w, step, name):
        del w, step, name
        buf = momentum * state["momentum"] + u
        new_u = u + momentum * buf if nesterov else buf
        return new_u, {"momentum": buf}

    return Transform(("momentum",), update)


def scale_by_learning_rate() -> Transform:
    """u <- -lr * u, so that the rule ends with w <- w + u."""

    def update(u, state, w, step, name):
        del w, name
        return -tf.cast(step.learning_rate, u.dtype) * u, state

    return Transform((), update)


def chain(*transforms: Transform) -> Transform:
    """Applies the transforms in order; slot names must be unique across the chain."""
    slots = tuple(s for t in transforms for s in t.slots)
    if len(set(slots)) != len(slots):
        raise ValueError(f"chain(): duplicate slot names {slots}")

    def update(u, state, w, step, name):
        new_state: Dict[str, tf.Tensor] = {}
        for t in transforms:
            u, part = t.update(u, {s: state[s] for s in t.slots}, w, step, name)
            new_state.update(part)
        return u, new_state

    return Transform(slots, update)
