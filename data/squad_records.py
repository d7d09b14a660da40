"""SQuAD features -> TFRecords or padded arrays, and the tf.data reader.

TFRecords use the reference int64 features; the reader gives int32 dicts with static
shapes. The prediction input pads its final batch with dummy features whose unique id is
PADDING_UNIQUE_ID, so that every real feature is predicted while the predict step keeps
static shapes (XLA/TPU).
"""

import os
import uuid
from collections.abc import Iterable, Sequence

import numpy as np
import tensorflow as tf

from data.squad_features import InputFeatures

PADDING_UNIQUE_ID = -1  # unique id of the dummy features that pad the last predict batch.

MODEL_INPUT_KEYS = ("input_ids", "input_mask", "segment_ids")
LABEL_KEYS = ("start_positions", "end_positions")

# -----------------------------------------------------------------------------
# Features -> TFRecords / arrays, and the tf.data reader.
# -----------------------------------------------------------------------------


def _int64_feature(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def feature_to_tf_example(feature: InputFeatures, is_training: bool) -> tf.train.Example:
    """The reference TFRecord layout; training adds start/end positions."""
    fields = {
        "unique_ids": _int64_feature([feature.unique_id]),
        "input_ids": _int64_feature(feature.input_ids),
        "input_mask": _int64_feature(feature.input_mask),
        "segment_ids": _int64_feature(feature.segment_ids),
    }
    if is_training:
        if feature.start_position is None:
            raise ValueError(
                f"Feature {feature.unique_id} (example {feature.example_index}) has "
                "no answer position; training features need one."
            )
        fields["start_positions"] = _int64_feature([feature.start_position])
        fields["end_positions"] = _int64_feature([feature.end_position])
    return tf.train.Example(features=tf.train.Features(feature=fields))


class FeatureWriter:
    """Writes InputFeatures to a TFRecord file atomically (temp name, then rename).

    with FeatureWriter(path, is_training=True) as writer:
      convert_examples_to_features(..., output_fn=writer.process_feature)
    """

    def __init__(self, filename, is_training: bool):
        self.filename = os.fspath(filename)
        self.is_training = is_training
        self.num_features = 0
        directory = os.path.dirname(self.filename)
        if directory:
            tf.io.gfile.makedirs(directory)
        # Streamed, so not data.fileio.write_atomic; the temporary name is the same kind.
        self._temp_name = f"{self.filename}.tmp-{uuid.uuid4().hex[:12]}"
        self._writer = tf.io.TFRecordWriter(self._temp_name)

    def process_feature(self, feature: InputFeatures) -> None:
        self._writer.write(feature_to_tf_example(feature, self.is_training).SerializeToString())
        self.num_features += 1

    def close(self) -> None:
        self._writer.close()
        tf.io.gfile.rename(self._temp_name, self.filename, overwrite=True)

    def abort(self) -> None:
        self._writer.close()
        tf.io.gfile.remove(self._temp_name)

    def __enter__(self) -> "FeatureWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_features(features: Iterable[InputFeatures], filename, is_training: bool) -> int:
    """Writes all `features` to `filename`; returns how many were written."""
    with FeatureWriter(filename, is_training) as writer:
        for feature in features:
            writer.process_feature(feature)
    return writer.num_features


def _padding_feature(seq_length: int) -> dict[str, np.ndarray]:
    # One unmasked position keeps the attention softmax well defined for dummies.
    input_mask = np.zeros([seq_length], np.int32)
    input_mask[0] = 1
    return {
        "unique_ids": np.int32(PADDING_UNIQUE_ID),
        "input_ids": np.zeros([seq_length], np.int32),
        "input_mask": input_mask,
        "segment_ids": np.zeros([seq_length], np.int32),
    }


def _cut_to_longest(batch):
    # The masks are prefixes of ones: only padding is cut.
    longest = tf.reduce_max(tf.reduce_sum(batch["input_mask"], axis=1))
    return {k: v[:, :longest] if v.shape.rank == 2 else v for k, v in batch.items()}


def features_to_arrays(
    features: Sequence[InputFeatures], is_training: bool = False, pad_to_multiple_of: int = 1
) -> dict[str, np.ndarray]:
    """In-memory int32 arrays of `features`.

    For prediction, `pad_to_multiple_of=batch_size` appends dummy features
    (unique id -1, ignored by postprocessing) so every batch is full.
    """
    if not features:
        raise ValueError("features_to_arrays needs at least one feature.")
    seq_length = len(features[0].input_ids)
    arrays = {
        "unique_ids": np.array([f.unique_id for f in features], np.int32),
        "input_ids": np.array([f.input_ids for f in features], np.int32),
        "input_mask": np.array([f.input_mask for f in features], np.int32),
        "segment_ids": np.array([f.segment_ids for f in features], np.int32),
    }
    if is_training:
        arrays["start_positions"] = np.array([f.start_position for f in features], np.int32)
        arrays["end_positions"] = np.array([f.end_position for f in features], np.int32)
        return arrays
    num_padding = -len(features) % pad_to_multiple_of
    if num_padding:
        pad = _padding_feature(seq_length)
        arrays = {
            k: np.concatenate([v, np.stack([pad[k]] * num_padding)]) for k, v in arrays.items()
        }
    return arrays


def build_squad_dataset(
    file_pattern,
    batch_size: int,
    seq_length: int,
    is_training: bool,
    input_context: tf.distribute.InputContext | None = None,
    seed: int | None = None,
    shuffle_buffer_size: int = 10000,
    length_bucket: tuple[int, int] | None = None,
    static_length: bool = True,
    cut_to_longest: bool = False,
) -> tf.data.Dataset:
    """tf.data pipeline over SQuAD TFRecords: batches of int32 dicts, of static shapes unless
    `static_length=False` or `cut_to_longest`.

    `batch_size` is the per-input-pipeline batch. Training: the features are
    sharded by `input_context`, repeated, shuffled and batched with
    drop_remainder. Prediction: every feature once, in file order, the last
    batch filled up with dummy features (unique_ids == -1), so that no feature
    is dropped and shapes stay static. Keys: input_ids, input_mask, segment_ids
    ([B, seq_length]), and start_positions, end_positions ([B]) for training or
    unique_ids ([B]) for prediction.

    `length_bucket=(shorter, length)` keeps only the windows of more than `shorter` and at
    most `length` real tokens (`data.length_buckets`), cut to `length` tokens: the batches
    are [B, length]; for training, the bucket's windows are read once and kept in memory. The
    records stay padded to `seq_length`. With `static_length=False` the
    batches' spec is [B, None] (their values still [B, length]): every bucket's dataset then
    has the same spec, so one traced step serves them all and XLA compiles each length when it
    first runs (CPU/GPU); a TPU needs the static lengths.

    `cut_to_longest` (prediction without XLA): each batch is cut to its longest window, spec
    [B, None]. With the record sorted by length, as `bert.run_squad` writes eval.tf_record,
    a batch holds windows of nearly one length and little padding is left.
    """
    if cut_to_longest and is_training:
        raise ValueError("cut_to_longest is for prediction (is_training=False)")
    patterns = [file_pattern] if isinstance(file_pattern, (str, os.PathLike)) else file_pattern
    files = sorted(f for p in patterns for f in tf.io.gfile.glob(os.fspath(p)))
    if not files:
        raise FileNotFoundError(f"No SQuAD TFRecord files match {file_pattern!r}.")

    name_to_features = {
        "unique_ids": tf.io.FixedLenFeature([], tf.int64),
        "input_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
        "input_mask": tf.io.FixedLenFeature([seq_length], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
    }
    if is_training:
        name_to_features["start_positions"] = tf.io.FixedLenFeature([], tf.int64)
        name_to_features["end_positions"] = tf.io.FixedLenFeature([], tf.int64)
    shorter, length = length_bucket or (0, seq_length)
    if not 0 <= shorter < length <= seq_length:
        raise ValueError(
            f"length_bucket {length_bucket} must be (shorter, length) with "
            f"0 <= shorter < length <= {seq_length}"
        )

    def parse(record):
        parsed = tf.io.parse_single_example(record, name_to_features)
        parsed = {k: tf.cast(v, tf.int32) for k, v in parsed.items()}
        if is_training:
            parsed.pop("unique_ids")
        return parsed

    def in_bucket(features):
        real = tf.reduce_sum(features["input_mask"])
        return tf.logical_and(real > shorter, real <= length)

    def cut(features):  # The mask is a prefix of ones: only padding is cut.
        # A value that shape inference cannot see leaves the length out of the spec.
        end = length if static_length else tf.compat.v1.placeholder_with_default(length, [])
        return {k: v[:end] if v.shape.rank == 1 else v for k, v in features.items()}

    dataset = tf.data.TFRecordDataset(files)
    if input_context is not None and input_context.num_input_pipelines > 1:
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    if length_bucket:  # Before repeat and shuffle: every epoch of a bucket holds its windows.
        dataset = dataset.filter(in_bucket).map(cut)
        if is_training:
            # The bucket's windows in memory: repeating would otherwise read and parse the
            # whole file for each pass over a bucket, which for a small bucket is thousands of
            # passes to fill the shuffle buffer (57 s before the first batch of a 72-window
            # bucket of 3,360) and many records read per window kept.
            dataset = dataset.cache()
    if is_training:
        dataset = dataset.repeat()
        dataset = dataset.shuffle(shuffle_buffer_size, seed=seed)
    if not is_training and batch_size > 1:
        padding = tf.data.Dataset.from_tensors(_padding_feature(length))
        # batch_size - 1 dummies fill the last partial batch; a full last batch
        # leaves them all in a remainder that drop_remainder discards.
        dataset = dataset.concatenate(padding.repeat(batch_size - 1))
    dataset = dataset.batch(batch_size, drop_remainder=True)
    if cut_to_longest:
        dataset = dataset.map(_cut_to_longest)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    # No autotuning thread: it sleeps up to a minute between tunings, and deleting an iterator
    # waits for it, which stalled the end of fine-tuning by up to 45 s. Parsing is cheap.
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)
