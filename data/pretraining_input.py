"""tf.data input pipeline for BERT pretraining TFRecords.

Reads the records of `data.create_pretraining_data` (or of the original
google-research/bert script): per-host file (or record) sharding, parallel
interleave, shuffle, repeat, batched parsing with static shapes, optional
dynamic masking of unmasked records, prefetch.

    dataset = build_dataset("out/train-*", batch_size=32, seq_length=128,
                            max_predictions_per_seq=20, is_training=True,
                            input_context=ctx, seed=1)

`batch_size` is the per-input-pipeline batch (`ctx.get_per_replica_batch_size`
times replicas per host). A malformed record fails with its file's name.
"""

import json
import os
import random
from typing import Dict, List, Optional, Sequence, Union

import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
INFO_SUFFIX = ".info.json"  # Written next to unmasked files by create_pretraining_data.
FEATURE_NAMES = (
    "input_ids",
    "input_mask",
    "segment_ids",
    "masked_lm_positions",
    "masked_lm_ids",
    "masked_lm_weights",
    "next_sentence_labels",
)


def list_files(file_pattern: Union[str, Sequence[str]]) -> List[str]:
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


def _feature_lengths(seq_length: int, max_predictions_per_seq: int) -> Dict[str, int]:
    return {
        "input_ids": seq_length,
        "input_mask": seq_length,
        "segment_ids": seq_length,
        "masked_lm_positions": max_predictions_per_seq,
        "masked_lm_ids": max_predictions_per_seq,
        "masked_lm_weights": max_predictions_per_seq,
        "next_sentence_labels": 1,
    }


def _dtype(name: str):
    return tf.float32 if name == "masked_lm_weights" else tf.int64


def _check_first_record(
    path: str, seq_length: int, max_predictions_per_seq: int, dynamic_masking: bool
):
    """Parses the first record of `path` eagerly; raises ValueError naming the
    file and the feature when it is unreadable or does not match the spec."""
    try:
        first = next(iter(tf.data.TFRecordDataset(path).take(1)), None)
    except (tf.errors.OpError, OSError) as e:
        message = getattr(e, "message", str(e))
        raise ValueError(f"{path}: cannot read TFRecords ({message}).") from None
    if first is None:
        raise ValueError(f"{path}: file holds no records.")
    try:
        example = tf.train.Example.FromString(first.numpy())
    except Exception:  # protobuf's DecodeError; its module path varies.
        raise ValueError(f"{path}: first record is not a tf.train.Example.") from None
    for name, length in _feature_lengths(seq_length, max_predictions_per_seq).items():
        if name not in example.features.feature:
            raise ValueError(
                f"{path}: record 0 has no feature {name!r}; expected the BERT "
                f"pretraining features {list(FEATURE_NAMES)}."
            )
        feature = example.features.feature[name]
        is_float = _dtype(name) == tf.float32
        values = feature.float_list.value if is_float else feature.int64_list.value
        if len(values) != length:
            kind = "float" if is_float else "int64"
            raise ValueError(
                f"{path}: record 0 feature {name!r} has {len(values)} {kind} values; "
                f"expected {length} (seq_length={seq_length}, "
                f"max_predictions_per_seq={max_predictions_per_seq})."
            )
    has_masks = any(example.features.feature["masked_lm_weights"].float_list.value)
    if dynamic_masking and has_masks:
        raise ValueError(
            f"{path}: records are already masked (masked_lm_weights are set), but "
            "dynamic_masking=True expects unmasked records (--no_masking)."
        )
    if not dynamic_masking and not has_masks:
        raise ValueError(
            f"{path}: records are unmasked (all masked_lm_weights are 0); "
            "use dynamic_masking=True for them."
        )


def check_all_records(path: str):
    """Reads every record of `path` (checking TFRecord CRCs); raises ValueError
    naming the file and the record number at the first corrupt record."""
    count = 0
    try:
        for count, _ in enumerate(tf.data.TFRecordDataset(path), start=1):
            pass
    except tf.errors.OpError as e:
        raise ValueError(
            f"{path}: corrupt TFRecord after {count} good record(s) ({e.message.strip()})."
        ) from None


def _read_info(path: str) -> Optional[dict]:
    info_path = path + INFO_SUFFIX
    if not tf.io.gfile.exists(info_path):
        return None
    with tf.io.gfile.GFile(info_path) as f:
        return json.load(f)


def _parse_batch(filenames, records, seq_length: int, max_predictions_per_seq: int):
    """Parses a batch of serialized Examples into static-shape tensors.

    Features are parsed as variable-length and checked, so that a record with
    a missing or wrongly sized feature fails naming its file.
    """
    batch_size = records.shape[0]
    lengths = _feature_lengths(seq_length, max_predictions_per_seq)
    parsed = tf.io.parse_example(
        records, {name: tf.io.VarLenFeature(_dtype(name)) for name in FEATURE_NAMES}
    )
    features = {}
    for name in FEATURE_NAMES:
        sparse = parsed[name]
        counts = tf.math.bincount(
            tf.cast(sparse.indices[:, 0], tf.int32), minlength=batch_size, maxlength=batch_size
        )
        bad = tf.not_equal(counts, lengths[name])
        check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(bad)),
            [
                "Bad pretraining record in file",
                tf.boolean_mask(filenames, bad)[:1],
                f"feature '{name}' has",
                tf.boolean_mask(counts, bad)[:1],
                f"values; expected {lengths[name]} (missing or wrong length).",
            ],
        )
        with tf.control_dependencies([check]):
            values = tf.reshape(sparse.values, [batch_size, lengths[name]])
        features[name] = values if name == "masked_lm_weights" else tf.cast(values, tf.int32)
    features["next_sentence_labels"] = tf.reshape(features["next_sentence_labels"], [batch_size])
    return features


def dynamic_mask(
    features: Dict[str, tf.Tensor],
    seed,
    max_predictions_per_seq: int,
    vocab_size: int,
    mask_token_id: int = 103,
    masked_lm_prob: float = 0.15,
    special_token_ids: Sequence[int] = (0, 101, 102),
) -> Dict[str, tf.Tensor]:
    """Masks a batch of unmasked features, BERT's rule, with stateless randomness.

    Candidates are the real (input_mask=1) non-special tokens; num_to_predict
    = min(max_predictions_per_seq, max(1, round(length * masked_lm_prob)))
    with length = real tokens incl. [CLS]/[SEP] (as when creating the data);
    chosen uniformly; 80% -> mask_token_id, 10% kept, 10% -> uniform random id
    in [0, vocab_size). `seed` is an int64 [2] tensor (stateless RNG seed).
    """
    input_ids, input_mask = features["input_ids"], features["input_mask"]
    batch_size, seq_length = input_ids.shape
    p = max_predictions_per_seq
    seed = tf.cast(seed, tf.int64)
    seeds = [seed + tf.constant([0, i], tf.int64) * (1 << 40) for i in range(3)]
    is_special = tf.reduce_any(
        input_ids[:, :, None] == tf.constant(list(special_token_ids), tf.int32), axis=-1
    )
    candidate = (input_mask == 1) & tf.logical_not(is_special)
    # float64 and round-half-to-even, as Python's round() in the data creator.
    length = tf.cast(tf.reduce_sum(input_mask, axis=1), tf.float64)
    num_to_predict = tf.minimum(
        p,
        tf.maximum(
            1, tf.cast(tf.round(length * tf.constant(masked_lm_prob, tf.float64)), tf.int32)
        ),
    )
    keys = tf.where(candidate, tf.random.stateless_uniform([batch_size, seq_length], seeds[0]), 2.0)
    neg_keys, order = tf.math.top_k(-keys, k=min(p, seq_length))  # p smallest keys
    take = (tf.range(order.shape[1])[None, :] < num_to_predict[:, None]) & (
        -neg_keys < 2.0
    )  # Fewer candidates than num_to_predict: take all.
    positions = tf.sort(tf.where(take, order, seq_length), axis=1)
    if order.shape[1] < p:
        positions = tf.pad(positions, [[0, 0], [0, p - order.shape[1]]], constant_values=seq_length)
    valid = positions < seq_length
    positions = tf.where(valid, positions, 0)
    labels = tf.where(valid, tf.gather(input_ids, positions, batch_dims=1), 0)
    draw = tf.random.stateless_uniform([batch_size, p], seeds[1])
    random_ids = tf.random.stateless_uniform(
        [batch_size, p], seeds[2], minval=0, maxval=vocab_size, dtype=tf.int32
    )
    replacement = tf.where(draw < 0.8, mask_token_id, tf.where(draw < 0.9, labels, random_ids))
    hit = (
        tf.one_hot(positions, seq_length, on_value=True, off_value=False, dtype=tf.bool)
        & valid[:, :, None]
    )  # [B, P, S]
    new_values = tf.reduce_sum(tf.where(hit, replacement[:, :, None], 0), axis=1)
    features = dict(features)
    features["input_ids"] = tf.where(tf.reduce_any(hit, axis=1), new_values, input_ids)
    features["masked_lm_positions"] = positions
    features["masked_lm_ids"] = labels
    features["masked_lm_weights"] = tf.cast(valid, tf.float32)
    return features


def build_dataset(
    file_pattern: Union[str, Sequence[str]],
    batch_size: int,
    seq_length: int,
    max_predictions_per_seq: int,
    is_training: bool,
    input_context: Optional[tf.distribute.InputContext] = None,
    seed: Optional[int] = None,
    dynamic_masking: bool = False,
    vocab_size: Optional[int] = None,
    mask_token_id: int = 103,
    masked_lm_prob: float = 0.15,
    special_token_ids: Sequence[int] = (0, 101, 102),
    num_parallel_calls: int = AUTOTUNE,
    shuffle_buffer_size: int = 10000,
    cycle_length: int = 8,
    validate_files: bool = True,
    check_every_record: bool = False,
) -> tf.data.Dataset:
    """The pretraining dataset of dicts with static shapes (drop_remainder).

    Output: input_ids, input_mask, segment_ids [B, seq_length] int32;
    masked_lm_positions, masked_lm_ids [B, P] int32; masked_lm_weights
    [B, P] float32; next_sentence_labels [B] int32 (1 = random next).

    Args:
      file_pattern: comma-separated globs or a list of them.
      batch_size: the per-input-pipeline batch size.
      is_training: shuffle and repeat forever.
      input_context: tf.distribute.InputContext: pipeline i of n reads every
        n-th file (or every n-th record when there are fewer files than
        pipelines), so pipelines see disjoint data.
      seed: makes shuffling and dynamic masks deterministic.
      dynamic_masking: mask unmasked records here, freshly for every batch
        (so every epoch); `vocab_size` is read from the `.info.json` written
        by create_pretraining_data when not given.
      validate_files: parse the first record of every file up front so that
        a wrong or unmasked/masked-mismatched file fails early with its name.
        Later records with a missing or wrongly sized feature fail at read
        time, also naming their file.
      check_every_record: also read all records up front, so that TFRecord
        corruption (bad length or CRC, which TensorFlow reports without a
        file name) fails here naming the file. Costs one pass over the data.
    """
    files = list_files(file_pattern)
    if validate_files:
        for path in files:
            _check_first_record(path, seq_length, max_predictions_per_seq, dynamic_masking)
    if check_every_record:
        for path in files:
            check_all_records(path)
    if dynamic_masking and vocab_size is None:
        info = _read_info(files[0])
        if info is None or "vocab_size" not in info:
            raise ValueError(
                f"dynamic_masking needs vocab_size: pass it, or keep the "
                f"{files[0] + INFO_SUFFIX} written by create_pretraining_data."
            )
        vocab_size = int(info["vocab_size"])

    num_pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    shard_files = num_pipelines > 1 and len(files) >= num_pipelines
    if shard_files:
        files = files[pipeline_id::num_pipelines]
    deterministic = seed is not None

    dataset = tf.data.Dataset.from_tensor_slices(files)
    if is_training:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)

    def read_file(path):
        records = tf.data.TFRecordDataset(path)
        if num_pipelines > 1 and not shard_files:
            # Sharding each file's records keeps pipelines disjoint whatever
            # order the (possibly non-deterministic) interleave produces.
            records = records.shard(num_pipelines, pipeline_id)
        return records.map(lambda record: (path, record))

    dataset = dataset.interleave(
        read_file,
        cycle_length=min(cycle_length, len(files)),
        num_parallel_calls=num_parallel_calls,
        deterministic=deterministic,
    )
    if is_training:
        dataset = dataset.shuffle(
            shuffle_buffer_size, seed=seed, reshuffle_each_iteration=True
        ).repeat()
    dataset = dataset.batch(batch_size, drop_remainder=True)
    dataset = dataset.map(
        lambda paths, records: _parse_batch(paths, records, seq_length, max_predictions_per_seq),
        num_parallel_calls=num_parallel_calls,
        deterministic=deterministic,
    )
    if dynamic_masking:
        # A counter after repeat() gives every batch, in every epoch, its own
        # stateless seed: fresh masks each epoch, reproducible for a seed.
        base_seed = seed if seed is not None else random.SystemRandom().randrange(1 << 31)
        base_seed = base_seed * 1000003 + pipeline_id
        dataset = tf.data.Dataset.zip((dataset, tf.data.Dataset.counter()))
        dataset = dataset.map(
            lambda features, step: dynamic_mask(
                features,
                tf.stack([tf.constant(base_seed, tf.int64), step]),
                max_predictions_per_seq,
                vocab_size,
                mask_token_id,
                masked_lm_prob,
                special_token_ids,
            ),
            num_parallel_calls=num_parallel_calls,
            deterministic=deterministic,
        )
    options = tf.data.Options()
    # Sharding is done here; keep tf.distribute from sharding again.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    options.deterministic = deterministic
    return dataset.with_options(options).prefetch(AUTOTUNE)
