"""What a search's trials show: learning curves, one row per trial, and the results files.

`write_report` writes results.{json,csv,md}, results.png (the score against each
hyperparameter) and best_experiment.json (the experiment with the searched phase replaced by
the best trial's) in the study's directory.
"""

import csv
import io
import json
import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import tensorflow as tf

from data import fileio, plotting

if TYPE_CHECKING:
    from bert.studies.search import Study

METRIC = "mlm_accuracy"
# What each trial cost and how it ended (user attrs set by `search.run_worker`): seconds of
# its calls that traced and compiled, its wall seconds, updates, updates per second of
# training (compilation excluded), and whether it stopped at --stop_at_accuracy.
TIMINGS = ("compile_seconds", "seconds", "steps", "steps_per_second", "stopped_early")
# What a trial measured besides its score: B_simple over the trial (None if not measured).
MEASURES = (*TIMINGS, "gradient_noise_scale")


def learning_curve(directory: str) -> list:
    """[(step, held-out masked-LM accuracy)] of a trial's evaluations, in step order."""
    path = os.path.join(directory, "eval_log.jsonl")
    if not tf.io.gfile.exists(path):
        return []
    by_step = {}
    with tf.io.gfile.GFile(path) as f:
        for line in f:
            if line.strip():
                entry = json.loads(line)
                by_step[entry["step"]] = entry[METRIC]
    return sorted(by_step.items())


def steps_to_target(curve: list, target: float) -> int | None:
    """The first evaluated step whose accuracy reaches `target` (None if never)."""
    return next((step for step, value in curve if value >= target), None)


def trial_rows(study: "Study", optuna_study) -> list:
    """One row per point: its final state, score, learning curve and hyperparameters."""
    import optuna

    latest = {}
    for trial in optuna_study.get_trials(deepcopy=False):
        point = trial.user_attrs.get("point")
        if (
            point is not None
            and trial.state != optuna.trial.TrialState.WAITING
            and (point not in latest or trial.number > latest[point].number)
        ):
            latest[point] = trial
    target = study.search.target_accuracy
    rows = []
    for point in range(len(study.points)):
        trial = latest.get(point)
        state = "not run" if trial is None else trial.state.name.lower()
        if trial is not None and "diverged" in trial.user_attrs:
            state = "diverged"
        curve = trial.user_attrs.get("curve", []) if trial else []
        score = trial.value if trial is not None and trial.value is not None else math.nan
        attrs = trial.user_attrs if trial else {}
        rows.append(
            {
                "point": point,
                "state": state,
                METRIC: score,
                "steps_to_target": steps_to_target(curve, target) if target else None,
                **{name: attrs.get(name) for name in MEASURES},
                "curve": curve,
                **study.points[point],
            }
        )
    return rows


def markdown_table(columns: list, rows: list, format_cell: Callable) -> str:
    """A markdown table of the `columns` of dict `rows`."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(format_cell(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def _format(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def write_report(study: "Study", optuna_study) -> dict:
    """results.{json,csv,md}, results.png and best_experiment.json in the study's directory."""
    rows = trial_rows(study, optuna_study)
    names = [p.name for p in study.space.parameters]
    finished = [r for r in rows if r["state"] == "complete"]
    best = max(finished, key=lambda r: r[METRIC]) if finished else None
    out = study.directory
    summary = {
        "search_space": study.space.path,
        "experiment": study.experiment_name,
        "phase": study.phase_number,
        "num_trials": len(rows),
        "complete": len(finished),
        "diverged": sum(r["state"] == "diverged" for r in rows),
        "stopped_early": sum(bool(r["stopped_early"]) for r in rows),
        "compile_seconds": sum(r["compile_seconds"] or 0.0 for r in rows),
        "trial_seconds": sum(r["seconds"] or 0.0 for r in rows),
        "target_accuracy": study.search.target_accuracy or None,
        "best_point": best["point"] if best else None,
        f"best_{METRIC}": best[METRIC] if best else None,
        "trials": rows,
    }
    fileio.write_json_atomic(os.path.join(out, "results.json"), summary)
    columns = ["point", "state", METRIC, "steps_to_target", *TIMINGS, *names]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    writer.writerows([[r[c] for c in columns] for r in rows])
    fileio.write_atomic(os.path.join(out, "results.csv"), buffer.getvalue())
    ordered = sorted(rows, key=lambda r: -r[METRIC] if not math.isnan(r[METRIC]) else math.inf)
    lines = [
        f"# Search: {os.path.basename(study.space.path)} over phase {study.phase_number} of "
        f"{study.experiment_name}",
        "",
        f"{len(finished)} of {len(rows)} trials complete, {summary['diverged']} diverged"
        + (
            f", {summary['stopped_early']} stopped early at held-out {METRIC} "
            f"{study.search.stop_at_accuracy}"
            if study.search.stop_at_accuracy
            else ""
        )
        + f"; score: held-out {METRIC} on {study.search.heldout_examples} examples. Trials "
        f"took {summary['trial_seconds']:.0f} s, {summary['compile_seconds']:.0f} s of it "
        "compiling. Best first.",
        "",
        markdown_table(columns, ordered, _format),
    ]
    fileio.write_atomic(os.path.join(out, "results.md"), "\n".join(lines) + "\n")
    plot_trials(study, rows, os.path.join(out, "results.png"))
    if best:
        note = f"best of {len(finished)} trials, held-out {METRIC} {best[METRIC]:.4f}"
        fileio.write_json_atomic(
            os.path.join(out, "best_experiment.json"),
            study.trial_experiment(best["point"], note),
        )
    return summary


def plot_trials(study: "Study", rows: list, path: str) -> None:
    """Held-out accuracy against each searched hyperparameter (diverged trials at the bottom)."""
    plt = plotting.pyplot()
    parameters = study.space.parameters
    fig, axes = plt.subplots(1, len(parameters), figsize=(3.2 * len(parameters), 3), sharey=True)
    axes = [axes] if len(parameters) == 1 else list(axes)
    done = [r for r in rows if not math.isnan(r[METRIC])]
    failed = [r for r in rows if r["state"] == "diverged"]
    floor = min((r[METRIC] for r in done), default=0.0)
    for ax, parameter in zip(axes, parameters):
        ax.scatter([r[parameter.name] for r in done], [r[METRIC] for r in done], s=18)
        if failed:
            ax.scatter(
                [r[parameter.name] for r in failed],
                [floor] * len(failed),
                marker="x",
                color="red",
                label="diverged",
            )
        if parameter.log:
            ax.set_xscale("log")
        ax.set_xlabel(parameter.name)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"held-out {METRIC}")
    if failed:
        axes[0].legend(fontsize=7)
    fig.suptitle(f"{os.path.basename(study.space.path)}: {len(rows)} quasi-random trials")
    plotting.save_png(fig, path)
