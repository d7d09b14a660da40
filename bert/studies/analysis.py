"""Statistics of the scaling study: steps to a target, their uncertainty, S(B) and noise scale.

Pure numpy/scipy, so a finished study can be re-read without TensorFlow. A curve is a list of
(step, value) pairs of a metric that rises (held-out masked-LM accuracy); a cell's trials are a
list of curves. Each batch size is measured by the steps it needs to reach a target, as Shallue
et al. 2018 ("Measuring the Effects of Data Parallelism on Neural Network Training") do, not by
its accuracy at a fixed example budget: that "is equivalent to demanding perfect scaling"
(Nado et al., ../shared/papers/001_ed7a99c70c109f5e.txt:460-462). A trial that never reaches
the target is censored: inf steps here, "> budget" in a report, None in a result's fields.
"""

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import signal, stats


def log_spaced_steps(budget: int, count: int, first: int = 1) -> list[int]:
    """Sorted distinct integer steps from `first` to exactly `budget`, log-spaced.

    At least `count` of them (all of first..budget when there are fewer). Log spacing gives
    every doubling of the run the same resolution, which `crossing_step` interpolates over.
    """
    if not 1 <= first <= budget or count < 1:
        raise ValueError(f"need 1 <= first <= budget, count >= 1: {first}, {budget}, {count}")
    if count >= budget - first + 1:
        return list(range(first, budget + 1))
    points = max(count, 2)
    while True:
        steps = np.unique(np.rint(np.geomspace(first, budget, points)).astype(int))
        if len(steps) >= count:
            return [int(s) for s in steps]
        points += max(1, points // 8)


def _points(curve) -> list[tuple[float, float]]:
    """The curve's evaluations at positive steps (log(step) is undefined at 0), in step order."""
    return [(float(s), float(v)) for s, v in sorted(curve) if s > 0]


def crossing_step(curve, target: float) -> float | None:
    """The step at which the curve first reaches `target`, None if it never does (censored).

    Linear in log(step) between the last evaluation below and the first at or above, so on a
    log grid the error does not grow with the step. If the first evaluation is already at or
    above the target, its step is returned: an upper bound, since nothing is known before it
    (`target_ladder`'s default floor keeps targets above every curve's first value). A
    non-finite value before the crossing (a diverged evaluation) also gives the crossing's step.
    """
    previous = None
    for step, value in _points(curve):
        if value >= target:
            if value == target or previous is None or not math.isfinite(previous[1]):
                return step
            fraction = (target - previous[1]) / (value - previous[1])
            return previous[0] * (step / previous[0]) ** fraction
        previous = (step, value)
    return None


def _crossings(trial_curves, target: float, budget: float | None = None) -> np.ndarray:
    """Each trial's crossing step; inf when censored (never, or beyond `budget`)."""
    if not trial_curves:
        raise ValueError("a cell needs at least one trial")
    steps = [crossing_step(curve, target) for curve in trial_curves]
    limit = math.inf if budget is None else budget
    return np.array([s if s is not None and s <= limit else math.inf for s in steps])


def _finite(value) -> float | None:
    return float(value) if math.isfinite(value) else None


def target_ladder(
    curves, count: int, floor: float | None = None, spacing: str = "linear"
) -> list[float]:
    """`count` targets above `floor` up to the highest value any curve reached.

    Read from the stored curves after the study, so no target is guessed in advance. The
    default floor is the highest first evaluation of any curve: every target then lies above
    where each curve started, and each crossing is interpolated, never an upper bound.
    `spacing` "linear": evenly spaced; "halving": each rung halves the distance of the next
    one above the floor (floor + (top - floor) / 2^k), dense near the floor where the cells
    that learn least stop, so that some rung is one every cell reaches.
    """
    if spacing not in ("linear", "halving"):
        raise ValueError(f"spacing must be 'linear' or 'halving', got {spacing!r}")
    curves = [[v for _, v in _points(c) if math.isfinite(v)] for c in curves]
    curves = [c for c in curves if c]
    if not curves:
        raise ValueError("no finite evaluations to read targets from")
    top = max(max(c) for c in curves)
    floor = max(c[0] for c in curves) if floor is None else floor
    if not floor < top:
        raise ValueError(f"the floor {floor} must be below the highest value reached, {top}")
    if spacing == "halving":
        return [float(floor + (top - floor) * 0.5**k) for k in range(count - 1, -1, -1)]
    return [float(t) for t in np.linspace(floor, top, count + 1)[1:]]


def best_steps_to_target(trial_curves, target: float, budget: float | None = None) -> float | None:
    """The fewest steps any trial of the cell needed (its best trial), None if censored."""
    return _finite(_crossings(trial_curves, target, budget).min())


def headline_target(cells, targets: Sequence[float] | None = None, count: int = 10):
    """The highest target that every cell's best trial reaches (None if not even the lowest).

    `cells` maps a cell to its trial curves (or is a list of them); `targets` defaults to the
    `target_ladder` of all their curves.
    """
    cells = list(cells.values()) if isinstance(cells, Mapping) else list(cells)
    if targets is None:
        targets = target_ladder([c for cell in cells for c in cell], count)
    reached = [t for t in targets if all(best_steps_to_target(c, t) is not None for c in cells)]
    return max(reached, default=None)


def bootstrap_interval(
    trial_curves, target: float, budget=None, level: float = 0.9, resamples: int = 2000, seed=0
) -> dict:
    """Percentile bootstrap of the cell's best steps to target over its trials.

    The trials are resampled with replacement and the minimum recomputed (censored resamples
    are inf, above any budget). Returns {"value", "low", "high", "censored_fraction"}; "high"
    is None ("> budget") when the upper quantile is censored. What it can claim: the minimum
    of n trials is a median-unbiased estimate of the median best-of-n, and "high" is an upper
    bound for it at confidence >= (1 + level) / 2. "low" is not a lower bound: a resampled
    minimum is never below the observed one, so two-sided coverage is about 1/2, whatever
    `level` says (tests/test_analysis.py measures both). `substudy_median` gives a two-sided
    interval with the coverage it states, with a lower end once k <= about n / 3.3.
    """
    steps = _crossings(trial_curves, target, budget)
    picks = np.random.default_rng(seed).integers(0, len(steps), size=(resamples, len(steps)))
    minima = steps[picks].min(axis=1)
    quantiles = np.quantile(minima, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
    low, high = (_finite(q) for q in quantiles)
    censored = float(np.mean(np.isinf(minima)))
    return {"value": _finite(steps.min()), "low": low, "high": high, "censored_fraction": censored}


def _order_statistic_ranks(n: int, p: float, level: float) -> tuple[int, int, float]:
    """Ranks (r, s) such that [X_(r), X_(s)] holds the p-quantile with probability >= level.

    Distribution-free: X_(r) <= q_p < X_(s) fails only if Binomial(n, p) < r or >= s. Rank 0 /
    n + 1 mean no bound on that side: avoided when possible, then narrowest in ranks, then the
    most even tails.
    """
    cdf = stats.binom.cdf(np.arange(-1, n + 1), n, p)  # cdf[r] = P(B <= r - 1)
    best = None
    for r in range(n + 1):
        for s in range(r + 1, n + 2):
            below, above = cdf[r], 1.0 - cdf[s]
            if 1.0 - below - above >= level - 1e-12:
                unbounded = (r == 0) + (s == n + 1)
                key = (unbounded, s - r, abs(below - above), r, s, 1.0 - below - above)
                best = key if best is None or key < best else best
    return best[3], best[4], float(best[5])


def substudy_median(
    trial_curves, target: float, substudy_size: int, level: float = 0.9, budget=None
) -> dict:
    """AlgoPerf-style: the median of the best steps to target of sub-studies of k trials.

    Over all k-subsets of the trials (every way to split them at once, so no seed), as Nado et
    al. report medians over many runs (001_ed7a99c70c109f5e.txt:146, 154-155). It estimates the
    median best-of-k, the per-trial quantile p = 1 - 2^(-1/k); "low"/"high" are an exact
    order-statistic interval for it at "coverage" >= level (None: no bound on that side; "high"
    None reads "> budget"). "spread" is the quartiles of the best-of-k over the subsets. With
    k = n the value is the cell's best and "low" is None: a lower bound needs k well below n.
    """
    steps = np.sort(_crossings(trial_curves, target, budget))
    n = len(steps)
    if not 1 <= substudy_size <= n:
        raise ValueError(f"substudy_size must be in 1..{n}, got {substudy_size}")
    k = substudy_size
    total = math.comb(n, k)
    cdf = np.array([1.0 - math.comb(n - i, k) / total for i in range(1, n + 1)])

    def quantile(q):
        return _finite(steps[int(np.argmax(cdf >= q - 1e-12))])

    r, s, coverage = _order_statistic_ranks(n, 1.0 - 0.5 ** (1.0 / k), level)
    return {
        "value": quantile(0.5),
        "low": _finite(steps[r - 1]) if r >= 1 else None,
        "high": _finite(steps[s - 1]) if s <= n else None,
        "coverage": coverage,
        "spread": [quantile(0.25), quantile(0.75)],
        "substudy_size": k,
    }


def _parameter_range(spec) -> tuple:
    if isinstance(spec, Mapping):
        return spec.get("low"), spec.get("high"), bool(spec.get("log", False))
    if isinstance(spec, Sequence):
        return spec[0], spec[1], bool(spec[2]) if len(spec) > 2 else False
    return getattr(spec, "low", None), getattr(spec, "high", None), bool(getattr(spec, "log", 0))


def edge_flags(best_params: Mapping, space_ranges: Mapping, fraction: float = 0.05) -> dict:
    """{name: "low" | "high"} for each searched range the best trial sits within `fraction` of.

    Position is measured in log space for log ranges. A best point at an edge says the range
    was too narrow there, e.g. Nado's tuned 1 - beta_2 = 0.0107 (001_ed7a99c70c109f5e.txt:1362)
    against Table 6's lower edge 1e-2 (001_ed7a99c70c109f5e.txt:1347-1352). Ranges are dicts
    ("low", "high", "log"), (low, high[, log]) or objects with those attributes; choices and
    parameters absent from `space_ranges` are skipped.
    """
    flags = {}
    for name, value in best_params.items():
        low, high, log = _parameter_range(space_ranges.get(name, {}))
        if low is None or high is None:
            continue
        scale = math.log if log else float
        position = (scale(value) - scale(low)) / (scale(high) - scale(low))
        if position <= fraction:
            flags[name] = "low"
        elif position >= 1.0 - fraction:
            flags[name] = "high"
    return flags


BOUND_DECADES = 3.0  # B_crit is searched within 10^3 below the smallest and above the largest B


def _profile(log_bcrit, log_b, log_s, log_lower, censored, w):
    """For each row r and grid point g of log_bcrit (R, G): the best log S_min and its error.

    log_s, censored, w are (R, n); log_b, log_lower (n,). Reached points pull log S_min to
    their weighted mean; a censored point's hinge only pushes it up. The error is convex in
    log S_min, so its minimiser is the largest of the weighted means with the k highest
    censored thresholds held active (k = 0..n).
    """
    shape = np.logaddexp(0.0, log_bcrit[..., None] - log_b)  # log(1 + B_crit / B): (R, G, n)
    wr, wc = (w * ~censored)[:, None, :], (w * censored)[:, None, :]
    a = log_s[:, None, :] - shape
    base_wt, base_w = (wr * a).sum(-1, keepdims=True), wr.sum(-1, keepdims=True)
    log_smin = base_wt[..., 0] / base_w[..., 0]
    if censored.any():
        t = log_lower - shape
        order = np.argsort(np.where(wc > 0, -t, np.inf), axis=-1)  # censored, highest first
        t_sorted = np.take_along_axis(np.where(wc > 0, t, 0.0), order, axis=-1)
        w_sorted = np.take_along_axis(np.broadcast_to(wc, t.shape), order, axis=-1)
        sums = (base_wt + np.cumsum(w_sorted * t_sorted, -1), base_w + np.cumsum(w_sorted, -1))
        log_smin = np.maximum(log_smin, (sums[0] / sums[1]).max(-1))
    error = (wr * (a - log_smin[..., None]) ** 2).sum(-1)
    hinge = (wc * np.minimum(log_smin[..., None] - t, 0.0) ** 2).sum(-1) if censored.any() else 0
    return log_smin, error + hinge


def _fit(log_b, log_s, log_lower, censored, w):
    """Rows of (log S_min, log B_crit, error) by nested grids in log B_crit, each zooming on
    the previous one's best point and its neighbours (1/16 of the width a level)."""
    margin = BOUND_DECADES * math.log(10.0)
    bounds = log_b.min() - margin, log_b.max() + margin
    left, right = np.full(len(log_s), bounds[0]), np.full(len(log_s), bounds[1])
    points = 129
    for _ in range(9):
        grid = left[:, None] + (right - left)[:, None] * np.linspace(0.0, 1.0, points)
        best = np.argmin(_profile(grid, log_b, log_s, log_lower, censored, w)[1], axis=1)

        def pick(i, grid=grid, points=points):
            return np.take_along_axis(grid, np.clip(i, 0, points - 1)[:, None], 1)[:, 0]

        left, right, log_bcrit, points = pick(best - 1), pick(best + 1), pick(best), 33
    log_smin, error = _profile(log_bcrit[:, None], log_b, log_s, log_lower, censored, w)
    return log_smin[:, 0], log_bcrit, error[:, 0], bounds


def _beyond(log_bcrit: float, bounds) -> str | None:
    below, above = log_bcrit - bounds[0] < 1e-3, bounds[1] - log_bcrit < 1e-3
    return "below" if below else "above" if above else None


def fit_critical_batch(batches, steps, budgets=None, weights=None) -> dict:
    """Least squares in log(steps) of S(B) = S_min (1 + B_crit / B).

    McCandlish et al. 2018 ("An Empirical Model of Large-Batch Training", section 2.3): S and
    E = B S trade off as (S / S_min - 1)(E / E_min - 1) = 1 with B_crit = E_min / S_min, which
    is this curve; below B_crit doubling B halves S (Shallue et al.'s perfect scaling), above
    it S flattens at S_min. Log residuals weigh every batch alike. A censored batch (steps None
    or inf; needs its entry of `budgets`) is a lower bound: it costs only when the curve
    predicts fewer steps than its budget. `weights` (e.g. 1 / variance of log steps) scale the
    squared residuals. "beyond" is "below" / "above" when B_crit sits at the search bound
    (BOUND_DECADES beyond the batches): S flat, or perfect scaling, over the whole range.
    """
    b = np.asarray(batches, dtype=float)
    s = np.array([math.inf if x is None else float(x) for x in steps])
    censored = ~np.isfinite(s)
    if len(np.unique(b[~censored])) < 2:
        raise ValueError("the fit needs reached steps at two batch sizes at least")
    if censored.any() and budgets is None:
        raise ValueError("censored batch sizes need their budgets (lower bounds)")
    lower = np.ones_like(b) if budgets is None else np.asarray(budgets, dtype=float)
    w = np.ones_like(b) if weights is None else np.asarray(weights, dtype=float)
    log_s = np.log(np.where(censored, 1.0, s))
    fit = _fit(np.log(b), log_s[None], np.log(lower), censored[None], w[None])
    log_smin, log_bcrit, error = (float(v[0]) for v in fit[:3])
    return {
        "s_min": math.exp(log_smin),
        "b_crit": math.exp(log_bcrit),
        "e_min": math.exp(log_smin + log_bcrit),
        "beyond": _beyond(log_bcrit, fit[3]),
        "censored": [float(x) for x in b[censored]],
        "rms_log_residual": math.sqrt(error / w.sum()),
    }


def critical_batch_interval(
    cells: Mapping,
    target: float,
    budgets: Mapping | None = None,
    level: float = 0.9,
    resamples: int = 1000,
    seed=0,
) -> dict:
    """`fit_critical_batch` on each cell's best trial, with a percentile bootstrap for B_crit.

    `cells` maps batch size to trial curves; `budgets` batch size to step budget (default: the
    cell's last evaluated step). Each resample redraws every cell's trials with replacement
    and refits; a cell whose resampled best is censored enters that fit as a lower bound at
    its budget, as in the point fit. Resamples with fewer than two reached batch sizes cannot
    be fitted: they are left out and counted in "unfitted_fraction". "low" / "high" are None
    where that quantile sits at the search bound (B_crit not bounded on that side). It inherits
    the narrowness of a minimum's bootstrap (`bootstrap_interval`): on synthetic studies (5
    batches, 6-24 log-normal trials each) a 0.9 interval held the true B_crit 76-84% of the
    time, so read it as a rough range (tests/test_analysis.py checks 0.7-0.95).
    """
    batches = sorted(cells)
    if budgets is None:
        budgets = {b: max(s for curve in cells[b] for s, _ in curve) for b in batches}
    budget_list = [budgets[b] for b in batches]
    crossings = [_crossings(cells[b], target, budgets[b]) for b in batches]
    point = fit_critical_batch(batches, [_finite(c.min()) for c in crossings], budget_list)
    rng = np.random.default_rng(seed)
    best = np.stack([c[rng.integers(0, len(c), (resamples, len(c)))].min(1) for c in crossings], 1)
    censored = np.isinf(best)
    fitted = (~censored).sum(axis=1) >= 2
    if not fitted.any():
        return {**point, "low": None, "high": None, "unfitted_fraction": 1.0}
    log_b, log_lower = np.log(np.asarray(batches, float)), np.log(np.asarray(budget_list, float))
    log_s = np.log(np.where(censored, 1.0, best))[fitted]
    weights = np.ones_like(log_s)
    _, log_bcrit, _, bounds = _fit(log_b, log_s, log_lower, censored[fitted], weights)
    ends = np.quantile(log_bcrit, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
    low, high = (None if _beyond(e, bounds) else math.exp(e) for e in ends)
    return {**point, "low": low, "high": high, "unfitted_fraction": float(1 - fitted.mean())}


def _unbiased(small_sq, big_sq, b_small: float, b_big: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-step unbiased |G|^2 and tr(Sigma) (McCandlish et al. 2018, appendix A.1)."""
    from bert.training.step import estimate_noise_scale  # the one copy of the formula

    small, big = np.asarray(small_sq, dtype=float), np.asarray(big_sq, dtype=float)
    return estimate_noise_scale(small, big, b_small, b_big)


def noise_scale_from_norms(small_sq, big_sq, b_small: float, b_big: float) -> dict:
    """B_simple = tr(Sigma) / |G|^2 from squared gradient norms at two batch sizes.

    McCandlish et al. 2018 ("An Empirical Model of Large-Batch Training"), appendix A.1:
    E|G_B|^2 = |G|^2 + tr(Sigma) / B, so two batch sizes give unbiased estimates
    |G|^2 = (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small) and
    tr(Sigma) = (|G_small|^2 - |G_big|^2) / (1 / B_small - 1 / B_big). Given per step (arrays;
    a micro-batch's or replica's squared norm, averaged over replicas, is still unbiased), each
    is averaged over the steps before dividing, as the paper does: a ratio of one step's noisy
    estimates is biased and can blow up. "b_simple" is None if the mean |G|^2 is <= 0.
    """
    g_sq, trace = (float(np.mean(x)) for x in _unbiased(small_sq, big_sq, b_small, b_big))
    b_simple = trace / g_sq if g_sq > 0 else None
    return {"g_sq": g_sq, "trace_sigma": trace, "b_simple": b_simple, "steps": np.size(small_sq)}


def noise_scale_ema(small_sq, big_sq, b_small: float, b_big: float, decay: float = 0.99):
    """B_simple at every step from exponential moving averages of |G|^2 and tr(Sigma).

    The running form of `noise_scale_from_norms` (numerator and denominator averaged apart,
    then divided; the averages' zero-start bias cancels in the ratio). NaN while the averaged
    |G|^2 is <= 0.
    """
    g_sq, trace = (
        signal.lfilter([1.0 - decay], [1.0, -decay], x)
        for x in _unbiased(small_sq, big_sq, b_small, b_big)
    )
    return np.where(g_sq > 0, trace / np.where(g_sq > 0, g_sq, 1.0), math.nan)
