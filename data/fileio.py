"""Atomic file writes: the one place that writes a temporary name and renames it into place.

A reader (or a job killed mid-write) then sees either the old file or the whole new one,
never half of it. Paths may be local or any `tf.io.gfile` URL (gs://...); local paths need
no TensorFlow, so light command-line tools do not pay for importing it.
"""

import json
import os
import uuid
from collections.abc import Callable
from typing import Any


def write_atomic(path, content: str | bytes) -> None:
    """Writes `content` (text or bytes) to `path` through a temporary name in the same folder."""
    path = os.fspath(path)
    if "://" not in path:
        _write_local(path, content)
        return
    import tensorflow as tf

    directory = os.path.dirname(path)
    if directory:
        tf.io.gfile.makedirs(directory)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
    mode = "wb" if isinstance(content, bytes) else "w"
    try:
        with tf.io.gfile.GFile(tmp, mode) as f:
            f.write(content)
        tf.io.gfile.rename(tmp, path, overwrite=True)
    except BaseException:
        if tf.io.gfile.exists(tmp):
            tf.io.gfile.remove(tmp)
        raise


def _write_local(path: str, content: str | bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        with open(
            tmp,
            "wb" if isinstance(content, bytes) else "w",
            encoding=None if isinstance(content, bytes) else "utf-8",
        ) as f:
            f.write(content)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json_atomic(path, obj: Any, indent: int = 2) -> None:
    """Writes `obj` as JSON (UTF-8, non-ASCII kept) to `path` atomically."""
    write_atomic(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def write_directory_atomic(directory, write: Callable[[str], Any]) -> str:
    """Runs `write(tmp_dir)` on a new directory beside `directory`, then swaps it in.

    For outputs that are directories (a SavedModel, an exported checkpoint). A failed
    write leaves `directory` untouched and nothing behind; an existing `directory` is moved
    aside before the new one is renamed in and removed after, so a reader finds the old
    one or the whole new one (renames are atomic on local file systems).
    """
    import tensorflow as tf

    directory = os.fspath(directory).rstrip("/")
    tmp_dir = f"{directory}.tmp-{uuid.uuid4().hex[:12]}"
    tf.io.gfile.makedirs(tmp_dir)
    try:
        write(tmp_dir)
    except BaseException:
        tf.io.gfile.rmtree(tmp_dir)
        raise
    old_dir = None
    if tf.io.gfile.exists(directory):
        old_dir = f"{directory}.old-{uuid.uuid4().hex[:12]}"
        tf.io.gfile.rename(directory, old_dir)
    tf.io.gfile.rename(tmp_dir, directory)
    if old_dir:
        tf.io.gfile.rmtree(old_dir)
    return directory
