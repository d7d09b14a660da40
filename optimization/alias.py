"""The optimizers of this package, one short function each (as optax's alias.py).

Each rule function returns the per-variable `transforms.Transform` chain of its
optimizer; `gradient_wrappers` returns the whole-gradient steps every optimizer
shares. The keyword arguments and their defaults are the hyperparameters of
`optimization.create_optimizer` (see `hparams.DEFAULTS`, derived from them).
"""

import inspect
from collections.abc import Sequence
from typing import Any

from optimization import transforms as tx
from optimization import wrappers

_EXCLUDE = tx.DEFAULT_EXCLUDE


def gradient_wrappers(
    clipnorm: float | None = None,
    gradient_accumulation_steps: int = 1,
    skip_nonfinite: bool = False,
) -> wrappers.GradientWrapper:
    """Average k micro-batches, skip inf/NaN gradients, clip by the global norm (this order)."""
    parts = []
    if gradient_accumulation_steps > 1:
        parts.append(wrappers.accumulate_gradients(gradient_accumulation_steps))
    if skip_nonfinite:
        parts.append(wrappers.skip_nonfinite())
    if clipnorm is not None:
        parts.append(wrappers.clip_by_global_norm(clipnorm))
    return wrappers.chain(*parts)


def _weight_decay(weight_decay, exclude_from_weight_decay):
    return tx.masked(tx.add_decayed_weights(weight_decay), exclude_from_weight_decay)


def _trust_ratio(
    exclude_from_layer_adaptation, exclude_from_weight_decay, phi_bounds, ratio_bounds
):
    """The masked trust ratio; exclude_from_layer_adaptation=None uses the decay exclusions."""
    if exclude_from_layer_adaptation is None:
        exclude_from_layer_adaptation = exclude_from_weight_decay
    trust_ratio = tx.scale_by_trust_ratio(phi_bounds, ratio_bounds)
    return tx.masked(trust_ratio, exclude_from_layer_adaptation)


def adamw(
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-6,
    bias_correction: bool = True,
    epsilon_inside_sqrt: bool = False,
    weight_decay: float = 0.01,
    exclude_from_weight_decay: Sequence[str] | None = _EXCLUDE,
) -> tx.Transform:
    """AdamW (Loshchilov & Hutter): Adam direction plus decoupled weight decay."""
    return tx.chain(
        tx.scale_by_adam(beta_1, beta_2, epsilon, bias_correction, epsilon_inside_sqrt),
        _weight_decay(weight_decay, exclude_from_weight_decay),
        tx.scale_by_learning_rate(),
    )


def lamb(
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-6,
    bias_correction: bool = True,
    epsilon_inside_sqrt: bool = False,
    weight_decay: float = 0.01,
    exclude_from_weight_decay: Sequence[str] | None = _EXCLUDE,
    exclude_from_layer_adaptation: Sequence[str] | None = None,
    phi_bounds: tuple[float, float] | None = None,
    ratio_bounds: tuple[float, float] | None = None,
) -> tx.Transform:
    """LAMB (You et al., Alg. 2): trust ratio on the Adam direction r + wd * w.

    epsilon_inside_sqrt=False (r = m / (sqrt(v) + eps)) follows the TFA code the
    paper links and its N-LAMB; True is Alg. 2 as printed (r = m / sqrt(v + eps)).
    exclude_from_layer_adaptation=None uses the weight-decay exclusions.
    """
    return tx.chain(
        tx.scale_by_adam(beta_1, beta_2, epsilon, bias_correction, epsilon_inside_sqrt),
        _weight_decay(weight_decay, exclude_from_weight_decay),
        _trust_ratio(
            exclude_from_layer_adaptation, exclude_from_weight_decay, phi_bounds, ratio_bounds
        ),
        tx.scale_by_learning_rate(),
    )


def lars(
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    exclude_from_weight_decay: Sequence[str] | None = _EXCLUDE,
    exclude_from_layer_adaptation: Sequence[str] | None = None,
    phi_bounds: tuple[float, float] | None = None,
    ratio_bounds: tuple[float, float] | None = None,
) -> tx.Transform:
    """LARS as Alg. 1 of You et al. (2019): trust ratio on the damped momentum.

    m <- b1 m + (1 - b1)(g + wd w);  w <- w - lr phi(||w||)/||m|| m,  b1 = `momentum`.
    The decay is L2 regularization (inside the momentum). The (1 - b1) cancels in
    the ratio; excluded variables (no trust ratio) step by lr m, damping included.
    """
    return tx.chain(
        _weight_decay(weight_decay, exclude_from_weight_decay),
        tx.ema(momentum),
        _trust_ratio(
            exclude_from_layer_adaptation, exclude_from_weight_decay, phi_bounds, ratio_bounds
        ),
        tx.scale_by_learning_rate(),
    )


def lars_trust_before_momentum(
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    exclude_from_weight_decay: Sequence[str] | None = _EXCLUDE,
    exclude_from_layer_adaptation: Sequence[str] | None = None,
    phi_bounds: tuple[float, float] | None = None,
    ratio_bounds: tuple[float, float] | None = None,
    nesterov: bool = False,
) -> tx.Transform:
    """LARS in the other common order: trust ratio on g + wd w, then undamped momentum.

    u = phi(||w||)/||g + wd w|| (g + wd w);  b <- mu b + u;  w <- w - lr (b or u + mu b).
    The ratio scales each step before it enters the buffer, as in the earlier LARS
    paper (You et al. 2017) and the MLPerf pipelines; this was `lars` before it
    followed Alg. 1. Unlike those, lr multiplies the buffer's output, not its input.
    """
    return tx.chain(
        _weight_decay(weight_decay, exclude_from_weight_decay),
        _trust_ratio(
            exclude_from_layer_adaptation, exclude_from_weight_decay, phi_bounds, ratio_bounds
        ),
        tx.trace(momentum, nesterov),
        tx.scale_by_learning_rate(),
    )


def _sgd(mu, weight_decay, exclude_from_weight_decay, nesterov, decoupled_weight_decay):
    decay = _weight_decay(weight_decay, exclude_from_weight_decay)
    if decoupled_weight_decay:  # SGDW: the decay bypasses the momentum buffer.
        return tx.chain(tx.trace(mu, nesterov), decay, tx.scale_by_learning_rate())
    return tx.chain(decay, tx.trace(mu, nesterov), tx.scale_by_learning_rate())


def momentum(
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    exclude_from_weight_decay: Sequence[str] | None = _EXCLUDE,
    nesterov: bool = False,
    decoupled_weight_decay: bool = False,
) -> tx.Transform:
    """SGD with heavy-ball momentum; L2 regularization, or decoupled weight decay (SGDW).

    decoupled_weight_decay=False: b <- mu b + (g + wd w), the L2 term goes into the
    buffer (Nado et al. tuned Nesterov with L2); True: b <- mu b + g, then + wd w.
    """
    return _sgd(momentum, weight_decay, exclude_from_weight_decay, nesterov, decoupled_weight_decay)


def nesterov(
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    exclude_from_weight_decay: Sequence[str] | None = _EXCLUDE,
    nesterov: bool = True,
    decoupled_weight_decay: bool = False,
) -> tx.Transform:
    """`momentum` with nesterov=True: the step is u + mu b instead of b."""
    return _sgd(momentum, weight_decay, exclude_from_weight_decay, nesterov, decoupled_weight_decay)


RULES = {
    "adamw": adamw,
    "lamb": lamb,
    "lars": lars,
    "lars_trust_before_momentum": lars_trust_before_momentum,
    "momentum": momentum,
    "nesterov": nesterov,
}


def defaults(function) -> dict[str, Any]:
    """Keyword defaults of `function` (tuples as lists, as they appear in JSON configs)."""
    return {
        p.name: list(p.default) if isinstance(p.default, tuple) else p.default
        for p in inspect.signature(function).parameters.values()
    }


def build(name: str, hparams: dict[str, Any]) -> tuple[wrappers.GradientWrapper, tx.Transform]:
    """(whole-gradient wrappers, per-variable rule) of optimizer `name` from complete hparams."""
    shared = defaults(gradient_wrappers)
    outer = gradient_wrappers(**{k: v for k, v in hparams.items() if k in shared})
    rule = RULES[name](**{k: v for k, v in hparams.items() if k not in shared})
    return outer, rule
