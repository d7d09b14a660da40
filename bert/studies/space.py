"""Search spaces (files in configs/search/) and their quasi-random points.

A search space names what is searched (each `Parameter`: a range or a list of choices, and
the optimizer or schedule fields it sets), what is fixed, and the experiment phase it applies
to by default. Its points are the first N of a scrambled Halton (or Sobol) sequence
(quasi-random search, Bousquet et al. 2017), drawn by Optuna's QMCSampler.
"""

import dataclasses
import os
import warnings

from bert.training import experiment as experiment_lib
from data import config_files

SEARCH_DIR = os.path.join(config_files.CONFIG_DIR, "search")
TRANSFORMS = {None: lambda x: x, "one_minus": lambda x: 1.0 - x}
PARTS = ("optimizer", "schedule")


@dataclasses.dataclass
class Parameter:
    """One searched dimension: a range (`low`, `high`, `log`) or a list of `choices`.

    Its value, after `transform` ("one_minus" for 1 - beta), is written to every phase field
    in `sets` ("optimizer.<name>" or "schedule.<name>"; one such string or a list).
    """

    name: str
    sets: list[str] | str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list | None = None
    transform: str | None = None

    def __post_init__(self):
        if isinstance(self.sets, str):
            self.sets = [self.sets]

    def validate(self, where: str) -> None:
        if not self.sets or not all(s.split(".", 1)[0] in PARTS and "." in s for s in self.sets):
            raise ValueError(
                f"{where}: field 'sets' must list 'optimizer.<name>' or 'schedule.<name>', "
                f"got {self.sets!r}"
            )
        if self.transform not in TRANSFORMS:
            raise ValueError(
                f"{where}: field 'transform' must be one of {sorted(k for k in TRANSFORMS if k)}, "
                f"got {self.transform!r}"
            )
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError(f"{where}: give either 'choices' or 'low'/'high', not both")
            if not self.choices:
                raise ValueError(f"{where}: field 'choices' must be a non-empty list")
            return
        for bound in ("low", "high"):
            if getattr(self, bound) is None:
                raise ValueError(f"{where}: field '{bound}' must be a number, got None")
        if not self.low < self.high:
            raise ValueError(f"{where}: 'low' ({self.low}) must be below 'high' ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"{where}: a log-scaled range needs 'low' > 0, got {self.low}")

    def distribution(self):
        import optuna

        if self.choices is not None:
            return optuna.distributions.CategoricalDistribution(self.choices)
        return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log)

    def field_values(self, value) -> dict:
        """{"optimizer.beta_1": 0.9, ...}: what this parameter's `value` sets."""
        return {path: TRANSFORMS[self.transform](value) for path in self.sets}


@dataclasses.dataclass
class FixedFields:
    """A search space's fixed optimizer and schedule fields (applied before the parameters)."""

    optimizer: dict = dataclasses.field(default_factory=dict)
    schedule: dict = dataclasses.field(default_factory=dict)


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
    shared peak_lr / warmup_steps / total_steps. `path` and `raw` (the file's JSON, which a
    study records) are not fields of the file.
    """

    path: str
    parameters: list[Parameter] = dataclasses.field(metadata=config_files.keyed_by("name"))
    fixed: FixedFields = dataclasses.field(default_factory=FixedFields)
    experiment: str | None = None
    phase: int = 1
    description: str = ""
    sources: list[str] = dataclasses.field(default_factory=list)
    raw: dict = dataclasses.field(default_factory=dict)

    def validate(self, where: str) -> None:
        if not self.parameters:
            raise ValueError(f"{where}: field 'parameters' must be a non-empty object")

    def distributions(self) -> dict:
        return {p.name: p.distribution() for p in self.parameters}

    def apply(self, phase: experiment_lib.PhaseConfig, values: dict) -> experiment_lib.PhaseConfig:
        """`phase` with the fixed fields and the parameter `values` applied, validated."""
        optimizer = dict(phase.optimizer)
        schedule = experiment_lib.shared_schedule_names(phase.schedule)
        fixed_schedule = dict(self.fixed.schedule)
        if fixed_schedule.get("kind", schedule["kind"]) != schedule["kind"]:
            schedule = {k: schedule[k] for k in ("peak_lr", "warmup_steps", "total_steps")}
        optimizer.update(self.fixed.optimizer)
        schedule.update(fixed_schedule)
        parts = {"optimizer": optimizer, "schedule": schedule}
        for parameter in self.parameters:
            for path, value in parameter.field_values(values[parameter.name]).items():
                part, key = path.split(".", 1)
                parts[part][key] = value
        phase = dataclasses.replace(phase, optimizer=optimizer, schedule=schedule)
        phase.validate(f"{self.path}: a trial's phase")
        return phase


def load_search_space(name_or_path: str) -> SearchSpace:
    """Reads and validates a search space (a path, or a file name in configs/search/)."""
    path = config_files.resolve(name_or_path, SEARCH_DIR, "search space")
    raw = config_files.read_json(path)
    return config_files.from_dict(SearchSpace, raw, path, path=path, raw=raw)


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
