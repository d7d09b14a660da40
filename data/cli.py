"""Command-line options declared once, as dataclasses: one absl flag per field.

A program declares its options as a dataclass whose fields carry the flag's help text
(`option(default, help)`); `define_flags` makes the absl flags from it and `from_flags` /
`parse` read them back into one options object, so a flag's name, type, default and help live
in exactly one place.

    @dataclasses.dataclass
    class MyOptions:
        model_dir: str | None = option(None, "Where checkpoints go.")

    options = parse(MyOptions, ["prog", "--model_dir=/tmp/x"])
"""

import dataclasses
import types
import typing
from collections.abc import Sequence
from typing import TypeVar

from absl import flags

T = TypeVar("T")


def option(default, help: str, choices: Sequence[str] | None = None):
    """A dataclass field that is also a command-line flag (`choices` makes it an enum flag)."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


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
        if typing.get_origin(_flag_type(field)) in (list, tuple):
            _define_list_flag(field, flag_values, module_name)
        elif choices:
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


def _define_list_flag(field: dataclasses.Field, flag_values, module_name) -> None:
    """A comma-separated list flag for a `tuple[str, ...]` field (its default a tuple)."""
    flags.DEFINE_list(
        field.name,
        list(field.default),
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


def to_argv(options) -> list[str]:
    """The flags that give `options` back (fields that are None are left out): what a program
    passes to the processes it starts with its own options."""
    argv = []
    for field in dataclasses.fields(options):
        value = getattr(options, field.name)
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = str(value).lower()
        argv.append(f"--{field.name}={value}")
    return argv


# A program whose options are several dataclasses (a search: the pretraining run's options and
# the search's own) has the flags of all of them. A field declared by more than one class is
# one flag, with the default, help and choices of the last class that declares it; every
# class that declares it receives its value.


def merged_fields(classes: Sequence[type]) -> list:
    """The fields of `classes` by name, the last declaration of a name winning, in first order."""
    fields = {}
    for cls in classes:
        for field in dataclasses.fields(cls):
            fields[field.name] = field
    return list(fields.values())


def define_flags_all(
    classes: Sequence[type],
    flag_values: flags.FlagValues = flags.FLAGS,
    module_name: str | None = None,
) -> None:
    """Defines one absl flag per field name of the options dataclasses `classes`."""
    merged = dataclasses.make_dataclass(
        "ProgramOptions",
        [
            (f.name, f.type, dataclasses.field(default=f.default, metadata=f.metadata))
            for f in merged_fields(classes)
        ],
    )
    define_flags(merged, flag_values, module_name)


def from_flags_all(classes: Sequence[type], flag_values: flags.FlagValues = flags.FLAGS) -> tuple:
    """One options object per class in `classes`, from parsed flags."""
    return tuple(from_flags(cls, flag_values) for cls in classes)


def parse_all(classes: Sequence[type], argv: Sequence[str]) -> tuple:
    """Parses `argv` (program name first) into one object per class (no global state)."""
    flag_values = flags.FlagValues()
    define_flags_all(classes, flag_values)
    flag_values(list(argv))
    return from_flags_all(classes, flag_values)
