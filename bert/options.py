"""Command-line options declared once, as dataclasses, and the runtime every entry point shares.

Each entry point declares its options as a dataclass whose fields carry the flag's help text
(`option(default, help)`); `define_flags` makes the absl flags from it and `from_flags` /
`parse` read them back into one options object, so a flag's name, type, default and help live
in exactly one place. `RuntimeOptions` holds what every entry point shares (distribution
strategy, mixed precision, XLA, seed) and `start_runtime` turns it into a strategy.

    @dataclasses.dataclass
    class MyOptions(RuntimeOptions):
        model_dir: str | None = option(None, "Where checkpoints go.")

    options = parse(MyOptions, ["prog", "--model_dir=/tmp/x"])
"""

import dataclasses
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import TypeVar

from absl import flags, logging

from bert import distribute

T = TypeVar("T")

MIXED_PRECISION = ("bf16", "fp16", "none")


def option(default, help: str, choices: Sequence[str] | None = None):
    """A dataclass field that is also a command-line flag (`choices` makes it an enum flag)."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


@dataclasses.dataclass
class RuntimeOptions:
    """Where and how a job runs; shared by pretraining and fine-tuning."""

    strategy: str = option("one_device", "tf.distribute strategy.", distribute.STRATEGIES)
    tpu: str = option("", "TPU name or grpc address for TPUClusterResolver.")
    num_cpu_devices: int = option(
        0, "With --strategy=mirrored on a CPU-only host: logical CPU devices to use."
    )
    mixed_precision: str = option("none", "Compute dtype policy.", MIXED_PRECISION)
    jit_compile: bool = option(True, "XLA-compile the training steps.")
    seed: int = option(12345, "Seed of the input order, initialization and dropout.")


def _flag_type(field: dataclasses.Field):
    """The flag kind of a field: its annotation with Optional[...] removed."""
    kind = field.type
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    return kind


def define_flags(
    cls: type, flag_values: flags.FlagValues = flags.FLAGS, module_name: str | None = None
) -> None:
    """Defines one absl flag per field of the options dataclass `cls`.

    An entry point passes `module_name=sys.argv[0]` so that `--help` lists the flags as its
    own (absl shows the main module's flags).
    """
    definers = {
        bool: flags.DEFINE_bool,
        int: flags.DEFINE_integer,
        float: flags.DEFINE_float,
        str: flags.DEFINE_string,
    }
    for field in dataclasses.fields(cls):
        choices = field.metadata.get("choices")
        if choices:
            flags.DEFINE_enum(
                field.name,
                field.default,
                list(choices),
                field.metadata["help"],
                flag_values,
                module_name=module_name,
            )
        else:
            definers[_flag_type(field)](
                field.name,
                field.default,
                field.metadata["help"],
                flag_values=flag_values,
                module_name=module_name,
            )


def from_flags(cls: type[T], flag_values: flags.FlagValues = flags.FLAGS) -> T:
    """The options object of parsed flags (the fields of `cls`)."""
    return cls(**{f.name: flag_values[f.name].value for f in dataclasses.fields(cls)})


def parse(cls: type[T], argv: Sequence[str]) -> T:
    """Parses `argv` (program name first) into `cls`, with flags of its own (no global state)."""
    flag_values = flags.FlagValues()
    define_flags(cls, flag_values)
    flag_values(list(argv))
    return from_flags(cls, flag_values)


def start_runtime(runtime: RuntimeOptions):
    """Seeds, sets the dtype policy and returns the tf.distribute strategy of `runtime`."""
    if runtime.strategy == "mirrored":  # Logical CPU devices must exist before TF starts.
        distribute.configure_cpu_devices(runtime.num_cpu_devices)
    import keras

    keras.utils.set_random_seed(runtime.seed)
    set_mixed_precision(runtime.mixed_precision)
    return distribute.create_strategy(runtime.strategy, runtime.tpu, runtime.num_cpu_devices)


def set_mixed_precision(mode: str) -> None:
    """Sets the Keras global dtype policy for bf16 / fp16 / none."""
    import keras

    policies = {"bf16": "mixed_bfloat16", "fp16": "mixed_float16", "none": "float32"}
    if mode not in policies:
        raise ValueError(f"--mixed_precision must be one of {sorted(policies)}, got {mode!r}")
    keras.mixed_precision.set_global_policy(policies[mode])


def exit_if_preempted(job: Callable[[], T], hint: str = "") -> T:
    """Runs an entry point's `job`; a preempted one (checkpoint saved) exits with status 143.

    `hint` is logged after the preemption message (e.g. how to resume).
    """
    from bert import trainer

    try:
        return job()
    except trainer.Preempted as e:
        logging.warning("%s%s", e, f"; {hint}" if hint else "")
        sys.exit(e.exit_code)
