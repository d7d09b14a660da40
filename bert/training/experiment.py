"""Experiment configs: the published recipes as JSON files in `configs/`.

An experiment file describes the model and one entry per pretraining phase:

    {
      "description": "...", "sources": ["..."],
      "model": "large",                      # a BertConfig preset or a bert_config.json path
      "phases": [
        {"name": "phase1", "train_batch_size": 32768, "max_seq_length": 128,
         "max_predictions_per_seq": 20, "num_train_steps": 14063,
         "optimizer": {"name": "lamb", "weight_decay": 0.01, ...},
         "schedule": {"kind": "warmup_poly", "peak_lr": 5e-3, ...}},
        {"name": "phase2", ...}
      ]
    }

`optimizer` holds the keyword arguments of `optimization.create_optimizer` (plus
"name"), `schedule` those of `optimization.create_schedule` (plus "kind").
"""

import dataclasses
import json
import os
from typing import Any

import tensorflow as tf

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG_DIR = os.path.join(REPO_ROOT, "configs")
# Sub-folders of CONFIG_DIR that hold other configs than experiments.
OTHER_CONFIG_DIRS = ("search", "reality_check")


def experiment_files() -> list:
    """Every experiment file shipped in CONFIG_DIR (sub-folders too), sorted."""
    paths = []
    for root, dirs, files in os.walk(CONFIG_DIR):
        if root == CONFIG_DIR:
            dirs[:] = [d for d in dirs if d not in OTHER_CONFIG_DIRS]
        paths.extend(os.path.join(root, f) for f in files if f.endswith(".json"))
    return sorted(paths)


@dataclasses.dataclass
class PhaseConfig:
    """One pretraining phase: data shape, batch, length, optimizer and schedule."""

    name: str
    train_batch_size: int
    max_seq_length: int
    max_predictions_per_seq: int
    num_train_steps: int
    optimizer: dict
    schedule: dict
    gradient_accumulation_steps: int = 1

    def validate(self, where: str) -> None:
        for field in (
            "train_batch_size",
            "max_seq_length",
            "max_predictions_per_seq",
            "num_train_steps",
            "gradient_accumulation_steps",
        ):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(
                    f"{where}: field '{field}' must be a positive integer, got {value!r}"
                )
        if self.train_batch_size % self.gradient_accumulation_steps:
            raise ValueError(
                f"{where}: train_batch_size {self.train_batch_size} is not divisible by "
                f"gradient_accumulation_steps {self.gradient_accumulation_steps}"
            )
        if "name" not in self.optimizer:
            raise ValueError(
                f'{where}: field \'optimizer.name\' is missing (e.g. "lamb" or "adamw")'
            )
        if "kind" not in self.schedule:
            raise ValueError(f"{where}: field 'schedule.kind' is missing (e.g. \"warmup_poly\")")
        try:
            total = shared_schedule_names(self.schedule).get("total_steps")
        except ValueError as e:
            raise ValueError(f"{where}: field 'schedule': {e}") from None
        if total is not None and total != self.num_train_steps:
            raise ValueError(
                f"{where}: schedule total steps {total} differ from "
                f"num_train_steps {self.num_train_steps}"
            )


@dataclasses.dataclass
class ExperimentConfig:
    """A whole recipe: model size and its phases in order."""

    model: str
    phases: list
    description: str = ""
    sources: list = dataclasses.field(default_factory=list)

    def phase(self, number: int) -> PhaseConfig:
        if not 1 <= number <= len(self.phases):
            raise ValueError(
                f"phase {number} requested but the experiment has {len(self.phases)} phase(s)"
            )
        return self.phases[number - 1]


def shared_schedule_names(schedule: dict) -> dict:
    """A phase's `schedule` dict with older argument names renamed to the shared ones.

    An unknown kind is left as it is (create_schedule reports it); ValueError if an
    argument is given under both its names.
    """
    from optimization import schedules

    kind = schedule.get("kind")
    if kind not in schedules.SCHEDULES:
        return dict(schedule)
    args = {k: v for k, v in schedule.items() if k != "kind"}
    return {"kind": kind, **schedules.canonical_args(kind, args)}


# apply_overrides argument -> the schedule argument it sets (names shared by every schedule).
SCHEDULE_OVERRIDES = {
    "learning_rate": "peak_lr",
    "num_warmup_steps": "warmup_steps",
    "num_train_steps": "total_steps",
}


def apply_overrides(
    phase: PhaseConfig,
    learning_rate: float = None,
    num_warmup_steps: int = None,
    optimizer: str = None,
    **fields,
) -> PhaseConfig:
    """Returns `phase` with fields replaced (e.g. from the command line), validated again.

    `num_train_steps` also sets the schedule's total steps, `num_warmup_steps` its warmup,
    `learning_rate` its peak rate (the shared schedule names in SCHEDULE_OVERRIDES; the
    schedule's older argument names are renamed first), `optimizer` the optimizer's name.
    A schedule without warmup or total steps (constant) keeps having none.
    """
    schedule = shared_schedule_names(phase.schedule)
    opt = dict(phase.optimizer)
    if optimizer:
        opt["name"] = optimizer
    given = {
        "learning_rate": learning_rate,
        "num_warmup_steps": num_warmup_steps,
        "num_train_steps": fields.get("num_train_steps"),
    }
    for flag, key in SCHEDULE_OVERRIDES.items():
        if given[flag] is not None and key in schedule:
            schedule[key] = given[flag]
    phase = dataclasses.replace(
        phase,
        optimizer=opt,
        schedule=schedule,
        **{k: v for k, v in fields.items() if v is not None},
    )
    phase.validate(f"phase '{phase.name}' after overrides")
    return phase


def _phase_from_dict(raw: Any, where: str) -> PhaseConfig:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected an object, got {type(raw).__name__}")
    names = {f.name for f in dataclasses.fields(PhaseConfig)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; expected some of {sorted(names)}")
    required = {
        f.name
        for f in dataclasses.fields(PhaseConfig)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    missing = sorted(required - set(raw))
    if missing:
        raise ValueError(f"{where}: missing field(s) {missing}")
    phase = PhaseConfig(**raw)
    phase.validate(where)
    return phase


def experiment_from_dict(raw: Any, source: str = "<dict>") -> ExperimentConfig:
    """Builds and validates an ExperimentConfig; errors name `source` and the field."""
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: expected a JSON object at the top level")
    for field in ("model", "phases"):
        if field not in raw:
            raise ValueError(f"{source}: missing field '{field}'")
    if not isinstance(raw["phases"], list) or not raw["phases"]:
        raise ValueError(f"{source}: field 'phases' must be a non-empty list")
    unknown = sorted(set(raw) - {"model", "phases", "description", "sources"})
    if unknown:
        raise ValueError(f"{source}: unknown field(s) {unknown}")
    phases = [_phase_from_dict(p, f"{source}: phases[{i}]") for i, p in enumerate(raw["phases"])]
    return ExperimentConfig(
        model=raw["model"],
        phases=phases,
        description=raw.get("description", ""),
        sources=list(raw.get("sources", [])),
    )


def resolve_config_path(
    name_or_path: str, directory: str = CONFIG_DIR, what: str = "experiment config"
) -> str:
    """Accepts a path, or the bare name of a file in `directory` (with or without .json)."""
    if tf.io.gfile.exists(name_or_path):
        return name_or_path
    for candidate in (name_or_path, name_or_path + ".json"):
        path = os.path.join(directory, candidate)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(
        f"{what} '{name_or_path}' not found (neither a path nor a file in {directory})"
    )


def read_config_json(path: str) -> Any:
    """The JSON content of a config file; ValueError naming the file if it is not JSON."""
    with tf.io.gfile.GFile(path, "r") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON: {e}") from None


def load_experiment(name_or_path: str) -> ExperimentConfig:
    path = resolve_config_path(name_or_path)
    return experiment_from_dict(read_config_json(path), path)
