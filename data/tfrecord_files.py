"""TFRecord files of pretraining data: listing them, and reading them checked to their end.

A truncated or corrupt file (an unreadable TFRecord) raises TensorFlow's DataLossError, which
names no file: `find_corrupt_file` then finds and names it. `read_records_checked` reads one
file as its own `TFRecordDataset` whose bytes are accounted, so a short read fails naming the
file or (skipping corrupt tails) is logged and counted in a `CorruptRecordCounter`.
"""

import os
import threading
from collections.abc import Sequence

import tensorflow as tf
from absl import logging

INFO_SUFFIX = ".info.json"  # Written next to unmasked files by create_pretraining_data.


def list_files(file_pattern: str | Sequence[str]) -> list[str]:
    """Files matching comma-separated globs (or a list of globs), sorted.

    Side files (`*.info.json`) and temporary files of an unfinished writer
    (`*.tmp-<pid>`) are ignored. Raises FileNotFoundError if nothing matches.
    """
    patterns = file_pattern.split(",") if isinstance(file_pattern, str) else list(file_pattern)
    files = []
    for pattern in patterns:
        pattern = os.fspath(pattern).strip()
        if not pattern:
            continue
        matched = [
            f
            for f in tf.io.gfile.glob(pattern)
            if not f.endswith(INFO_SUFFIX) and ".tmp-" not in os.path.basename(f)
        ]
        if not matched:
            raise FileNotFoundError(f"No pretraining TFRecord file matches {pattern!r}.")
        files.extend(sorted(matched))
    return files


def find_corrupt_file(file_pattern) -> ValueError | None:
    """The error naming the first file of `file_pattern` that does not read to its end.

    For a host that caught TensorFlow's DataLossError (which names no file) from a dataset
    of `build_dataset`: each file is read once more, so call it only after such an error.
    None if every file reads (the error was elsewhere, e.g. a transient read failure).
    """
    for path in list_files(file_pattern):
        try:
            check_all_records(path)
        except ValueError as error:
            return ValueError(
                f"Corrupt TFRecord file: {error} Skip the rest of such files with "
                "skip_corrupt_records=True (--skip_corrupt_records), or scan every file up "
                "front with check_every_record=True."
            )
    return None


def check_all_records(path: str):
    """Reads every record of `path` (checking TFRecord CRCs); raises ValueError
    naming the file and the record number at the first corrupt record."""
    count = 0
    try:
        for _ in tf.data.TFRecordDataset(path):
            count += 1
    except tf.errors.OpError as e:
        raise ValueError(
            f"{path}: corrupt TFRecord after {count} good record(s) ({e.message.strip()})."
        ) from None


class CorruptRecordCounter:
    """Running counts of the corrupt file tails that `build_dataset` skipped.

    With `skip_corrupt_records=True` every skip (a file whose records stop being readable
    before its end: truncated, bad length or CRC) logs a WARNING naming the file, and is
    counted here; `metrics()` gives the counts for logs and summaries. A corrupt file is
    skipped again at each pass over the data, so `corrupt_tails_skipped` keeps growing with
    the epochs while `corrupt_files` counts distinct files. The records in a skipped tail
    cannot be counted (their framing is lost); `corrupt_bytes_skipped` measures them.
    Reports come from tf.data's threads (through `tf.py_function`, so the input pipeline
    must run in this Python process, as it does on TPU VMs and with Mirrored strategies).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._files = set()
        self._tails = 0
        self._bytes = 0

    def report(self, path, good_records, offset, size) -> bool:
        """Counts and logs one skipped tail (called by the input pipeline); returns False."""
        path = path.numpy().decode("utf-8") if hasattr(path, "numpy") else str(path)
        good_records, offset, size = int(good_records), int(offset), int(size)
        with self._lock:  # Logged under the lock so that the running counts are in order.
            self._files.add(path)
            self._tails += 1
            self._bytes += size - offset
            logging.warning(
                "Corrupt TFRecord file %s: unreadable record starting at byte offset %d of %d "
                "after %d good record(s); skipped the remaining %d byte(s) of the file "
                "(skip_corrupt_records). Running count: %d corrupt tail(s) skipped in %d file(s).",
                path,
                offset,
                size,
                good_records,
                size - offset,
                self._tails,
                len(self._files),
            )
        return False

    def metrics(self) -> dict[str, int]:
        """{"corrupt_files", "corrupt_tails_skipped", "corrupt_bytes_skipped"} so far."""
        with self._lock:
            return {
                "corrupt_files": len(self._files),
                "corrupt_tails_skipped": self._tails,
                "corrupt_bytes_skipped": self._bytes,
            }


# TFRecord framing around each record's data: length (8), its CRC (4), data CRC (4).
_RECORD_OVERHEAD = 16
_CHECK_CHUNK = 256  # Records accounted per step (per-record tf.data functions are slow).


def read_records_checked(
    path,
    size,
    skip_corrupt_records: bool = False,
    counter: CorruptRecordCounter | None = None,
) -> tf.data.Dataset:
    """The records of one uncompressed TFRecord file of `size` bytes, checked to its end.

    The file is read until its first unreadable record (`ignore_errors` ends a
    `TFRecordDataset` of one file there) and the bytes of the records read are summed, so
    stopping short of `size` means a truncated or corrupt tail. Then this fails (an
    InvalidArgumentError naming the file, the byte offset where the bad record starts and
    the good records before it) or, with `skip_corrupt_records`, reports the file to
    `counter` and ends it there. The offset is TensorFlow's "truncated record at <offset>";
    its "corrupted record at <offset>" (a bad data CRC) points 12 bytes later, at the data.
    `path` and `size` may be tensors (inside an interleave).
    """
    path = tf.convert_to_tensor(path, tf.string)
    size = tf.cast(size, tf.int64)
    counter = counter or DEFAULT_CORRUPT_RECORD_COUNTER

    def corrupt_tail(count, offset):
        if skip_corrupt_records:
            reported = tf.py_function(counter.report, [path, count, offset, size], tf.bool)
            return tf.ensure_shape(reported, [])
        message = tf.strings.join(
            [
                "Corrupt TFRecord file ",
                path,
                ": unreadable record starting at byte offset ",
                tf.strings.as_string(offset),
                " of ",
                tf.strings.as_string(size),
                " after ",
                tf.strings.as_string(count),
                (
                    " good record(s) (truncated, or a bad length or CRC). Skip the rest of such "
                    "files with skip_corrupt_records=True (--skip_corrupt_records), or scan "
                    "every file up front with check_every_record=True."
                ),
            ]
        )
        with tf.control_dependencies([tf.debugging.Assert(False, [message])]):
            return tf.constant(False)

    def account(state, chunk):
        # state: [records, bytes] read so far. The empty chunk appended below marks the end.
        num = tf.size(chunk, tf.int64)
        num_bytes = tf.reduce_sum(tf.cast(tf.strings.length(chunk), tf.int64))
        state = state + tf.stack([num, num_bytes + _RECORD_OVERHEAD * num])
        short = tf.equal(num, 0) & tf.less(state[1], size)
        check = tf.cond(short, lambda: corrupt_tail(state[0], state[1]), lambda: tf.constant(False))
        with tf.control_dependencies([check]):
            return state, tf.identity(chunk)

    chunks = tf.data.TFRecordDataset(path).ignore_errors(log_warning=True).batch(_CHECK_CHUNK)
    chunks = chunks.concatenate(tf.data.Dataset.from_tensors(tf.zeros([0], tf.string)))
    return chunks.scan(tf.zeros([2], tf.int64), account).unbatch()


DEFAULT_CORRUPT_RECORD_COUNTER = CorruptRecordCounter()
