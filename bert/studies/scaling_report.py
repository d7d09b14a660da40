"""What the scaling study shows: steps to target per cell, intervals, S(B) fits, the plot.

Everything here is computed from the cells' stored trials (each trial's held-out accuracy
curve), so a finished study can be re-read with other targets. The numbers and their meaning
come from `bert.studies.analysis`: crossings interpolated in log step, the target ladder, the
bootstrap of the best trial, the sub-study median, edge flags and the critical-batch fit.
"""

import dataclasses
import math
import os
import time

import numpy as np

from bert.studies import analysis, report, space
from data import config_files, fileio, plotting

# Trial states whose curves count; a diverged trial counts as censored (an empty curve).
_SCORED = ("complete",)


def _curves(summary: dict) -> list:
    return [
        [tuple(p) for p in t["curve"]] if t["state"] in _SCORED else [] for t in summary["trials"]
    ]


def _timing(trials: list) -> dict:
    return {
        "compile_seconds": sum(t.get("compile_seconds") or 0.0 for t in trials),
        "seconds": sum(t.get("seconds") or 0.0 for t in trials),
        "stopped_early": sum(bool(t.get("stopped_early")) for t in trials),
    }


def targets(preset, curves_by_cell: dict) -> tuple:
    """(ladder, headline target): the ladder from every stored curve, capped at the accuracy
    trials stop at, and the highest rung every cell reaches (or the preset's target)."""
    every = [c for curves in curves_by_cell.values() for c in curves if c]
    try:
        ladder = analysis.target_ladder(every, preset.ladder, spacing=preset.ladder_spacing)
    except ValueError:  # No curve rose above the best first evaluation: no ladder to read.
        ladder = []
    if preset.stop_at_accuracy:
        ladder = [t for t in ladder if t <= preset.stop_at_accuracy] or [preset.stop_at_accuracy]
    if preset.target_accuracy or not ladder:
        return ladder, preset.target_accuracy or None
    headline = analysis.headline_target(curves_by_cell, ladder)
    return ladder, headline


def cell_row(preset, cell, summary: dict, seed_curves: list, target) -> dict:
    """One cell: its budget, trials (with their cost), steps to target with intervals."""
    curves = _curves(summary)
    trials = [
        {k: t.get(k) for k in ("point", "state", report.METRIC, *report.MEASURES, "curve")}
        for t in summary["trials"]
    ]
    row = {
        "optimizer": cell.optimizer,
        "batch": cell.batch,
        "budget": cell.steps,
        "warmup": cell.warmup,
        "eval_steps": cell.eval_steps,
        "trials": trials,
        "diverged": summary["diverged"],
        "best_accuracy": summary[f"best_{report.METRIC}"],
        **_timing(summary["trials"]),
        "gradient_noise_scale": _noise_scale(summary["trials"]),
    }
    if target is None:
        return {**row, "steps_to_target": None, "substudy": None, "edge": {}, "seeds": []}
    boot = analysis.bootstrap_interval(curves, target, cell.steps, level=preset.level)
    k = min(preset.substudy_size, len(curves))
    crossings = [analysis.crossing_step(c, target) for c in curves]
    reached = [(s, i) for i, s in enumerate(crossings) if s is not None and s <= cell.steps]
    best = summary["trials"][min(reached)[1]] if reached else None
    space_ranges = {p.name: p for p in space.load_search_space(_space_of(summary)).parameters}
    return {
        **row,
        "steps_to_target": {"target": target, **boot},
        "substudy": analysis.substudy_median(curves, target, k, preset.level, cell.steps),
        "best_point": best["point"] if best else None,
        "edge": analysis.edge_flags(best, space_ranges) if best else {},
        "seeds": [analysis.crossing_step(c, target) for c in seed_curves],
    }


def _space_of(summary: dict) -> str:
    return summary["search_space"]


def _noise_scale(trials: list):
    """B_simple of the cell's best trial (highest held-out accuracy) among those that measured
    it, None when none could. Not a mean over trials: a trial that stays on the plateau has
    |G|^2 near 0 and a B_simple orders of magnitude off (McCandlish et al. measure it along a
    tuned run)."""
    measured = [t for t in trials if t.get("gradient_noise_scale") and t.get(report.METRIC)]
    best = max(measured, key=lambda t: t[report.METRIC], default=None)
    return best["gradient_noise_scale"] if best else None


def fits(preset, rows: list, curves_by_cell: dict, target) -> dict:
    """Per optimizer: S(B) = S_min (1 + B_crit / B) fitted to its cells, B_crit's interval."""
    out = {}
    for optimizer in dict.fromkeys(r["optimizer"] for r in rows):
        mine = [r for r in rows if r["optimizer"] == optimizer]
        cells = {r["batch"]: curves_by_cell[(optimizer, r["batch"])] for r in mine}
        budgets = {r["batch"]: r["budget"] for r in mine}
        # McCandlish et al.'s B_simple predicts the critical batch: the median over the cells.
        noise = sorted(r["gradient_noise_scale"] for r in mine if r["gradient_noise_scale"])
        predicted = float(np.median(noise)) if noise else None
        try:
            fit = analysis.critical_batch_interval(cells, target, budgets, preset.level)
        except ValueError as e:  # Fewer than two batch sizes reached the target.
            out[optimizer] = {
                "critical_batch": None,
                "note": str(e),
                "predicted_critical_batch": predicted,
            }
            continue
        out[optimizer] = {
            "critical_batch": {"value": fit["b_crit"], "low": fit["low"], "high": fit["high"]},
            "s_min": fit["s_min"],
            "beyond": fit["beyond"],
            "censored": fit["censored"],
            "predicted_critical_batch": predicted,
        }
    return out


def run_summary(
    rows: list, seeds: dict, wall_seconds: float | None, workers: int, command: str = ""
) -> dict:
    """What the study cost: wall time, trials, and the trials' compile and total seconds."""
    trials = [t for r in rows for t in r["trials"]]
    return {
        "command": command,
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} CPU cores ({_cpu_model()})",
        "wall_seconds": wall_seconds,
        "workers": workers,
        "trials": len(trials),
        "seed_repeats": sum(len(curves) for curves in seeds.values()),
        "compile_seconds": sum(t.get("compile_seconds") or 0 for t in trials),
        "trial_seconds": sum(t.get("seconds") or 0 for t in trials),
    }


def write(
    out: str,
    preset_name: str,
    preset,
    cells: list,
    summaries: dict,
    seeds: dict,
    wall_seconds: float | None = None,
    workers: int = 1,
    command: str = "",
) -> list:
    """reality_check.{json,md,png} in `out`; returns the cell rows."""
    curves_by_cell = {(c.optimizer, c.batch): _curves(summaries[c.name]) for c in cells}
    ladder, target = targets(preset, curves_by_cell)
    rows = [cell_row(preset, c, summaries[c.name], seeds.get(c.name, []), target) for c in cells]
    optimizers = fits(preset, rows, curves_by_cell, target) if target else {}
    run = run_summary(rows, seeds, wall_seconds, workers, command)
    fileio.write_json_atomic(
        os.path.join(out, "reality_check.json"),
        {
            "preset": dataclasses.asdict(preset),
            "run": run,
            "targets": ladder,
            "headline_target": target,
            "cells": rows,
            "optimizers": optimizers,
        },
    )
    fileio.write_atomic(
        os.path.join(out, "reality_check.md"),
        markdown(preset_name, preset, rows, optimizers, ladder, target, run),
    )
    plot(rows, optimizers, target, os.path.join(out, "reality_check.png"))
    return rows


def _steps(value) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _interval(entry, budget) -> str:
    if entry is None or entry["value"] is None:
        return f"> {budget:,} (censored)"
    high = _steps(entry["high"]) if entry["high"] is not None else f"> {budget:,}"
    return f"{_steps(entry['value'])} [{_steps(entry['low'])}, {high}]"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def run_line(run: dict) -> str:
    """One sentence: the command, when and where it ran, and what it cost."""
    wall = "-" if run["wall_seconds"] is None else f"{run['wall_seconds'] / 60:.1f} min"
    command = f"`{run['command']}`, " if run.get("command") else ""
    return (
        f"Run: {command}{run.get('date', '')} on {run.get('machine', '?')}: {run['trials']} "
        f"trials and {run['seed_repeats']} seed repeats in {wall} of wall time with "
        f"{run['workers']} worker(s); the trials took {run['trial_seconds'] / 60:.1f} min summed "
        f"over workers, of which compilation {run['compile_seconds'] / 60:.1f} min (one program "
        "per cell and worker)."
    )


def markdown(preset_name, preset, rows, optimizers, ladder, target, run=None) -> str:
    """The study as a page: what was run, the table per cell, the fits."""
    level = f"{preset.level:.0%}"
    lines = [
        f"# Reality check ({preset_name}): steps to held-out MLM accuracy "
        f"{target if target is None else f'{target:.4f}'}",
        "",
    ]
    if run:
        lines += [run_line(run), ""]
    lines += [
        f"Targets read from the curves: {', '.join(f'{t:.4f}' for t in ladder)}; the headline "
        "is the highest every cell reaches. Steps to target: the best trial's crossing "
        "(interpolated in log step), then the bootstrap over trials: its upper end bounds the "
        f"median best-of-n at {(1 + preset.level) / 2:.0%}; its lower end is the observed best "
        "(a resampled minimum never goes below it). Sub-study: median best of "
        f"{preset.substudy_size} trials over every such subset, with a {level}+ order-statistic "
        "interval. '> budget': censored.",
        "",
        "| optimizer | batch | budget | trials | diverged | stopped early | steps to target "
        f"[{level} bootstrap] | sub-study median [interval] | seeds | at range edge | "
        "best acc | B_simple | trial s (compile s) |",
        "|---|---:|---:|---:|---:|---:|---|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        sub = r["substudy"]
        seeds = ", ".join(_steps(s) if s else "never" for s in r["seeds"]) or "-"
        edge = ", ".join(f"{k} ({v})" for k, v in r["edge"].items()) or "-"
        acc = "-" if r["best_accuracy"] is None else f"{r['best_accuracy']:.4f}"
        lines.append(
            f"| {r['optimizer']} | {r['batch']:,} | {r['budget']:,} | {len(r['trials'])} | "
            f"{r['diverged']} | {r['stopped_early']} | "
            f"{_interval(r['steps_to_target'], r['budget'])} | "
            f"{_interval(sub, r['budget'])} | {seeds} | {edge} | {acc} | "
            f"{_steps(r['gradient_noise_scale'])} | "
            f"{r['seconds']:.0f} ({r['compile_seconds']:.0f}) |"
        )
    return "\n".join(lines + ["", *fits_table(optimizers)]) + "\n"


def fits_table(optimizers: dict) -> list[str]:
    """Per optimizer: the fitted critical batch with its interval, S_min and B_simple."""
    lines = [
        "| optimizer | critical batch B_crit [interval] | S_min | B_simple (cells' median) |",
        "|---|---|---:|---:|",
    ]
    for name, fit in optimizers.items():
        noise = _steps(fit.get("predicted_critical_batch"))
        crit = fit["critical_batch"]
        if crit is None:
            lines.append(f"| {name} | not fitted: {fit['note']} | - | {noise} |")
            continue
        low = _steps(crit["low"]) if crit["low"] else "unbounded"
        high = _steps(crit["high"]) if crit["high"] else "unbounded"
        lines.append(
            f"| {name} | {_steps(crit['value'])} [{low}, {high}]"
            f"{' (' + fit['beyond'] + ' the batches)' if fit['beyond'] else ''} | "
            f"{fit['s_min']:,.0f} | {noise} |"
        )
    return lines


def plot(rows: list, optimizers: dict, target, path: str) -> None:
    """Steps and examples to target against batch size (log-log), with intervals, budgets,
    censored cells (triangles at the budget), perfect scaling and the S(B) fits."""
    plt = plotting.pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, optimizer in enumerate(dict.fromkeys(r["optimizer"] for r in rows)):
        color = f"C{i}"
        mine = [r for r in rows if r["optimizer"] == optimizer]
        batches = [r["batch"] for r in mine]
        left.plot(batches, [r["budget"] for r in mine], color=color, ls=":", lw=1)
        hit = [r for r in mine if r["steps_to_target"] and r["steps_to_target"]["value"]]
        for ax, scale in ((left, lambda r: 1), (right, lambda r: r["batch"])):
            ys = [r["steps_to_target"]["value"] * scale(r) for r in hit]
            lows = [
                (r["steps_to_target"]["value"] - (r["steps_to_target"]["low"] or 0)) * scale(r)
                for r in hit
            ]
            highs = [
                ((r["steps_to_target"]["high"] or r["budget"]) - r["steps_to_target"]["value"])
                * scale(r)
                for r in hit
            ]
            ax.errorbar(
                [r["batch"] for r in hit],
                ys,
                yerr=[lows, highs],
                color=color,
                marker="o",
                capsize=3,
                label=optimizer,
            )
            censored = [r for r in mine if r not in hit]
            ax.scatter(
                [r["batch"] for r in censored],
                [r["budget"] * scale(r) for r in censored],
                marker="^",
                color=color,
                s=50,
            )
        crit = optimizers.get(optimizer, {}).get("critical_batch")
        if crit:
            s_min = optimizers[optimizer]["s_min"]
            grid = [batches[0] * (batches[-1] / batches[0]) ** (j / 40) for j in range(41)]
            left.plot(grid, [s_min * (1 + crit["value"] / b) for b in grid], color=color, lw=0.8)
        if hit:  # Perfect scaling from the smallest batch that reached the target.
            b0, s0 = hit[0]["batch"], hit[0]["steps_to_target"]["value"]
            left.plot(batches, [s0 * b0 / b for b in batches], color=color, ls="--", lw=0.8)
    for ax, label in ((left, "steps"), (right, "examples")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("global batch size")
        ax.set_ylabel(f"{label} to held-out MLM accuracy {target:.4f}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    left.set_title("dotted: budget, dashed: perfect scaling, thin: S(B) fit", fontsize=8)
    right.set_title("flat = perfect scaling; triangles: censored (> budget)", fontsize=8)
    if target is None:
        fig.suptitle("no target was reached by every cell")
    plotting.save_png(fig, path)


def finite_or_none(value):
    return value if value is not None and math.isfinite(value) else None


# The README's copy of a committed study, replaced by `python -m bert.reality_check
# --update_readme=README.md --output_dir=...` (never typed by hand).
README_BEGIN = "<!-- reality-check: by `python -m bert.reality_check --update_readme` -->"
README_END = "<!-- /reality-check -->"


def readme_section(result: dict) -> str:
    """The study in brief: the run line, steps to the headline target per cell, the fits."""
    preset, target = result["preset"], result["headline_target"]
    level = f"{preset['level']:.0%}"
    lines = [
        run_line(result["run"]),
        "",
        f"Headline target: held-out masked-LM accuracy {target:.4f} (the highest of the ladder "
        f"{', '.join(f'{t:.4f}' for t in result['targets'])} that every cell reaches)."
        if target
        else "No target is reached by every cell.",
        "",
        f"| optimizer | batch | budget | steps to target [{level} bootstrap] | sub-study median "
        "| seeds | best acc | B_simple |",
        "|---|---:|---:|---|---|---|---:|---:|",
    ]
    for r in result["cells"]:
        seeds = ", ".join(_steps(s) if s else "never" for s in r["seeds"]) or "-"
        acc = "-" if r["best_accuracy"] is None else f"{r['best_accuracy']:.4f}"
        lines.append(
            f"| {r['optimizer']} | {r['batch']:,} | {r['budget']:,} | "
            f"{_interval(r['steps_to_target'], r['budget'])} | "
            f"{_interval(r['substudy'], r['budget'])} | {seeds} | {acc} | "
            f"{_steps(r['gradient_noise_scale'])} |"
        )
    return "\n".join(lines + ["", *fits_table(result["optimizers"])])


def update_readme(study_dir: str, readme_file: str) -> None:
    """Puts the study of `study_dir` (its reality_check.json) between the README's markers."""
    result = config_files.read_json(os.path.join(study_dir, "reality_check.json"))
    with open(readme_file, encoding="utf-8") as f:
        readme = f.read()
    if README_BEGIN not in readme or README_END not in readme:
        raise ValueError(f"{readme_file}: no {README_BEGIN!r} ... {README_END!r} markers")
    start, end = readme.index(README_BEGIN), readme.index(README_END) + len(README_END)
    section = f"{README_BEGIN}\n{readme_section(result)}\n{README_END}"
    fileio.write_atomic(readme_file, readme[:start] + section + readme[end:])
