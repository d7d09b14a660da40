"""Hyperparameters of `optimization.create_optimizer`: defaults and validation.

`DEFAULTS[name]` lists every hyperparameter optimizer `name` accepts with its
default: those of `alias.gradient_wrappers` (shared by all) and of the rule
function `alias.RULES[name]`. Older names in `ALIASES` are still accepted.
"""

import re
from typing import Any

from optimization import alias

# name -> defaults of every accepted hyperparameter.
DEFAULTS: dict[str, dict[str, Any]] = {
    name: {**alias.defaults(alias.gradient_wrappers), **alias.defaults(rule)}
    for name, rule in alias.RULES.items()
}


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
    "phi_bounds": _check_bounds,
    "ratio_bounds": _check_bounds,
    "decoupled_weight_decay": _check_bool,
    "clipnorm": _check_clipnorm,
    "gradient_accumulation_steps": _check_accumulation,
    "skip_nonfinite": _check_bool,
}


# Older name -> current name. `trust_ratio_bounds` always bounded phi(||w||), not
# the ratio phi(||w||)/||u|| its name suggests (that is `ratio_bounds`).
ALIASES = {"trust_ratio_bounds": "phi_bounds"}


def _rename_aliases(name: str, hparams: dict[str, Any]) -> dict[str, Any]:
    """`hparams` with older names replaced by current ones (for optimizers that have them)."""
    renamed = dict(hparams)
    for old, new in ALIASES.items():
        if old not in renamed or new not in DEFAULTS[name]:
            continue
        if new in renamed:
            raise ValueError(f"give either {new} or its older name {old}, not both")
        renamed[new] = renamed.pop(old)
    return renamed


def resolve_hparams(name: str, hparams: dict[str, Any]) -> dict[str, Any]:
    """Defaults of `name` updated with `hparams`, validated; ValueError otherwise."""
    if name not in DEFAULTS:
        raise ValueError(f"optimizer name must be one of {sorted(DEFAULTS)}, got {name!r}")
    hparams = _rename_aliases(name, hparams)
    unknown = sorted(set(hparams) - set(DEFAULTS[name]))
    if unknown:
        raise ValueError(
            f"optimizer {name!r} got unknown hyperparameter(s) {unknown}; "
            f"expected some of {sorted(DEFAULTS[name])}"
        )
    resolved = dict(DEFAULTS[name])
    resolved.update(hparams)
    return {k: _CHECKS[k](k, v) for k, v in resolved.items()}
