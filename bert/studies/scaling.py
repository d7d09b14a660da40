"""The batch-size scaling study: steps to a target for LAMB and AdamW at each batch size.

For each batch size and each optimizer it runs one quasi-random search (a cell: the same
sequence of points for every batch of one optimizer), each trial evaluated on a log-spaced
grid of steps. Every batch gets a STEP budget, not a share of a fixed example budget: a fixed
epoch budget "is equivalent to demanding perfect scaling" (Nado et al.,
../shared/papers/001_ed7a99c70c109f5e.txt:460-462), so larger batches get more examples than
perfect scaling would need. After the study the targets are read from the stored curves, and
each cell is measured by the steps its best trial needed to reach them (Shallue et al. 2018),
with intervals, censoring and a fit of S(B) = S_min (1 + B_crit / B) per optimizer
(McCandlish et al. 2018); see `bert.studies.scaling_report` and `bert.studies.analysis`.

A preset is a JSON file in configs/reality_check/ (`Preset`); options override its fields.
Outputs in output_dir: reality_check.{json,md,png} and one search directory per cell
(<optimizer>_b<batch>/, with seeds.json for the repeated seeds of the best point).
"""

import dataclasses
import os
import subprocess
import sys
import time

import tensorflow as tf
from absl import app, logging

from bert.studies import analysis, scaling_report
from bert.studies import search as search_lib
from bert.tasks.pretraining_phase import PretrainingOptions
from bert.training import options as opts
from bert.training.options import option
from data import cli, config_files, corpus_records, fileio

PRESET_DIR = os.path.join(config_files.CONFIG_DIR, "reality_check")


@dataclasses.dataclass
class Preset:
    """A preset file: the cells of the study, their budgets, and how trials are scored."""

    search_spaces: dict[str, str]  # optimizer -> search space
    experiments: dict[str, str]  # optimizer -> seed experiment (its `phase` is searched)
    phase: int
    max_seq_length: int  # of the records (generated ones too) and the runs
    max_predictions_per_seq: int
    batch_sizes: list[int]
    # Step budget of batch B: reference_steps * (reference_batch / B) ** budget_exponent
    # (1: fixed epochs, perfect scaling demanded; 0: the same steps for every batch), unless
    # `step_budgets` names B's budget (e.g. a paper's).
    reference_batch: int
    reference_steps: int
    budget_exponent: float
    warmup_fraction: float  # of each run's steps (Nado et al. scale warmup with the budget)
    num_trials: int
    heldout_examples: int
    eval_batch_size: int  # divides heldout_examples (and, on a pod, by the replica count)
    evaluations: int  # log-spaced evaluations per run, the budget included
    data: str  # "embedded": generate the corpus, vocabulary and records; else input_file
    step_budgets: dict[str, int] = dataclasses.field(default_factory=dict)  # "batch" -> steps
    # Trials per optimizer where the spaces differ in size (default: num_trials for each).
    trials_by_optimizer: dict[str, int] = dataclasses.field(default_factory=dict)
    # Micro-batches per update. Above 1, every step has two batch sizes (a micro-batch's
    # gradient and the update's), from which the gradient noise scale is measured.
    gradient_accumulation_steps: int = 1
    # Processes sharing the study on one machine, each with cores / workers threads (on 2
    # cores, benchmarks/trial_cost.md compares 2 workers x 1 thread with 1 x 2).
    workers: int = 1
    stop_at_accuracy: float = 0.0  # a trial stops once held-out accuracy reaches it (0: never)
    target_accuracy: float = 0.0  # the headline target (0: the highest every cell reaches)
    ladder: int = 8  # targets read from the curves after the study
    ladder_spacing: str = "linear"  # or "halving" (analysis.target_ladder)
    seed_repeats: int = 2  # more seeds of the best point in each optimizer's end cells
    substudy_size: int = 4  # trials per AlgoPerf-style sub-study
    level: float = 0.9  # of the intervals
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
        unknown = sorted(set(self.trials_by_optimizer) - set(self.search_spaces))
        if unknown:
            raise ValueError(f"{where}: field 'trials_by_optimizer' names unknown {unknown}")
        if self.evaluations < 2:
            raise ValueError(f"{where}: field 'evaluations' must be >= 2")

    def trials(self, optimizer: str) -> int:
        return self.trials_by_optimizer.get(optimizer, self.num_trials)


def load_preset(name_or_path: str) -> Preset:
    """A preset: a path, or a name in configs/reality_check/."""
    return config_files.load(Preset, name_or_path, "reality_check", "preset")


@dataclasses.dataclass
class RealityCheckOptions(opts.RuntimeOptions):
    """The flags of `python -m bert.reality_check` (empty/0 values keep the preset's)."""

    preset: str = option("cpu", "A preset in configs/reality_check/ or a path.")
    output_dir: str = option("out/reality_check", "Where the study and its cells go.")
    input_file: str | None = option(None, "Pretraining TFRecords (default: the preset's data).")
    data_dir: str | None = option(
        None,
        "A data folder with text/*.txt (e.g. ../shared/data): real text instead of the "
        "embedded corpus (a vocabulary and records are made from it once).",
    )
    bert_config_file: str | None = option(None, "Model config overriding the experiments'.")
    batch_sizes: str = option("", "Comma-separated global batch sizes.")
    optimizers: str = option("", "Comma-separated optimizers (keys of the preset's spaces).")
    num_trials: int = option(0, "Quasi-random trials per (optimizer, batch) cell.")
    reference_steps: int = option(0, "Step budget at the preset's reference batch.")
    target_accuracy: float = option(0.0, "Headline held-out masked-LM accuracy target.")
    stop_at_accuracy: float = option(0.0, "A trial stops once held-out accuracy reaches this.")
    heldout_examples: int = option(0, "Held-out training examples that score the trials.")
    storage: str | None = option(None, "Optuna storage URL shared by several processes.")
    workers: int = option(
        0,
        "Worker processes this command starts on this machine, each with cores / workers "
        "threads, sharing every cell's trials (0: the preset's).",
    )
    worker_index: int = option(
        -1, "Set by --workers for the processes it starts (-1: the command a user runs)."
    )
    steps_per_loop: int = option(50, "Updates per host call of the compiled loop.")
    dry_run: bool = option(False, "Print the plan (cells, budgets, cost) and exit.")
    update_readme: str = option(
        "",
        "Put the finished study in output_dir into this README (between its reality-check "
        "markers) and exit.",
    )


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
    if options.num_trials:
        changes["num_trials"], changes["trials_by_optimizer"] = options.num_trials, {}
    for field in ("reference_steps", "target_accuracy", "stop_at_accuracy", "heldout_examples"):
        if getattr(options, field):
            changes[field] = getattr(options, field)
    return dataclasses.replace(preset, **changes)


@dataclasses.dataclass
class CellPlan:
    """The run every trial of one (optimizer, batch) cell makes."""

    optimizer: str
    batch: int
    steps: int  # the budget
    warmup: int
    eval_steps: list[int]
    trials: int

    @property
    def name(self) -> str:
        return f"{self.optimizer}_b{self.batch}"


def cell_steps(preset: Preset, batch: int) -> tuple:
    """(step budget, warmup steps, evaluation steps) of a run at global batch `batch`."""
    if str(batch) in preset.step_budgets:
        steps = preset.step_budgets[str(batch)]
    else:
        scale = (preset.reference_batch / batch) ** preset.budget_exponent
        steps = max(2, round(preset.reference_steps * scale))
    warmup = min(steps - 1, max(1, round(preset.warmup_fraction * steps)))
    evals = analysis.log_spaced_steps(steps, preset.evaluations, first=min(steps, 8))
    return steps, warmup, evals


def plan(preset: Preset) -> list[CellPlan]:
    """Every cell of the study, batch by batch."""
    cells = []
    for batch in preset.batch_sizes:
        steps, warmup, evals = cell_steps(preset, batch)
        for optimizer in preset.search_spaces:
            cells.append(CellPlan(optimizer, batch, steps, warmup, evals, preset.trials(optimizer)))
    return cells


def plan_text(preset: Preset, cells: list[CellPlan]) -> str:
    """The plan with its cost in steps and examples (the dry run's output)."""
    lines = ["cell | trials | budget steps | warmup | evaluations | examples per trial"]
    total_steps = total_examples = 0
    for c in cells:
        lines.append(
            f"{c.name} | {c.trials} | {c.steps:,} | {c.warmup:,} | {len(c.eval_steps)} | "
            f"{c.steps * c.batch:,}"
        )
        total_steps += c.trials * c.steps
        total_examples += c.trials * c.steps * c.batch
    repeats = preset.seed_repeats * 2 * len(preset.search_spaces)
    lines.append(
        f"total (at most; trials may stop early): {total_steps:,} steps, "
        f"{total_examples:,} examples, plus {repeats} seed repeats of best points"
    )
    return "\n".join(lines)


def study_data(options: RealityCheckOptions, preset: Preset) -> tuple:
    """(records glob, bert_config file) the cells train on."""
    if options.input_file:
        return options.input_file, options.bert_config_file
    if options.dry_run or (preset.data != "embedded" and not options.data_dir):
        return None, options.bert_config_file
    from bert.modeling.config import BertConfig

    out = os.path.join(options.output_dir, "data")
    seq, pred = preset.max_seq_length, preset.max_predictions_per_seq
    if options.data_dir:  # Real text: learn a vocabulary from it, then write the records.
        text_dir = os.path.join(options.data_dir, "text")
        text_files = sorted(
            os.path.join(text_dir, f) for f in os.listdir(text_dir) if f.endswith(".txt")
        )
        if not text_files:
            raise app.UsageError(f"--data_dir={options.data_dir}: no text/*.txt files")
        vocab_file = corpus_records.learn_vocab(
            text_files, out, vocab_size=corpus_records.DEFAULT_VOCAB_SIZE
        )
        phase = {"name": "study", "max_seq_length": seq, "max_predictions_per_seq": pred}
        records = corpus_records.create_records(
            text_files, vocab_file, out, [phase], dupe_factor=5, seed=options.seed
        )["study"]
    else:
        records, vocab_file = corpus_records.embedded_records(out, options.seed, seq, pred)
    config_file = os.path.join(out, "bert_config_tiny.json")
    if not os.path.exists(config_file):
        vocab_size = corpus_records.vocab_size_of(vocab_file)
        BertConfig.preset("tiny", vocab_size=vocab_size).to_json_file(config_file)
    return records, options.bert_config_file or config_file


def cell_options(
    options: RealityCheckOptions, preset: Preset, cell: CellPlan, data: tuple
) -> tuple:
    """(PretrainingOptions, SearchOptions) of the search of one cell."""
    runtime = {f.name: getattr(options, f.name) for f in dataclasses.fields(opts.RuntimeOptions)}
    pretraining = PretrainingOptions(
        **runtime,
        model_dir=os.path.join(options.output_dir, cell.name),
        input_file=data[0],
        bert_config_file=data[1],
        train_batch_size=cell.batch,
        max_seq_length=preset.max_seq_length,
        max_predictions_per_seq=preset.max_predictions_per_seq,
        num_train_steps=cell.steps,
        num_warmup_steps=cell.warmup,
        gradient_accumulation_steps=preset.gradient_accumulation_steps,
        steps_per_loop=options.steps_per_loop,
        keep_checkpoint_max=1,
    )
    search = search_lib.SearchOptions(
        search_space=preset.search_spaces[cell.optimizer],
        experiment=preset.experiments[cell.optimizer],
        phase=preset.phase,
        num_trials=cell.trials,
        dry_run=options.dry_run,
        storage=options.storage,
        study_name=cell.name,
        heldout_examples=preset.heldout_examples,
        eval_batch_size=preset.eval_batch_size,
        eval_steps=",".join(str(s) for s in cell.eval_steps),
        stop_at_accuracy=preset.stop_at_accuracy,
        save_checkpoints_steps=max(cell.eval_steps[0], cell.steps // 2),
    )
    return pretraining, search


def run(options: RealityCheckOptions, command: str = "") -> list | None:
    """Runs (or joins) every cell and writes the comparison (its run line names `command`);
    returns its cell rows."""
    preset = resolve(options)
    cells = plan(preset)
    if options.dry_run:
        print(plan_text(preset, cells))
        return None
    workers = options.workers or preset.workers
    if options.worker_index >= 0:  # One of the processes --workers started.
        work(options, preset, cells, study_data(options, preset), options.worker_index, workers)
        return None
    study_clock(options.output_dir)  # the first start, kept by reruns
    data = study_data(options, preset)
    if workers > 1:
        start_workers(options, data, workers)
    else:
        work(options, preset, cells, data, 0, 1)
    clock = study_clock(options.output_dir, finished=True)
    # Every trial and seed repeat has run: collect them (nothing is rerun) and report.
    summaries, seeds = {}, {}
    for cell in cells:
        summaries[cell.name] = search_lib.run(*cell_options(options, preset, cell, data))
    for cell in seeded_cells(preset, cells):
        pretraining, search = cell_options(options, preset, cell, data)
        seeds[cell.name] = repeat_best_point(
            pretraining, search, summaries[cell.name], preset.seed_repeats
        )
    wall = clock["finished"] - clock["started"]
    return scaling_report.write(
        options.output_dir, options.preset, preset, cells, summaries, seeds, wall, workers, command
    )


def study_clock(output_dir: str, finished: bool = False) -> dict:
    """When the study was first started and first finished (study_clock.json: a resumed or
    repeated command keeps them, so the report's wall time is the study's)."""
    path = os.path.join(output_dir, "study_clock.json")
    clock = config_files.read_json(path) if tf.io.gfile.exists(path) else {}
    stamp = "finished" if finished else "started"
    if stamp not in clock:
        clock[stamp] = time.time()
        fileio.write_json_atomic(path, clock)
    return clock


def seeded_cells(preset: Preset, cells: list[CellPlan]) -> list[CellPlan]:
    """The cells whose best point is run again with other seeds: each optimizer's end cells."""
    chosen = []
    for optimizer in preset.search_spaces:
        mine = [c for c in cells if c.optimizer == optimizer]
        chosen += [mine[0]] if len(mine) == 1 else [mine[0], mine[-1]]
    return chosen


def work(
    options: RealityCheckOptions,
    preset: Preset,
    cells: list[CellPlan],
    data: tuple,
    index: int,
    count: int,
) -> None:
    """One worker's share: trials of every cell (taken from the shared study), then seed repeats.

    A worker that finds no trial of a cell waiting goes on to the next cell instead of waiting
    for the others' last trials; seed repeat j is worker j % count's, which first waits for its
    cell's search to finish (the best point must be known).
    """
    for cell in cells:
        logging.info("Cell %s: %d trials of %d steps", cell.name, cell.trials, cell.steps)
        search_lib.run(*cell_options(options, preset, cell, data), wait=False)
    for j, cell in enumerate(seeded_cells(preset, cells)):
        if j % count == index:
            pretraining, search = cell_options(options, preset, cell, data)
            summary = search_lib.run(pretraining, search)
            repeat_best_point(pretraining, search, summary, preset.seed_repeats)


def start_workers(options: RealityCheckOptions, data: tuple, workers: int) -> None:
    """Runs `workers` processes of this study on this machine, each with cores / workers
    threads, on the data prepared once; a signal to this process stops them (their trials
    go back to the queue) and is raised here."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    base = dataclasses.replace(
        options, workers=workers, threads=threads, input_file=data[0], bert_config_file=data[1]
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "bert.reality_check"]
            + cli.to_argv(dataclasses.replace(base, worker_index=i))
        )
        for i in range(workers)
    ]
    try:
        codes = [p.wait() for p in processes]
    except BaseException:
        for p in processes:
            p.terminate()
        for p in processes:
            p.wait()
        raise
    failed = [(i, code) for i, code in enumerate(codes) if code]
    if failed:
        raise RuntimeError(
            f"reality_check workers (index, exit code) {failed} failed; rerun the same command "
            "to resume (finished trials are kept)"
        )


def repeat_best_point(
    pretraining: PretrainingOptions, search: search_lib.SearchOptions, summary: dict, repeats: int
) -> list:
    """Learning curves of the cell's best point run again with `repeats` other seeds.

    Kept in the cell's seeds.json, so a rerun (or another worker) reuses them; seed noise is
    then shown beside the spread over the search's trials.
    """
    path = os.path.join(pretraining.model_dir, "seeds.json")
    if summary.get("best_point") is None or repeats < 1:
        return []
    if os.path.exists(path):
        return config_files.read_json(path)["curves"]
    curves = search_lib.rerun_point(
        pretraining,
        search,
        summary["best_point"],
        [pretraining.seed + i + 1 for i in range(repeats)],
    )
    fileio.write_json_atomic(path, {"point": summary["best_point"], "curves": curves})
    return curves
