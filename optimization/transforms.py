"""Per-variable parts of update rules, chained in the spirit of optax.

A `Transform` maps the final gradient of ONE variable (already all-reduced,
accumulated and clipped by the `wrappers`) to an update, possibly keeping
per-variable state ("slots", e.g. Adam's first and second moments). The last
part of every rule in `alias` is `scale_by_learning_rate`, so the variable is
updated with `w <- w + u`.

    update(u, state, w, step) -> (new_u, new_state)

  u:      the incoming update (a dense tensor; the gradient for the first part).
  state:  dict slot name -> current slot value (tensors) for this variable.
  w:      the current value of the variable.
  step:   `StepInfo` (1-based update count, learning rate).

Rules that differ between variables (weight decay and the trust ratio skip
LayerNorm and bias) are written with `masked(transform, exclude=...)`. The
optimizer calls `transform.for_variable(path)` once per variable when it is
built; `masked` returns a pass-through there for an excluded path, so that
variable's graph simply has no weight-decay / trust-ratio ops.
"""

import re
from collections.abc import Callable, Sequence
from typing import NamedTuple

import tensorflow as tf

from optimization import tunable

# google-research/bert's list; searched with re.search in the full variable path.
DEFAULT_EXCLUDE = ("LayerNorm", "layer_norm", "bias")


class StepInfo(NamedTuple):
    """What a transform may know about the current update."""

    count: tf.Tensor  # 1-based number of this applied update (float32).
    learning_rate: tf.Tensor  # learning rate for this update (float32 scalar).


class Transform(NamedTuple):
    """An update-rule part: its per-variable slot names and update function.

    `specialize(path)`, if given, returns the transform to use for the variable
    at `path` (see `masked`); `None` means the same transform for every variable.
    """

    slots: tuple[str, ...]
    update: Callable
    specialize: Callable[[str], "Transform"] | None = None

    def for_variable(self, path: str) -> "Transform":
        """This transform as applied to the variable at `path` (no further specialization)."""
        return self if self.specialize is None else self.specialize(path)


def name_matches(name: str, patterns: Sequence[str] | None) -> bool:
    """True if any regex in `patterns` is found (re.search) in `name`."""
    return any(re.search(p, name) is not None for p in (patterns or ()))


def identity(slots: tuple[str, ...] = ()) -> Transform:
    """Leaves the update and the state (slots `slots`, if any) unchanged."""

    def update(u, state, w, step):
        del w, step
        return u, state

    return Transform(tuple(slots), update)


def masked(transform: Transform, exclude: Sequence[str] | None = DEFAULT_EXCLUDE) -> Transform:
    """`transform`, except for variables whose path matches a regex in `exclude`.

    Excluded variables get a pass-through (their slots, if any, keep their value).
    The choice is made per variable by `for_variable`; the unspecialized update
    cannot know the variable and raises.
    """

    def update(u, state, w, step):
        raise ValueError("masked(): call .for_variable(path) to get the update of one variable")

    def specialize(path):
        if name_matches(path, exclude):
            return identity(transform.slots)
        return transform.for_variable(path)

    return Transform(transform.slots, update, specialize)


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
    The numbers may be `tunable.Scalar`s (read from variables); the booleans are structural.
    """

    def update(u, state, w, step):
        del w
        b1, b2, eps = (tunable.read(x, u.dtype) for x in (beta_1, beta_2, epsilon))
        m = b1 * state["m"] + tunable.one_minus(beta_1, u.dtype) * u
        v = b2 * state["v"] + tunable.one_minus(beta_2, u.dtype) * tf.square(u)
        m_hat, v_hat = m, v
        if bias_correction:
            t = tf.cast(step.count, u.dtype)
            m_hat = m / (1.0 - tf.pow(_as_tensor(b1, u.dtype), t))
            v_hat = v / (1.0 - tf.pow(_as_tensor(b2, u.dtype), t))
        denominator = tf.sqrt(v_hat + eps) if epsilon_inside_sqrt else tf.sqrt(v_hat) + eps
        return m_hat / denominator, {"m": m, "v": v}

    return Transform(("m", "v"), update)


def _as_tensor(x, dtype):
    return tf.constant(x, dtype) if isinstance(x, (int, float)) else x


def add_decayed_weights(weight_decay) -> Transform:
    """Weight decay: u <- u + wd * w (a pass-through when wd is the number 0).

    Where it sits in a chain decides what it is: on the gradient, before a momentum
    buffer, it is L2 regularization (the gradient of wd/2 ||w||^2); after the
    direction (Adam, momentum) it is decoupled weight decay. Either way it comes
    before `scale_by_learning_rate`, so the decay is scaled by the learning rate.
    Wrap it in `masked` to exclude LayerNorm and bias. A tunable wd keeps the op at 0 too.
    """
    if not tunable.is_tunable(weight_decay) and weight_decay == 0.0:
        return identity()

    def update(u, state, w, step):
        del step
        return u + tunable.read(weight_decay, u.dtype) * w, state

    return Transform((), update)


def scale_by_trust_ratio(
    phi_bounds: tuple[float, float] | None = None,
    ratio_bounds: tuple[float, float] | None = None,
) -> Transform:
    """Layer-wise trust ratio: u <- ratio * u, ratio = phi(||w||) / ||u||.

    Two different bounds, both optional:
      phi_bounds=(lower, upper): phi(z) = min(max(z, lower), upper), the LAMB paper's
        scaling function with gamma_l, gamma_u (identity if None);
      ratio_bounds=(lower, upper): clip the ratio itself, the "bound-ratio" of "The
        Limit of the Batch Size" (applied last, so it bounds the ratio actually used).
    The ratio is 1 when ||w|| or ||u|| is zero (no layer adaptation for a zero
    weight, nothing to scale for a zero update). Wrap it in `masked` for exclusions.
    Tunable bounds are pairs of `tunable.Scalar`s ([0, inf] for none).
    """

    def clamp(x, bounds):
        lower, upper = (tunable.read(b, x.dtype) for b in bounds)
        return tf.minimum(tf.maximum(x, lower), upper)

    def update(u, state, w, step):
        del step
        w_norm = tf.norm(w)
        u_norm = tf.norm(u)
        phi = w_norm
        if phi_bounds is not None:
            phi = clamp(w_norm, phi_bounds)
        usable = tf.logical_and(w_norm > 0.0, u_norm > 0.0)
        # Divide by a safe value so that the unused branch of `where` is never NaN.
        ratio = tf.where(usable, phi / tf.where(usable, u_norm, 1.0), 1.0)
        if ratio_bounds is not None:
            ratio = clamp(ratio, ratio_bounds)
        return ratio * u, state

    return Transform((), update)


def trace(momentum: float, nesterov: bool = False) -> Transform:
    """Heavy-ball / Nesterov momentum (as optax.trace and torch.optim.SGD).

    b <- mu b + u;  u <- b (heavy ball) or u + mu b (Nesterov).
    """

    def update(u, state, w, step):
        del w, step
        mu = tunable.read(momentum, u.dtype)
        buf = mu * state["momentum"] + u
        new_u = u + mu * buf if nesterov else buf
        return new_u, {"momentum": buf}

    return Transform(("momentum",), update)


def ema(decay: float) -> Transform:
    """Damped momentum, an exponential moving average (optax.ema without debiasing).

    m <- decay m + (1 - decay) u;  u <- m.  The slot is called "momentum".
    """

    def update(u, state, w, step):
        del w, step
        mu, one_minus_mu = tunable.read(decay, u.dtype), tunable.one_minus(decay, u.dtype)
        m = mu * state["momentum"] + one_minus_mu * u
        return m, {"momentum": m}

    return Transform(("momentum",), update)


def scale_by_learning_rate() -> Transform:
    """u <- -lr * u, so that the rule ends with w <- w + u."""

    def update(u, state, w, step):
        del w
        return -tf.cast(step.learning_rate, u.dtype) * u, state

    return Transform((), update)


def chain(*transforms: Transform) -> Transform:
    """Applies the transforms in order; slot names must be unique across the chain."""
    slots = tuple(s for t in transforms for s in t.slots)
    if len(set(slots)) != len(slots):
        raise ValueError(f"chain(): duplicate slot names {slots}")

    def update(u, state, w, step):
        new_state: dict[str, tf.Tensor] = {}
        for t in transforms:
            u, part = t.update(u, {s: state[s] for s in t.slots}, w, step)
            new_state.update(part)
        return u, new_state

    if all(t.specialize is None for t in transforms):
        return Transform(slots, update)
    return Transform(slots, update, lambda path: chain(*(t.for_variable(path) for t in transforms)))
