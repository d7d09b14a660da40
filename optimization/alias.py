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


def _trust_ratio(exclude, bounds):
    return tx.masked(tx.scale_by_trust_ratio(bounds), exclude)


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
        tx.masked(tx.add_decayed_weights(weight_decay), exclude_from_weight_decay),
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
    trust_ratio_bounds: tuple[float, float] | None = None,
) -> tx.Transform:
    """LAMB (You et al., Alg. 2): trust ratio on the Adam direction r + wd * w.

    exclude_from_layer_adaptation=None uses the weight-decay exclusions.
    """
    if exclude_from_layer_adaptation is None:
        exclude_from_layer_adaptation = exclude_from_weight_decay
    return tx.chain(
        tx.scale_by_adam(beta_1, beta_2, epsilon, bias_correction, epsilon_inside_sqrt),
        tx.masked(tx.add_decayed_weights(weight_decay), exclude_from_weight_decay),
        _trust_ratio(exclude_from_layer_adaptation, trust_ratio_bounds),
        tx.scale_by_learning_rate(),
    )


def lars(
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    exclude_from_weight_decay: Sequence[str] | None = _EXCLUDE,
    exclude_from_layer_adaptation: Sequence[str] | None = None,
    trust_ratio_bounds: tuple[float, float] | None = None,
    nesterov: bool = False,
) -> tx.Transform:
    """LARS (You et al. 2017): trust ratio on g + wd * w, then (Nesterov) momentum."""
    if exclude_from_layer_adaptation is None:
        exclude_from_layer_adaptation = exclude_from_weight_decay
    return tx.chain(
        tx.masked(tx.add_decayed_weights(weight_decay), exclude_from_weight_decay),
        _trust_ratio(exclude_from_layer_adaptation, trust_ratio_bounds),
        tx.trace(momentum, nesterov),
        tx.scale_by_learning_rate(),
    )


def _sgdw(mu, weight_decay, exclude_from_weight_decay, nesterov):
    return tx.chain(
        tx.trace(mu, nesterov),
        tx.masked(tx.add_decayed_weights(weight_decay), exclude_from_weight_decay),
        tx.scale_by_learning_rate(),
    )


def momentum(
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    exclude_from_weight_decay: Sequence[str] | None = _EXCLUDE,
    nesterov: bool = False,
) -> tx.Transform:
    """SGD with heavy-ball momentum and decoupled weight decay (SGDW)."""
    return _sgdw(momentum, weight_decay, exclude_from_weight_decay, nesterov)


def nesterov(
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    exclude_from_weight_decay: Sequence[str] | None = _EXCLUDE,
    nesterov: bool = True,
) -> tx.Transform:
    """SGD with Nesterov momentum and decoupled weight decay (`momentum` with nesterov=True)."""
    return _sgdw(momentum, weight_decay, exclude_from_weight_decay, nesterov)


RULES = {"adamw": adamw, "lamb": lamb, "lars": lars, "momentum": momentum, "nesterov": nesterov}


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
