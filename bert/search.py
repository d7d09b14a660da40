r"""Quasi-random hyperparameter search over one pretraining phase (Nado et al.'s protocol).

A search space is a JSON file in configs/search/ (see `SearchSpace`). The trials are the
first `--num_trials` points of a scrambled Halton (or Sobol) sequence over the space
(quasi-random search, Bousquet et al. 2017), drawn by Optuna's QMCSampler. Every trial is an
ordinary `run_pretraining` phase in its own directory, scored by masked-LM accuracy on a
held-out slice of the training data (the first `--heldout_examples` records, never trained on).

  python -m bert.search --search_space=configs/search/nado_adamw.json --num_trials=30 --dry_run
  python -m bert.search --search_space=configs/search/nado_adamw.json --num_trials=30 \
      --experiment=adam_32k --phase=1 --input_file='gs://b/seq128/*' --model_dir=gs://b/search1

Bookkeeping is Optuna's: the study (SQLite file `study.db` in model_dir by default, or any
database URL in `--storage`) holds the trials, which are all enqueued when the study is
created, so that every worker and every resume runs the same points. Workers pointed at one
study take the next waiting trial until none is left. A trial whose worker is killed (SIGTERM
saves a checkpoint; a lost machine stops its heartbeat) goes back into the queue under the
same point, and its rerun resumes from the trial's last checkpoint.

When every trial has finished the study writes results.{json,csv,md}, results.png (metric
vs each hyperparameter) and best_experiment.json (the experiment with the searched phase
replaced by the best trial's; `run_pretraining --experiment=` takes it).
"""

import copy
import csv
import dataclasses
import io
import json
import math
import os
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable

import tensorflow as tf
from absl import app, logging

from bert import run_pretraining
from bert.training import experiment as experiment_lib
from bert.training import options as opts
from bert.training.options import option
from data import fileio

METRIC = "mlm_accuracy"
SEARCH_DIR = os.path.join(experiment_lib.CONFIG_DIR, "search")
TRANSFORMS = {None: lambda x: x, "one_minus": lambda x: 1.0 - x}


# --------------------------------------------------------------------------------------------
# The search space


@dataclasses.dataclass
class Parameter:
    """One searched dimension: a range (`low`, `high`, `log`) or a list of `choices`.

    Its value, after `transform` ("one_minus" for 1 - beta), is written to every phase field
    in `sets` ("optimizer.<name>" or "schedule.<name>").
    """

    name: str
    sets: list
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list | None = None
    transform: str | None = None

    def distribution(self):
        import optuna

        if self.choices is not None:
            return optuna.distributions.CategoricalDistribution(self.choices)
        return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log)

    def field_values(self, value) -> dict:
        """{"optimizer.beta_1": 0.9, ...}: what this parameter's `value` sets."""
        return {path: TRANSFORMS[self.transform](value) for path in self.sets}


@dataclasses.dataclass
class SearchSpace:
    """A search space file: what is searched, what is fixed, and the experiment it applies to.

        {"description": "...", "sources": ["..."],
         "experiment": "adam_32k", "phase": 1,           # defaults for --experiment/--phase
         "fixed": {"optimizer": {"name": "adamw", "epsilon": 1e-11}, "schedule": {...}},
         "parameters": {
           "peak_lr": {"low": 1e-5, "high": 1.0, "log": true, "sets": ["schedule.peak_lr"]},
           "one_minus_beta_1": {"low": 0.01, "high": 0.5, "log": true,
                                "transform": "one_minus", "sets": ["optimizer.beta_1"]},
           "p": {"choices": [1, 2], "sets": ["schedule.warmup_power", "schedule.decay_power"]}}}

    A fixed schedule "kind" different from the experiment's starts a new schedule from the
    shared peak_lr / warmup_steps / total_steps.
    """

    path: str
    parameters: list
    fixed: dict
    experiment: str | None = None
    phase: int = 1
    description: str = ""
    sources: list = dataclasses.field(default_factory=list)
    raw: dict = dataclasses.field(default_factory=dict)

    def distributions(self) -> dict:
        return {p.name: p.distribution() for p in self.parameters}

    def apply(self, phase: experiment_lib.PhaseConfig, values: dict) -> experiment_lib.PhaseConfig:
        """`phase` with the fixed fields and the parameter `values` applied, validated."""
        optimizer = dict(phase.optimizer)
        schedule = experiment_lib.shared_schedule_names(phase.schedule)
        fixed_schedule = dict(self.fixed.get("schedule", {}))
        if fixed_schedule.get("kind", schedule["kind"]) != schedule["kind"]:
            schedule = {k: schedule[k] for k in ("peak_lr", "warmup_steps", "total_steps")}
        optimizer.update(self.fixed.get("optimizer", {}))
        schedule.update(fixed_schedule)
        parts = {"optimizer": optimizer, "schedule": schedule}
        for parameter in self.parameters:
            for path, value in parameter.field_values(values[parameter.name]).items():
                part, key = path.split(".", 1)
                parts[part][key] = value
        phase = dataclasses.replace(phase, optimizer=optimizer, schedule=schedule)
        phase.validate(f"{self.path}: a trial's phase")
        return phase


def _parameter_from_dict(name: str, raw, where: str) -> Parameter:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected an object, got {raw!r}")
    known = {f.name for f in dataclasses.fields(Parameter)} - {"name"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; expected some of {sorted(known)}")
    sets = raw.get("sets")
    if isinstance(sets, str):
        sets = [sets]
    if not sets or not all(
        isinstance(s, str) and s.split(".", 1)[0] in ("optimizer", "schedule") and "." in s
        for s in sets
    ):
        raise ValueError(
            f"{where}: field 'sets' must list 'optimizer.<name>' or 'schedule.<name>', "
            f"got {raw.get('sets')!r}"
        )
    if raw.get("transform") not in TRANSFORMS:
        raise ValueError(
            f"{where}: field 'transform' must be one of {sorted(k for k in TRANSFORMS if k)}, "
            f"got {raw['transform']!r}"
        )
    if "choices" in raw:
        if "low" in raw or "high" in raw:
            raise ValueError(f"{where}: give either 'choices' or 'low'/'high', not both")
        if not isinstance(raw["choices"], list) or not raw["choices"]:
            raise ValueError(f"{where}: field 'choices' must be a non-empty list")
    else:
        for bound in ("low", "high"):
            value = raw.get(bound)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{where}: field '{bound}' must be a number, got {value!r}")
        if not raw["low"] < raw["high"]:
            raise ValueError(f"{where}: 'low' ({raw['low']}) must be below 'high' ({raw['high']})")
        if raw.get("log") and raw["low"] <= 0:
            raise ValueError(f"{where}: a log-scaled range needs 'low' > 0, got {raw['low']}")
    fields = dict(raw, sets=sets)
    for bound in ("low", "high"):
        if bound in fields:
            fields[bound] = float(fields[bound])
    return Parameter(name=name, **fields)


def load_search_space(name_or_path: str) -> SearchSpace:
    """Reads and validates a search space (a path, or a file name in configs/search/)."""
    path = experiment_lib.resolve_config_path(name_or_path, SEARCH_DIR, "search space")
    raw = experiment_lib.read_config_json(path)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object at the top level")
    known = {"description", "sources", "experiment", "phase", "fixed", "parameters"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{path}: unknown field(s) {unknown}; expected some of {sorted(known)}")
    if not isinstance(raw.get("parameters"), dict) or not raw["parameters"]:
        raise ValueError(f"{path}: field 'parameters' must be a non-empty object")
    fixed = raw.get("fixed", {})
    if not isinstance(fixed, dict) or set(fixed) - {"optimizer", "schedule"}:
        raise ValueError(f"{path}: field 'fixed' may hold only 'optimizer' and 'schedule' objects")
    parameters = [
        _parameter_from_dict(name, spec, f"{path}: parameters.{name}")
        for name, spec in raw["parameters"].items()
    ]
    return SearchSpace(
        path=path,
        parameters=parameters,
        fixed=fixed,
        experiment=raw.get("experiment"),
        phase=int(raw.get("phase", 1)),
        description=raw.get("description", ""),
        sources=list(raw.get("sources", [])),
        raw=raw,
    )


def quasi_random_points(
    space: SearchSpace, num_trials: int, seed: int = 0, qmc_type: str = "halton"
) -> list:
    """The first `num_trials` points of the space's scrambled low-discrepancy sequence.

    Drawn with Optuna's QMCSampler in a throwaway in-memory study. The sampler learns the
    space from a first (independently sampled) trial, which is discarded, so the points are
    exactly the sequence's indices 0 .. num_trials - 1.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():  # "QMCSampler is experimental" (it has been since v3.0).
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.QMCSampler(qmc_type=qmc_type, scramble=True, seed=seed)
    study = optuna.create_study(sampler=sampler)
    distributions = space.distributions()
    study.tell(study.ask(distributions), 0.0)  # Teaches the sampler the space.
    points = []
    for _ in range(num_trials):
        trial = study.ask(distributions)
        points.append({p.name: trial.params[p.name] for p in space.parameters})
        study.tell(trial, 0.0)
    return points


# --------------------------------------------------------------------------------------------
# Options


@dataclasses.dataclass
class SearchOptions(run_pretraining.PretrainingOptions):
    """The flags of `python -m bert.search`: run_pretraining's (each trial is a phase) plus these.

    --model_dir is the study's directory (trials go to model_dir/trials/point_NNNN);
    --experiment/--phase default to the search space's.
    """

    search_space: str | None = option(
        None, "Search space: a JSON file, or a name in configs/search/."
    )
    num_trials: int = option(30, "Trials: the first N points of the quasi-random sequence.")
    dry_run: bool = option(False, "Print the trials (one JSON object per line) and exit.")
    qmc_type: str = option("halton", "Low-discrepancy sequence.", ("halton", "sobol"))
    sampler_seed: int = option(0, "Seed of the sequence's scrambling.")
    storage: str | None = option(
        None, "Optuna storage URL shared by the workers (default: sqlite in model_dir)."
    )
    study_name: str | None = option(None, "Study name in the storage (default: model_dir's).")
    heartbeat_seconds: int = option(
        60, "A running trial without a heartbeat for 3x this long is requeued (a lost worker)."
    )
    target_accuracy: float = option(
        0.0, "Report the first step at which held-out masked-LM accuracy reaches this (0: off)."
    )
    report_only: bool = option(False, "Only write the results of the study as it is.")
    # Trials are scored on held-out training examples: Nado et al. use 10k; 10,240 is ten
    # evaluation batches of 1,024, which every pod slice's replica count divides.
    heldout_examples: int = option(
        10240, "Held-out slice: the first N training records, never trained on, score trials."
    )
    eval_batch_size: int | None = option(1024, "Global batch of the held-out evaluation.")
    experiment: str | None = option(None, "Experiment config (default: the search space's).")
    phase: int | None = option(None, "Phase to search (default: the search space's).")
    save_checkpoints_steps: int = option(
        1000, "Checkpoint every this many updates (a rerun trial resumes from its last)."
    )

    def validate(self) -> None:
        if not self.search_space:
            raise app.UsageError("--search_space is required")
        if self.num_trials < 1:
            raise app.UsageError("--num_trials must be >= 1")
        if self.strategy == "multi_worker":
            raise app.UsageError(
                "--strategy=multi_worker: every worker of a trial must run the same trial, but "
                "each search worker takes its own; use one process per search worker (tpu, "
                "mirrored or one_device) and point them all at one --storage"
            )
        if not self.dry_run:
            super().validate()


@dataclasses.dataclass
class Study:
    """What a search is about: its space, the phase it starts from and its points."""

    space: SearchSpace
    experiment: experiment_lib.ExperimentConfig
    experiment_name: str
    phase_number: int
    base_phase: experiment_lib.PhaseConfig
    points: list

    def phase(self, point: int) -> experiment_lib.PhaseConfig:
        return self.space.apply(self.base_phase, self.points[point])

    def trial_experiment(self, point: int, note: str = "") -> dict:
        """The experiment file of trial `point`: the experiment with the searched phase replaced."""
        phases = [dataclasses.asdict(p) for p in self.experiment.phases]
        phases[self.phase_number - 1] = dataclasses.asdict(self.phase(point))
        source = (
            f"bert.search: point {point} of {self.space.path} over phase {self.phase_number} "
            f"of {self.experiment_name}" + (f" ({note})" if note else "")
        )
        return {
            "description": self.experiment.description,
            "sources": [*self.experiment.sources, source],
            "model": self.experiment.model,
            "phases": phases,
        }

    def trial_line(self, point: int) -> dict:
        """A dry-run line: the point and the full optimizer and schedule of its phase."""
        from optimization import hparams

        phase = self.phase(point)
        optimizer = dict(phase.optimizer)
        name = optimizer.pop("name")
        full = hparams.resolve_hparams(name, optimizer)
        return {
            "trial": point,
            "params": self.points[point],
            "train_batch_size": phase.train_batch_size,
            "num_train_steps": phase.num_train_steps,
            "optimizer": {"name": name, **{k: _jsonable(v) for k, v in full.items()}},
            "schedule": phase.schedule,
        }


def _jsonable(value):
    return list(value) if isinstance(value, tuple) else value


def make_study(options: SearchOptions) -> Study:
    space = load_search_space(options.search_space)
    name = options.experiment or space.experiment
    if not name:
        raise app.UsageError(f"--experiment is required ({space.path} names none)")
    number = options.phase or space.phase
    experiment = experiment_lib.load_experiment(name)
    base = experiment_lib.apply_overrides(experiment.phase(number), **options.phase_overrides())
    points = quasi_random_points(space, options.num_trials, options.sampler_seed, options.qmc_type)
    study = Study(space, experiment, name, number, base, points)
    for point in range(len(points)):  # Fail now, not in trial 17.
        study.phase(point)
    return study


# --------------------------------------------------------------------------------------------
# Running the study (Optuna storage; several workers may share it)


def _storage(options: SearchOptions):
    import optuna

    if not options.storage and "://" in options.model_dir:
        raise app.UsageError(
            f"--model_dir={options.model_dir} is not local: give --storage, a database URL "
            "every worker reaches (e.g. postgresql://...), for the study"
        )
    url = options.storage or "sqlite:///" + os.path.abspath(
        os.path.join(options.model_dir, "study.db")
    )
    engine_kwargs = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {}
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the heartbeat
    return optuna.storages.RDBStorage(
        url,
        engine_kwargs=engine_kwargs,
        heartbeat_interval=options.heartbeat_seconds,
        grace_period=3 * options.heartbeat_seconds,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
            max_retry=3
        ),
    )


def _study_record(study: Study, options: SearchOptions) -> dict:
    """What must be the same for every worker of one study."""
    return {
        "search_space": study.space.raw,
        "experiment": study.experiment_name,
        "phase": study.phase_number,
        "base_phase": dataclasses.asdict(study.base_phase),
        "num_trials": options.num_trials,
        "points": study.points,
    }


def study_name(options: SearchOptions) -> str:
    return options.study_name or os.path.basename(os.path.normpath(options.model_dir))


def open_study(study: Study, options: SearchOptions):
    """Creates the Optuna study with every point enqueued, or joins the existing one."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = _storage(options)
    name = study_name(options)
    record = json.loads(json.dumps(_study_record(study, options)))
    try:
        optuna_study = optuna.create_study(storage=storage, study_name=name, direction="maximize")
    except optuna.exceptions.DuplicatedStudyError:
        optuna_study = optuna.load_study(storage=storage, study_name=name)
        deadline = time.time() + 120
        while "study" not in optuna_study.user_attrs:  # Its creator is still enqueueing.
            if time.time() > deadline:
                raise RuntimeError(f"study {name!r} in {storage.url} was never completed") from None
            time.sleep(1)
        stored = optuna_study.user_attrs["study"]
        for key, value in record.items():
            if stored.get(key) != value:
                raise ValueError(
                    f"study {name!r} in {storage.url} was created with another {key}: "
                    f"{json.dumps(stored.get(key))[:300]} (this run: {json.dumps(value)[:300]}); "
                    f"use another --model_dir/--study_name or the same flags"
                ) from None
        return optuna_study
    for point, values in enumerate(study.points):
        optuna_study.enqueue_trial(values, user_attrs={"point": point})
    optuna_study.set_user_attr("study", record)
    return optuna_study


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _requeue_dead_local_trials(optuna_study) -> None:
    """Requeues running trials of dead processes on this host (no need to wait for staleness)."""
    import optuna

    host = socket.gethostname()
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)
    for trial in optuna_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker", "")
        worker_host, _, pid = worker.rpartition(":")
        if worker_host != host or not pid.isdigit() or _process_alive(int(pid)):
            continue
        try:
            optuna_study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        except (RuntimeError, ValueError):
            continue  # Another worker got there first.
        logging.warning("Trial %d's process %s is gone; requeued.", trial.number, worker)
        retry(optuna_study, copy.deepcopy(trial))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Heartbeat:
    """Records the trial's heartbeat in the storage while it runs (Optuna's staleness check)."""

    def __init__(self, storage, trial_id: int, interval: int):
        self._stop = threading.Event()

        def beat():
            while not self._stop.is_set():
                storage.record_heartbeat(trial_id)
                self._stop.wait(interval)

        self._thread = threading.Thread(target=beat, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def trial_dir(options: SearchOptions, point: int) -> str:
    return os.path.join(options.model_dir, "trials", f"point_{point:04d}")


def run_trial(study: Study, options: SearchOptions, point: int) -> dict:
    """Trains and scores one point (resuming its directory); returns run_phase's results."""
    directory = trial_dir(options, point)
    tf.io.gfile.makedirs(directory)
    experiment_file = os.path.join(directory, "experiment.json")
    fileio.write_json_atomic(experiment_file, study.trial_experiment(point))
    fields = {f.name for f in dataclasses.fields(run_pretraining.PretrainingOptions)}
    trial_options = run_pretraining.PretrainingOptions(
        **{k: v for k, v in dataclasses.asdict(options).items() if k in fields}
    )
    # The searched phase is baked into the trial's experiment file.
    trial_options = dataclasses.replace(
        trial_options,
        experiment=experiment_file,
        phase=study.phase_number,
        model_dir=directory,
        do_eval=True,
        **{name: None for name in run_pretraining.PretrainingOptions.PHASE_OVERRIDES},
    )
    import keras

    keras.backend.clear_session()  # Trials run one after another in this process.
    return run_pretraining.run_phase(trial_options)


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


def run_worker(study: Study, options: SearchOptions, optuna_study) -> int:
    """Runs waiting trials until the study is finished; returns how many this worker ran."""
    import optuna

    states = optuna.trial.TrialState
    distributions = study.space.distributions()
    ran = 0
    while True:
        optuna.storages.fail_stale_trials(optuna_study)
        _requeue_dead_local_trials(optuna_study)
        if not optuna_study.get_trials(deepcopy=False, states=(states.WAITING,)):
            if not optuna_study.get_trials(deepcopy=False, states=(states.RUNNING,)):
                return ran
            # Other workers' trials run; wait: one of them may be lost and come back.
            time.sleep(min(options.heartbeat_seconds, 10))
            continue
        with warnings.catch_warnings():  # "Heartbeat ... used with Study.optimize": see _Heartbeat
            warnings.simplefilter("ignore", UserWarning)
            trial = optuna_study.ask(distributions)
        point = trial.user_attrs.get("point")
        if point is None:  # The last waiting trial went to another worker meanwhile.
            trial.set_user_attr("unused", "a new point past the study's; not run")
            optuna_study.tell(trial, state=states.FAIL)
            continue
        trial.set_user_attr("worker", _worker_id())
        logging.info("Trial %d: point %d %s", trial.number, point, json.dumps(trial.params))
        try:
            with _Heartbeat(optuna_study._storage, trial._trial_id, options.heartbeat_seconds):
                results = run_trial(study, options, point)
        except FloatingPointError as e:  # Diverged: a result of the point, not a fault.
            trial.set_user_attr("diverged", str(e))
            optuna_study.tell(trial, state=states.FAIL)
            ran += 1
            continue
        except BaseException:
            # Preempted (SIGTERM, checkpoint saved), Ctrl-C or a crash: requeue the point so
            # that a rerun resumes it, then stop this worker.
            frozen = optuna_study._storage.get_trial(trial._trial_id)
            optuna_study.tell(trial, state=states.FAIL)
            optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)(optuna_study, frozen)
            raise
        curve = learning_curve(trial_dir(options, point))
        trial.set_user_attr("curve", curve)
        trial.set_user_attr("eval", results["eval"])
        optuna_study.tell(trial, results["eval"][METRIC])
        ran += 1


# --------------------------------------------------------------------------------------------
# Results


def trial_rows(study: Study, options: SearchOptions, optuna_study) -> list:
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
    rows = []
    for point in range(len(study.points)):
        trial = latest.get(point)
        state = "not run" if trial is None else trial.state.name.lower()
        if trial is not None and "diverged" in trial.user_attrs:
            state = "diverged"
        curve = trial.user_attrs.get("curve", []) if trial else []
        score = trial.value if trial is not None and trial.value is not None else math.nan
        rows.append(
            {
                "point": point,
                "state": state,
                METRIC: score,
                "steps_to_target": (
                    steps_to_target(curve, options.target_accuracy)
                    if options.target_accuracy
                    else None
                ),
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


def write_report(study: Study, options: SearchOptions, optuna_study) -> dict:
    """results.{json,csv,md}, results.png and best_experiment.json in model_dir."""
    rows = trial_rows(study, options, optuna_study)
    names = [p.name for p in study.space.parameters]
    finished = [r for r in rows if r["state"] == "complete"]
    best = max(finished, key=lambda r: r[METRIC]) if finished else None
    out = options.model_dir
    summary = {
        "search_space": study.space.path,
        "experiment": study.experiment_name,
        "phase": study.phase_number,
        "num_trials": len(rows),
        "complete": len(finished),
        "diverged": sum(r["state"] == "diverged" for r in rows),
        "target_accuracy": options.target_accuracy or None,
        "best_point": best["point"] if best else None,
        f"best_{METRIC}": best[METRIC] if best else None,
        "trials": rows,
    }
    fileio.write_json_atomic(os.path.join(out, "results.json"), summary)
    columns = ["point", "state", METRIC, "steps_to_target", *names]
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
        f"{len(finished)} of {len(rows)} trials complete, {summary['diverged']} diverged; "
        f"score: held-out {METRIC} on {options.heldout_examples} examples. Best first.",
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


def plot_trials(study: Study, rows: list, path: str) -> None:
    """Held-out accuracy against each searched hyperparameter (diverged trials at the bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    fileio.write_atomic(path, buffer.getvalue())


def run(options: SearchOptions) -> dict | None:
    """Dry run (prints the trials) or run/join/report the study; returns the summary."""
    options.validate()
    study = make_study(options)
    if options.dry_run:
        label = {"study": study_name(options)} if options.model_dir or options.study_name else {}
        for point in range(len(study.points)):
            print(json.dumps({**label, **study.trial_line(point)}))
        return None
    tf.io.gfile.makedirs(options.model_dir)
    optuna_study = open_study(study, options)
    if not options.report_only:
        ran = run_worker(study, options, optuna_study)
        logging.info("This worker ran %d trial(s); the study is finished.", ran)
    return write_report(study, options, optuna_study)


def main(argv):
    del argv
    summary = opts.exit_if_preempted(
        lambda: run(opts.from_flags(SearchOptions)),
        "the point is requeued; rerun the same command to resume",
    )
    if summary:
        print(json.dumps({k: v for k, v in summary.items() if k != "trials"}))


if __name__ == "__main__":
    opts.define_flags(SearchOptions, module_name=sys.argv[0])
    app.run(main)
