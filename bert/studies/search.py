"""Quasi-random search over one pretraining phase (Nado et al.'s protocol), on Optuna.

A search is two option objects: the pretraining run every trial is (`PretrainingOptions`,
copied per trial with `dataclasses.replace`) and the search's own (`SearchOptions`). The
trials are the first `num_trials` points of the space's quasi-random sequence; every trial is
an ordinary pretraining phase in its own directory (model_dir/trials/point_NNNN), scored by
masked-LM accuracy on a held-out slice of the training data (never trained on).

Small trials (at most `cell_max_examples` training examples) run in one compiled program per
worker and cell (`bert.studies.cell`): built at the first trial, reused by the next ones with
the model, optimizer, dropout and input reset and the trial's hyperparameters assigned as
values, so a trial pays neither a retrace nor a model build; it evaluates at `eval_steps`,
may stop once held-out accuracy reaches `stop_at_accuracy`, and writes no checkpoint. Larger
trials run as ordinary `run_pretraining` phases with checkpoints.

Bookkeeping is Optuna's: the study (SQLite file `study.db` in model_dir by default, or any
database URL in `storage`) holds the trials, which are all enqueued when the study is
created, so that every worker and every resume runs the same points. Workers pointed at one
study take the next waiting trial until none is left. A trial whose worker is killed (SIGTERM;
a lost machine stops its heartbeat) goes back into the queue under the same point; a large
trial's rerun resumes from its last checkpoint, a small one's starts again from scratch.
"""

import copy
import dataclasses
import json
import os
import socket
import statistics
import threading
import time
import warnings

import tensorflow as tf
from absl import app, logging

from bert.studies import report
from bert.studies.space import SearchSpace, load_search_space, quasi_random_points
from bert.tasks import pretraining_phase
from bert.tasks.pretraining_phase import PretrainingOptions, run_phase
from bert.training import experiment as experiment_lib
from data import cli, fileio
from data.cli import option


@dataclasses.dataclass
class SearchOptions:
    """The search's own options; `python -m bert.search` has these and the run's flags.

    `experiment`, `phase`, `heldout_examples`, `eval_batch_size` and `save_checkpoints_steps`
    re-declare pretraining flags with the search's defaults and help: the study writes these
    values into every trial's run (experiment and phase default to the search space's).
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
    # In-process trials: a killed worker's trial of at most 2^23 examples reruns from scratch,
    # minutes on a CPU; a BERT-Large recipe's (460M examples) checkpoints.
    cell_max_examples: int = option(
        2**23,
        "Trials of at most this many training examples (steps x batch) run in one compiled "
        "program per worker and cell, without checkpoints (a killed worker's trial reruns "
        "from scratch); larger ones run as run_pretraining phases with checkpoints (0: all).",
    )
    eval_steps: str = option(
        "",
        "Comma-separated steps at which in-process trials measure held-out accuracy (e.g. a "
        "log-spaced grid); the last is the budget. Default: every --eval_every_steps and the "
        "last step.",
    )
    stop_at_accuracy: float = option(
        0.0,
        "Stop an in-process trial at the first evaluation whose held-out masked-LM accuracy "
        "reaches this (0: never); the trial is marked stopped_early.",
    )

    def eval_step_list(self) -> list:
        """--eval_steps as increasing ints (empty: not given)."""
        try:
            steps = [int(s) for s in self.eval_steps.split(",") if s.strip()]
        except ValueError:
            raise app.UsageError(
                f"--eval_steps must be comma-separated steps, got {self.eval_steps!r}"
            ) from None
        if steps != sorted(set(steps)) or (steps and steps[0] < 1):
            raise app.UsageError(f"--eval_steps must increase from >= 1, got {self.eval_steps!r}")
        return steps

    def validate(self, run: PretrainingOptions) -> None:
        if not self.search_space:
            raise app.UsageError("--search_space is required")
        if self.num_trials < 1:
            raise app.UsageError("--num_trials must be >= 1")
        self.eval_step_list()
        if run.strategy == "multi_worker":
            raise app.UsageError(
                "--strategy=multi_worker: every worker of a trial must run the same trial, but "
                "each search worker takes its own; use one process per search worker (tpu, "
                "mirrored or one_device) and point them all at one --storage"
            )
        if not self.dry_run:
            run.validate()


# The option classes of `python -m bert.search`, in the order `parse` returns them.
OPTION_CLASSES = (PretrainingOptions, SearchOptions)
# SearchOptions' fields that the study writes into every trial's run.
RUN_FIELDS = ("heldout_examples", "eval_batch_size", "save_checkpoints_steps")


def parse(argv: list) -> tuple:
    """(PretrainingOptions, SearchOptions) of a `bert.search` command line (program first)."""
    return cli.parse_all(OPTION_CLASSES, argv)


@dataclasses.dataclass
class Study:
    """A search: its space, the phase it starts from, its points and how trials run.

    `run` is the pretraining run every trial copies (with the search's experiment, phase and
    scoring fields already in it); `search` the search's own options.
    """

    space: SearchSpace
    experiment: experiment_lib.ExperimentConfig
    experiment_name: str
    phase_number: int
    base_phase: experiment_lib.PhaseConfig
    points: list
    run: PretrainingOptions
    search: SearchOptions

    @property
    def directory(self) -> str:
        return self.run.model_dir

    @property
    def name(self) -> str:
        return self.search.study_name or os.path.basename(os.path.normpath(self.run.model_dir))

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

    def trial_dir(self, point: int) -> str:
        return os.path.join(self.directory, "trials", f"point_{point:04d}")

    def record(self) -> dict:
        """What must be the same for every worker of one study."""
        return {
            "search_space": self.space.raw,
            "experiment": self.experiment_name,
            "phase": self.phase_number,
            "base_phase": dataclasses.asdict(self.base_phase),
            "num_trials": self.search.num_trials,
            "points": self.points,
        }


def _jsonable(value):
    return list(value) if isinstance(value, tuple) else value


def make_study(pretraining: PretrainingOptions, search: SearchOptions) -> Study:
    """The study of a search: its space, points and the run its trials copy."""
    space = load_search_space(search.search_space)
    name = search.experiment or space.experiment
    if not name:
        raise app.UsageError(f"--experiment is required ({space.path} names none)")
    number = search.phase or space.phase
    run = dataclasses.replace(
        pretraining,
        experiment=name,
        phase=number,
        **{field: getattr(search, field) for field in RUN_FIELDS},
    )
    experiment = experiment_lib.load_experiment(name)
    base = experiment_lib.apply_overrides(experiment.phase(number), **run.phase_overrides())
    points = quasi_random_points(space, search.num_trials, search.sampler_seed, search.qmc_type)
    study = Study(space, experiment, name, number, base, points, run, search)
    for point in range(len(points)):  # Fail now, not in trial 17.
        study.phase(point)
    return study


# --------------------------------------------------------------------------------------------
# Running the study (Optuna storage; several workers may share it)


def _storage(study: Study):
    import optuna
    import sqlalchemy

    search = study.search
    if not search.storage and "://" in study.directory:
        raise app.UsageError(
            f"--model_dir={study.directory} is not local: give --storage, a database URL "
            "every worker reaches (e.g. postgresql://...), for the study"
        )
    url = search.storage or "sqlite:///" + os.path.abspath(
        os.path.join(study.directory, "study.db")
    )
    engine_kwargs = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {}
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the heartbeat
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=search.heartbeat_seconds,
                grace_period=3 * search.heartbeat_seconds,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=3
                ),
            )
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError):
            # Workers started together both create the new database's tables: one of them
            # wins, the other sees a duplicate (table or row) and finds them on its next try.
            if attempt == 4:
                raise
            time.sleep(1 + attempt)


def open_study(study: Study):
    """Creates the Optuna study with every point enqueued, or joins the existing one."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = _storage(study)
    name = study.name
    record = json.loads(json.dumps(study.record()))
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


def trial_eval_steps(study: Study, phase) -> list:
    """The steps at which a trial is evaluated: --eval_steps, or every eval_every_steps and
    the last step; the last one is the trial's budget."""
    steps = study.search.eval_step_list()
    if steps:
        if steps[-1] > phase.num_train_steps:
            raise app.UsageError(
                f"--eval_steps go to {steps[-1]}, past the phase's {phase.num_train_steps} steps"
            )
        return steps
    every = study.run.eval_every_steps
    return (
        [*range(every, phase.num_train_steps, every), phase.num_train_steps]
        if every
        else [phase.num_train_steps]
    )


def runs_in_process(study: Study, phase) -> bool:
    """Whether a trial is small enough for the cell program (no checkpoints)."""
    budget = trial_eval_steps(study, phase)[-1]
    return budget * phase.train_batch_size <= study.search.cell_max_examples


# This worker's cell program: built at its first small trial, reused while trials fit it.
_PROGRAM: dict = {}


def cell_program(study: Study, phase):
    """The cell program of `phase`'s trials (the current one, or a new one replacing it)."""
    from bert.studies import cell

    _, config, _ = pretraining_phase.load_phase(study.run)
    key = cell.signature(study.run, phase, config)
    if _PROGRAM.get("key") != key:
        import keras

        _PROGRAM.clear()
        keras.backend.clear_session()  # Free the previous cell's program.
        _PROGRAM["program"] = cell.CellProgram(study.run, phase)
        _PROGRAM["key"] = key
    return _PROGRAM["program"]


def trial_directory(study: Study, point: int, seed: int) -> str:
    """The directory of a point's run: trials/point_NNNN, with _seed<S> for another seed."""
    directory = study.trial_dir(point)
    return directory if seed == study.run.seed else f"{directory}_seed{seed}"


def run_trial(study: Study, point: int, seed: int | None = None) -> dict:
    """Trains and scores one point; returns {"eval": final held-out metrics, timings...}.

    A small trial runs in this worker's cell program (from scratch); a large one as a
    run_pretraining phase in its directory (resuming it). Either way the trial's directory
    holds its experiment file and eval_log.jsonl (the learning curve). `seed` (default: the
    run's) seeds initialization, dropout and input order; another seed gets its own directory.
    """
    seed = study.run.seed if seed is None else seed
    directory = trial_directory(study, point, seed)
    tf.io.gfile.makedirs(directory)
    experiment_file = os.path.join(directory, "experiment.json")
    fileio.write_json_atomic(experiment_file, study.trial_experiment(point))
    phase = study.phase(point)
    if runs_in_process(study, phase):
        stop = study.search.stop_at_accuracy or None
        results = cell_program(study, phase).run_trial(
            phase, trial_eval_steps(study, phase), stop, seed=seed
        )
        log = "".join(json.dumps(entry) + "\n" for entry in results["curve"])
        fileio.write_atomic(os.path.join(directory, "eval_log.jsonl"), log)
        fileio.write_json_atomic(
            os.path.join(directory, "trial.json"),
            {k: v for k, v in results.items() if k != "curve"},
        )
        return {**results, "path": "cell"}
    start = time.time()
    # The searched phase is baked into the trial's experiment file.
    trial_options = dataclasses.replace(
        study.run,
        experiment=experiment_file,
        phase=study.phase_number,
        model_dir=directory,
        seed=seed,
        do_eval=True,
        **{name: None for name in PretrainingOptions.PHASE_OVERRIDES},
    )
    import keras

    _PROGRAM.clear()
    keras.backend.clear_session()  # Trials run one after another in this process.
    results = run_phase(trial_options)
    return {**results, **phase_timings(directory, time.time() - start), "path": "phase"}


def rerun_point(
    pretraining: PretrainingOptions, search: SearchOptions, point: int, seeds: list
) -> list:
    """Learning curves ([[step, accuracy], ...]) of the study's `point` run again with each of
    `seeds` (seed noise beside the search's spread); a diverged run's curve is empty.

    Run in this process, outside Optuna (in the cell program when the trials are small).
    """
    study = make_study(pretraining, search)
    curves = []
    for seed in seeds:
        try:
            results = run_trial(study, point, seed)
        except FloatingPointError:
            results = {"diverged": True}
        diverged = results.get("diverged")
        curve = [] if diverged else report.learning_curve(trial_directory(study, point, seed))
        curves.append([list(entry) for entry in curve])
    return curves


def phase_timings(directory: str, seconds: float) -> dict:
    """A run_pretraining trial's timings, read from its train_log.jsonl.

    compile_seconds is estimated: the first host call's time beyond its steps at the median
    rate of the others (that call traced and compiled the step). gradient_noise_scale: the
    mean of noise_trace over the mean of grad_sq_true of the calls that logged them.
    """
    path = os.path.join(directory, "train_log.jsonl")
    calls = []
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            calls = [json.loads(line) for line in f if line.strip()]
    timings = {"seconds": seconds, "stopped_early": False}
    if not calls:
        return {**timings, "steps": 0, "compile_seconds": None, "steps_per_second": None}
    steps = [b["step"] - a["step"] for a, b in zip([{"step": 0}, *calls], calls)]
    step_time = statistics.median(c["step_time"] for c in calls[1:]) if calls[1:] else 0.0
    first = steps[0] * calls[0]["step_time"]
    # B_simple over the run: the parts averaged over host calls before dividing.
    parts = [(c["noise_trace"], c["grad_sq_true"]) for c in calls if "noise_trace" in c]
    grad_sq = sum(g for _, g in parts)
    noise = sum(t for t, _ in parts) / grad_sq if parts and grad_sq > 0 else None
    return {
        **timings,
        "gradient_noise_scale": noise if noise is None or noise > 0 else None,
        "steps": calls[-1]["step"],
        "compile_seconds": max(first - steps[0] * step_time, 0.0) if calls[1:] else None,
        "steps_per_second": 1.0 / step_time if step_time else None,
    }


# What a trial records besides its score and curve (user attrs, and columns of the results).
TRIAL_ATTRS = ("path", *report.MEASURES, "diverged")


def run_worker(study: Study, optuna_study, wait: bool = True) -> int:
    """Runs waiting trials until the study is finished (or, with `wait` False, until none is
    waiting: other workers' trials may still run); returns how many this worker ran."""
    import optuna

    states = optuna.trial.TrialState
    distributions = study.space.distributions()
    heartbeat = study.search.heartbeat_seconds
    ran = 0
    while True:
        optuna.storages.fail_stale_trials(optuna_study)
        _requeue_dead_local_trials(optuna_study)
        if not optuna_study.get_trials(deepcopy=False, states=(states.WAITING,)):
            if not wait or not optuna_study.get_trials(deepcopy=False, states=(states.RUNNING,)):
                return ran
            # Other workers' trials run; wait: one of them may be lost and come back.
            time.sleep(min(heartbeat, 10))
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
            with _Heartbeat(optuna_study._storage, trial._trial_id, heartbeat):
                results = run_trial(study, point)
        except FloatingPointError as e:  # Diverged: a result of the point, not a fault.
            results = {"diverged": str(e)}
        except BaseException:
            # Preempted (SIGTERM: a large trial saved a checkpoint, a small one reruns from
            # scratch), Ctrl-C or a crash: requeue the point, then stop this worker.
            frozen = optuna_study._storage.get_trial(trial._trial_id)
            optuna_study.tell(trial, state=states.FAIL)
            optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)(optuna_study, frozen)
            raise
        for name in TRIAL_ATTRS:
            if results.get(name) is not None:
                trial.set_user_attr(name, results[name])
        if results.get("diverged"):  # Its curve up to the divergence, if it has one.
            trial.set_user_attr("curve", report.learning_curve(study.trial_dir(point)))
            optuna_study.tell(trial, state=states.FAIL)
            ran += 1
            continue
        curve = report.learning_curve(study.trial_dir(point))
        trial.set_user_attr("curve", curve)
        trial.set_user_attr("eval", results["eval"])
        optuna_study.tell(trial, results["eval"][report.METRIC])
        ran += 1


def run(pretraining: PretrainingOptions, search: SearchOptions, wait: bool = True) -> dict | None:
    """Dry run (prints the trials) or run/join/report the study; returns the summary.

    With `wait` False, returns None without a report as soon as no trial is left waiting while
    other workers' trials still run (the worker can take up another study meanwhile).
    """
    import optuna

    search.validate(pretraining)
    study = make_study(pretraining, search)
    if search.dry_run:
        label = {"study": study.name} if pretraining.model_dir or search.study_name else {}
        for point in range(len(study.points)):
            print(json.dumps({**label, **study.trial_line(point)}))
        return None
    tf.io.gfile.makedirs(study.directory)
    optuna_study = open_study(study)
    if not search.report_only:
        ran = run_worker(study, optuna_study, wait)
        states = (optuna.trial.TrialState.WAITING, optuna.trial.TrialState.RUNNING)
        unfinished = [] if wait else optuna_study.get_trials(deepcopy=False, states=states)
        if unfinished:  # Other workers' trials still run.
            logging.info("This worker ran %d trial(s); %d run elsewhere.", ran, len(unfinished))
            return None
        logging.info("This worker ran %d trial(s); the study is finished.", ran)
    return report.write_report(study, optuna_study)
