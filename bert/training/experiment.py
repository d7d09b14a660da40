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
"name"), `schedule` those of `optimization.create_schedule` (plus "kind"). The file is read
by `data.config_files` (the loader of every config file), which names the file and the field
in its errors.
"""

import dataclasses
import os
from typing import Any

from data import config_files
from data.config_files import CONFIG_DIR, REPO_ROOT  # noqa: F401 (re-exported)

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
    """One pretraining phase: data shape, batch, length, optimizer and schedule.

    `validate(where)` checks what the types cannot say; the file loader calls it.
    """

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

    model: str  # a BertConfig preset name or a bert_config.json path
    phases: list[PhaseConfig]
    description: str = ""
    sources: list[str] = dataclasses.field(default_factory=list)

    def validate(self, where: str) -> None:
        if not self.phases:
            raise ValueError(f"{where}: field 'phases' must be a non-empty list")

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


def experiment_from_dict(raw: Any, source: str = "<dict>") -> ExperimentConfig:
    """Builds and validates an ExperimentConfig; errors name `source` and the field."""
    return config_files.from_dict(ExperimentConfig, raw, source)


def resolve_config_path(
    name_or_path: str, directory: str = CONFIG_DIR, what: str = "experiment config"
) -> str:
    """Accepts a path, or the bare name of a file in `directory` (with or without .json)."""
    return config_files.resolve(name_or_path, directory, what)


read_config_json = config_files.read_json


def load_experiment(name_or_path: str) -> ExperimentConfig:
    """An experiment: a path, or a name in configs/ (`lamb_32k`, `lamb_table4/b4k`)."""
    return config_files.load(ExperimentConfig, name_or_path, what="experiment config")
