"""The one loader of the JSON files the project reads: experiments, search spaces, presets.

A file format is a dataclass whose fields are the file's fields, with their types:

    @dataclasses.dataclass
    class Preset:
        batch_sizes: list[int]
        description: str = ""

    preset = config_files.load(Preset, "cpu", "reality_check", "preset")

`load` finds the file (a path, or a name under configs/), reads its JSON and builds the
dataclass with `from_dict`, which checks missing and unknown fields and every value's type
(nested dataclasses, `list[...]`, `dict[str, ...]`, `X | None`) and raises ValueError naming the
file and the field's path (`phases[0].train_batch_size`). A format checks what types cannot
say in a `validate(where)` method, which `from_dict` calls with the file and the field's path.
"""

import dataclasses
import json
import os
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DIR = os.path.join(REPO_ROOT, "configs")

# Field metadata of a `list[SomeDataclass]` field written in the file as an object whose keys
# fill the named field of each element: {"peak_lr": {...}} -> [Parameter(name="peak_lr", ...)].
KEYED_BY = "config_files.keyed_by"


def keyed_by(name: str) -> dict:
    """Field metadata: the list is an object in the file, its keys are each element's `name`."""
    return {KEYED_BY: name}


def resolve(name_or_path: str, directory: str = CONFIG_DIR, what: str = "config") -> str:
    """Accepts a path, or the bare name of a file in `directory` (with or without .json)."""
    import tensorflow as tf  # gs:// paths; imported late so light tools do not pay for it

    if tf.io.gfile.exists(name_or_path):
        return name_or_path
    for candidate in (name_or_path, name_or_path + ".json"):
        path = os.path.join(directory, candidate)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(
        f"{what} '{name_or_path}' not found (neither a path nor a file in {directory})"
    )


def read_json(path: str) -> Any:
    """The JSON content of a file; ValueError naming the file if it is not JSON."""
    import tensorflow as tf

    with tf.io.gfile.GFile(path, "r") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON: {e}") from None


def load(cls: type[T], name_or_path: str, /, subdir: str = "", what: str = "config", **given) -> T:
    """The dataclass `cls` read from a file: a path, or a name in configs/<subdir>/."""
    path = resolve(name_or_path, os.path.join(CONFIG_DIR, subdir) if subdir else CONFIG_DIR, what)
    return from_dict(cls, read_json(path), path, **given)


def from_dict(cls: type[T], raw: Any, source: str, /, where: str = "", **given) -> T:
    """Builds the dataclass `cls` from the JSON object `raw`, checking names and types.

    `source` (the file) and `where` (the field path of `raw` in it) start every error
    message. Fields in `given` are not read from `raw` (a file giving them is an error) but
    passed as they are, e.g. the file's path.
    """
    if not isinstance(raw, dict):
        place = f"field '{where}'" if where else "the top level"
        raise ValueError(f"{source}: {place} must be a JSON object, got {raw!r}")
    fields = [f for f in dataclasses.fields(cls) if f.init and f.name not in given]
    here = f"{source}: {where}: " if where else f"{source}: "
    known = {f.name for f in fields}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{here}unknown field(s) {unknown}; expected some of {sorted(known)}")
    missing = sorted(
        f.name
        for f in fields
        if f.name not in raw
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    )
    if missing:
        raise ValueError(f"{here}missing field(s) {missing}")
    hints = typing.get_type_hints(cls)
    values = dict(given)
    for f in fields:
        if f.name in raw:
            path = f"{where}.{f.name}" if where else f.name
            values[f.name] = _value(hints[f.name], raw[f.name], source, path, f.metadata)
    instance = cls(**values)
    if hasattr(instance, "validate"):
        instance.validate(f"{source}: {where}" if where else source)
    return instance


_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a JSON object",
}


def _describe(kind) -> str:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        arms = [a for a in typing.get_args(kind) if a is not type(None)]
        return " or ".join(_describe(a) for a in arms) + (" or null" if len(arms) == 1 else "")
    if dataclasses.is_dataclass(kind):
        return "a JSON object"
    return _NAMES.get(origin or kind, getattr(kind, "__name__", str(kind)))


class _Mismatch(ValueError):
    """A value of the wrong type (a union tries its next arm)."""


def _value(kind, value, source: str, path: str, metadata=None):
    """`value` checked against the annotation `kind` (nested values converted)."""
    if kind is Any:
        return value
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(kind):
            return None
        for arm in typing.get_args(kind):
            if arm is type(None):
                continue
            try:
                return _value(arm, value, source, path, metadata)
            except _Mismatch:
                continue
        raise _mismatch(kind, value, source, path)
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise _mismatch(kind, value, source, path)
        return from_dict(kind, value, source, path)
    if origin is list or kind is list:
        (item,) = typing.get_args(kind) or (Any,)
        keyed = (metadata or {}).get(KEYED_BY)
        if keyed:
            if not isinstance(value, dict):
                raise _mismatch(dict, value, source, path)
            return [
                from_dict(item, v, source, f"{path}.{k}", **{keyed: k}) for k, v in value.items()
            ]
        if not isinstance(value, list):
            raise _mismatch(kind, value, source, path)
        return [_value(item, v, source, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict or kind is dict:
        _, item = typing.get_args(kind) or (str, Any)
        if not isinstance(value, dict):
            raise _mismatch(kind, value, source, path)
        return {k: _value(item, v, source, f"{path}.{k}") for k, v in value.items()}
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _mismatch(kind, value, source, path)
        return float(value)
    if kind is int and isinstance(value, bool):
        raise _mismatch(kind, value, source, path)
    if not isinstance(value, kind):
        raise _mismatch(kind, value, source, path)
    return value


def _mismatch(kind, value, source: str, path: str) -> _Mismatch:
    return _Mismatch(f"{source}: field '{path}' must be {_describe(kind)}, got {value!r}")
