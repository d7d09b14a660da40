"""The batch-size scaling study: LAMB vs AdamW, each tuned alike at every batch size.

For each batch size and each optimizer it runs one quasi-random search (a cell: the same
number of trials and the same sequence for every cell) at a fixed budget of training
examples, so a batch twice as large gets half the steps, as in both papers. It then reports
per (optimizer, batch): the best held-out masked-LM accuracy, and the fewest steps any trial
needed to reach a target accuracy (from each trial's learning curve).

A preset is a JSON file in configs/reality_check/ (`Preset`); options override its fields.
Outputs in output_dir: reality_check.{json,md,png} and one search directory per cell
(<optimizer>_b<batch>/).
"""

import dataclasses
import math
import os

from absl import app, logging

from bert.studies import report
from bert.studies import search as search_lib
from bert.tasks.pretraining_phase import PretrainingOptions
from bert.training import options as opts
from bert.training.options import option
from data import config_files, corpus_records, fileio, plotting

PRESET_DIR = os.path.join(config_files.CONFIG_DIR, "reality_check")


@dataclasses.dataclass
class Preset:
    """A preset file: the cells of the study and how each run trains and is scored."""

    search_spaces: dict[str, str]  # optimizer -> search space
    experiments: dict[str, str]  # optimizer -> seed experiment (its `phase` is searched)
    phase: int
    max_seq_length: int  # of the records (generated ones too) and the runs
    max_predictions_per_seq: int
    batch_sizes: list[int]
    train_examples: int  # the budget: examples each run trains on, whatever its batch
    warmup_fraction: float  # of each run's steps
    num_trials: int
    heldout_examples: int
    eval_batch_size: int  # divides heldout_examples (and, on a pod, by the replica count)
    evaluations: int  # evaluations per run (the learning curve), besides the final one
    target_accuracy: float
    data: str  # "embedded": generate the corpus, vocabulary and records; else input_file
    description: str = ""
    sources: list[str] = dataclasses.field(default_factory=list)

    def validate(self, where: str) -> None:
        if self.heldout_examples % self.eval_batch_size:
            raise ValueError(
                f"{where}: eval_batch_size {self.eval_batch_size} must divide heldout_examples "
                f"{self.heldout_examples} (every held-out example is scored)"
            )
        if set(self.search_spaces) != set(self.experiments):
            raise ValueError(
                f"{where}: 'search_spaces' and 'experiments' must name the same optimizers"
            )


def load_preset(name_or_path: str) -> Preset:
    """A preset: a path, or a name in configs/reality_check/."""
    return config_files.load(Preset, name_or_path, "reality_check", "preset")


@dataclasses.dataclass
class RealityCheckOptions(opts.RuntimeOptions):
    """The flags of `python -m bert.reality_check` (empty/0 values keep the preset's)."""

    preset: str = option("cpu", "A preset in configs/reality_check/ or a path.")
    output_dir: str = option("out/reality_check", "Where the study and its cells go.")
    input_file: str | None = option(None, "Pretraining TFRecords (default: the preset's data).")
    bert_config_file: str | None = option(None, "Model config overriding the experiments'.")
    batch_sizes: str = option("", "Comma-separated global batch sizes.")
    optimizers: str = option("", "Comma-separated optimizers (keys of the preset's spaces).")
    num_trials: int = option(0, "Quasi-random trials per (optimizer, batch) cell.")
    train_examples: int = option(0, "Budget: training examples per run.")
    target_accuracy: float = option(0.0, "Held-out masked-LM accuracy for steps-to-target.")
    heldout_examples: int = option(0, "Held-out training examples that score the trials.")
    storage: str | None = option(None, "Optuna storage URL shared by several processes.")
    steps_per_loop: int = option(50, "Updates per host call of the compiled loop.")
    dry_run: bool = option(False, "Print every cell's trials and exit.")


def resolve(options: RealityCheckOptions) -> Preset:
    """The preset with the options given on the command line applied."""
    preset = load_preset(options.preset)
    changes = {}
    if options.batch_sizes:
        changes["batch_sizes"] = [int(b) for b in options.batch_sizes.split(",")]
    if options.optimizers:
        chosen = options.optimizers.split(",")
        unknown = sorted(set(chosen) - set(preset.search_spaces))
        if unknown:
            raise app.UsageError(f"--optimizers: {unknown} not in the preset's search_spaces")
        changes["search_spaces"] = {k: preset.search_spaces[k] for k in chosen}
    for field in ("num_trials", "train_examples", "target_accuracy", "heldout_examples"):
        if getattr(options, field):
            changes[field] = getattr(options, field)
    return dataclasses.replace(preset, **changes)


def cell_steps(preset: Preset, batch: int) -> tuple:
    """(train steps, warmup steps, evaluate every) of a run at global batch `batch`."""
    steps = max(2, round(preset.train_examples / batch))
    warmup = min(steps - 1, max(1, round(preset.warmup_fraction * steps)))
    return steps, warmup, max(1, steps // preset.evaluations)


def embedded_data(out: str, seed: int, max_seq_length: int, max_predictions_per_seq: int) -> tuple:
    """The embedded corpus as records with a learned vocabulary: (glob, bert_config file)."""
    from bert.modeling.config import BertConfig

    data_dir = os.path.join(out, "data")
    records, vocab_file = corpus_records.embedded_records(
        data_dir, seed, max_seq_length, max_predictions_per_seq
    )
    config_file = os.path.join(data_dir, "bert_config_tiny.json")
    if not os.path.exists(config_file):
        vocab_size = corpus_records.vocab_size_of(vocab_file)
        BertConfig.preset("tiny", vocab_size=vocab_size).to_json_file(config_file)
    return records, config_file


def cell_options(
    options: RealityCheckOptions, preset: Preset, optimizer: str, batch: int, data: tuple
) -> tuple:
    """(PretrainingOptions, SearchOptions) of the search of one (optimizer, batch) cell."""
    steps, warmup, every = cell_steps(preset, batch)
    runtime = {f.name: getattr(options, f.name) for f in dataclasses.fields(opts.RuntimeOptions)}
    name = f"{optimizer}_b{batch}"
    pretraining = PretrainingOptions(
        **runtime,
        model_dir=os.path.join(options.output_dir, name),
        input_file=data[0],
        bert_config_file=data[1],
        train_batch_size=batch,
        max_seq_length=preset.max_seq_length,
        max_predictions_per_seq=preset.max_predictions_per_seq,
        num_train_steps=steps,
        num_warmup_steps=warmup,
        eval_every_steps=every,
        steps_per_loop=options.steps_per_loop,
        keep_checkpoint_max=1,
    )
    search = search_lib.SearchOptions(
        search_space=preset.search_spaces[optimizer],
        experiment=preset.experiments[optimizer],
        phase=preset.phase,
        num_trials=preset.num_trials,
        dry_run=options.dry_run,
        storage=options.storage,
        study_name=name,
        heldout_examples=preset.heldout_examples,
        eval_batch_size=preset.eval_batch_size,
        target_accuracy=preset.target_accuracy,
        save_checkpoints_steps=max(every, steps // 2),
    )
    return pretraining, search


def run(options: RealityCheckOptions) -> list | None:
    """Runs (or joins) every cell and writes the comparison; returns its rows."""
    preset = resolve(options)
    if options.input_file:
        data = (options.input_file, options.bert_config_file)
    elif preset.data == "embedded" and not options.dry_run:
        data = embedded_data(
            options.output_dir, options.seed, preset.max_seq_length, preset.max_predictions_per_seq
        )
    else:
        data = (None, options.bert_config_file)
    rows = []
    for batch in preset.batch_sizes:
        for optimizer in preset.search_spaces:
            pretraining, search = cell_options(options, preset, optimizer, batch, data)
            steps = pretraining.num_train_steps
            logging.info("Cell %s at batch %d: %d steps", optimizer, batch, steps)
            summary = search_lib.run(pretraining, search)
            if summary is None:  # dry run
                continue
            rows.append(cell_row(optimizer, batch, pretraining, summary))
    if options.dry_run:
        return None
    write_outputs(options, preset, rows)
    return rows


def cell_row(optimizer: str, batch: int, pretraining: PretrainingOptions, summary: dict) -> dict:
    """One line of the comparison: a cell's search summary reduced to what is compared."""
    complete = [t for t in summary["trials"] if t["state"] == "complete"]
    reached = [t["steps_to_target"] for t in complete if t["steps_to_target"] is not None]
    return {
        "optimizer": optimizer,
        "batch": batch,
        "steps": pretraining.num_train_steps,
        "warmup": pretraining.num_warmup_steps,
        "trials": summary["num_trials"],
        "diverged": summary["diverged"],
        "best_accuracy": summary[f"best_{report.METRIC}"],
        "best_point": summary["best_point"],
        "steps_to_target": min(reached) if reached else None,
        "trials_reaching_target": len(reached),
    }


COLUMNS = [
    "optimizer",
    "batch",
    "steps",
    "warmup",
    "trials",
    "diverged",
    "best_accuracy",
    "steps_to_target",
    "trials_reaching_target",
]


def _format(value) -> str:
    if value is None:
        return "never"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def write_outputs(options: RealityCheckOptions, preset: Preset, rows: list) -> None:
    """reality_check.json (preset and rows), reality_check.md (the table) and the plot."""
    out = options.output_dir
    fileio.write_json_atomic(
        os.path.join(out, "reality_check.json"),
        {"preset": dataclasses.asdict(preset), "rows": rows},
    )
    lines = [
        f"# Reality check ({options.preset}): {preset.num_trials} quasi-random trials per "
        f"cell, {preset.train_examples:,} training examples per run",
        "",
        f"best_accuracy: held-out masked-LM accuracy on {preset.heldout_examples} training "
        f"examples never trained on; steps_to_target: fewest steps any trial needed to reach "
        f"{preset.target_accuracy}.",
        "",
        report.markdown_table(COLUMNS, rows, _format),
    ]
    fileio.write_atomic(os.path.join(out, "reality_check.md"), "\n".join(lines) + "\n")
    plot(rows, preset, os.path.join(out, "reality_check.png"))


def plot(rows: list, preset: Preset, path: str) -> None:
    """Best accuracy and steps-to-target against batch size, one line per optimizer."""
    plt = plotting.pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for optimizer in dict.fromkeys(r["optimizer"] for r in rows):
        mine = [r for r in rows if r["optimizer"] == optimizer]
        accuracy = [
            r["best_accuracy"] if r["best_accuracy"] is not None else math.nan for r in mine
        ]
        left.plot([r["batch"] for r in mine], accuracy, marker="o", label=optimizer)
        hit = [r for r in mine if r["steps_to_target"] is not None]
        right.plot(
            [r["batch"] for r in hit],
            [r["steps_to_target"] for r in hit],
            marker="o",
            label=optimizer,
        )
    left.set_xscale("log", base=2)
    left.set_ylabel("best held-out MLM accuracy")
    right.set_xscale("log", base=2)
    if any(r["steps_to_target"] is not None for r in rows):
        right.set_yscale("log")
    else:
        right.text(0.5, 0.5, "no run reached the target", transform=right.transAxes, ha="center")
    right.set_ylabel(f"steps to reach {preset.target_accuracy}")
    for ax in (left, right):
        ax.set_xlabel("global batch size")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.suptitle(
        f"{preset.num_trials} trials per point, {preset.train_examples:,} examples per run"
    )
    plotting.save_png(fig, path)
