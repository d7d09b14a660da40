"""tf.data input pipeline for BERT pretraining TFRecords.

Reads the records of `data.create_pretraining_data` (or of the original
google-research/bert script): per-host file (or record) sharding, parallel
interleave, shuffle, repeat, batched parsing with static shapes, optional
dynamic masking of unmasked records, prefetch.

    dataset = build_dataset("out/train-*", batch_size=32, seq_length=128,
                            max_predictions_per_seq=20, is_training=True,
                            input_context=ctx, seed=1)

`batch_size` is the per-input-pipeline batch (`ctx.get_per_replica_batch_size`
times replicas per host). A malformed record fails with its file's name. A truncated or
corrupt file (an unreadable TFRecord) raises TensorFlow's DataLossError, which names no file:
`find_corrupt_file` then finds and names it (`bert.run_pretraining` does this). With
`skip_corrupt_records=True` each file is read as its own `TFRecordDataset` whose bytes are
accounted (`read_records_checked`), and the rest of a bad file is skipped, with a WARNING
naming it and running counts kept in a `CorruptRecordCounter`.
"""

import json
import random
from collections.abc import Sequence

import tensorflow as tf

from data.pretraining_instances import FEATURE_NAMES  # noqa: F401 (re-exported)

# Re-exported: file listing and checked reading live in data.tfrecord_files.
from data.tfrecord_files import (  # noqa: F401
    DEFAULT_CORRUPT_RECORD_COUNTER,
    INFO_SUFFIX,
    CorruptRecordCounter,
    check_all_records,
    find_corrupt_file,
    list_files,
    read_records_checked,
)

AUTOTUNE = tf.data.AUTOTUNE
BERT_MASK_ID = 103  # [MASK] of the original BERT vocabularies.
BERT_SPECIAL_IDS = (0, 101, 102)  # [PAD], [CLS], [SEP] of the original BERT vocabularies.


def _feature_lengths(seq_length: int, max_predictions_per_seq: int) -> dict[str, int]:
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


def check_vocab_size(file_pattern, vocab_size: int, model_source: str = "") -> None:
    """Refuses records made with another vocabulary than the model's.

    `create_pretraining_data` records its vocabulary size in `<file>.info.json`; ids from a
    larger vocabulary would index past the model's embedding table (clamped silently under
    XLA), from a smaller one mean the wrong vocabulary. Files without the side file pass.
    """
    first = list_files(file_pattern)[0]
    info = _read_info(first) or {}
    if "vocab_size" in info and int(info["vocab_size"]) != vocab_size:
        source = f" ({model_source})" if model_source else ""
        raise ValueError(
            f"{first + INFO_SUFFIX}: the records were made with a vocabulary of "
            f"{info['vocab_size']} entries, but the model's vocab_size is {vocab_size}{source}"
        )


def _read_info(path: str) -> dict | None:
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
    features: dict[str, tf.Tensor],
    seed,
    max_predictions_per_seq: int,
    vocab_size: int,
    mask_token_id: int = BERT_MASK_ID,
    masked_lm_prob: float = 0.15,
    special_token_ids: Sequence[int] = BERT_SPECIAL_IDS,
) -> dict[str, tf.Tensor]:
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


def heldout_split(files: Sequence[str], heldout_examples: int) -> list[int]:
    """How many records at the start of each file belong to the first `heldout_examples`.

    Reads (counts) only the records it needs, file by file in order; ValueError naming the
    files if they hold fewer records than asked for.
    """
    skips, remaining = [], heldout_examples
    for path in files:
        taken = 0
        if remaining:
            taken = int(tf.data.TFRecordDataset(path).take(remaining).reduce(0, lambda n, _: n + 1))
        skips.append(taken)
        remaining -= taken
    if remaining:
        raise ValueError(
            f"a held-out slice of {heldout_examples} examples was asked for, but {files} hold "
            f"only {heldout_examples - remaining} records"
        )
    return skips


def _files_after_heldout(files, skips, heldout_examples, file_pattern):
    """Training files and their held-out record counts, without the files used up by the slice."""
    kept = [
        (path, skip)
        for path, skip in zip(files, skips)
        if not skip
        or int(tf.data.TFRecordDataset(path).skip(skip).take(1).reduce(0, lambda n, _: n + 1))
    ]
    if not kept:
        raise ValueError(
            f"the held-out slice of {heldout_examples} examples uses every record of "
            f"{file_pattern!r}: nothing is left to train on"
        )
    return [path for path, _ in kept], [skip for _, skip in kept]


def build_dataset(
    file_pattern: str | Sequence[str],
    batch_size: int,
    seq_length: int,
    max_predictions_per_seq: int,
    is_training: bool,
    input_context: tf.distribute.InputContext | None = None,
    seed: int | None = None,
    dynamic_masking: bool = False,
    vocab_size: int | None = None,
    mask_token_id: int | None = None,
    masked_lm_prob: float = 0.15,
    special_token_ids: Sequence[int] | None = None,
    num_parallel_calls: int = AUTOTUNE,
    shuffle_buffer_size: int = 10000,
    cycle_length: int = 8,
    validate_files: bool = True,
    check_every_record: bool = False,
    skip_corrupt_records: bool = False,
    corrupt_record_counter: CorruptRecordCounter | None = None,
    heldout_examples: int = 0,
    heldout: bool = False,
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
        (so every epoch). `vocab_size`, `mask_token_id` and `special_token_ids`
        (never masked: [PAD], [CLS], [SEP]) are read from the `.info.json` written
        by create_pretraining_data when not given, so records of any vocabulary
        (a learned WordPiece vocab, a SentencePiece model) get their own ids.
        Without an info file the ids default to BERT's (103; 0, 101, 102).
      validate_files: parse the first record of every file up front so that
        a wrong or unmasked/masked-mismatched file fails early with its name.
        Later records with a missing or wrongly sized feature fail at read
        time, also naming their file.
      check_every_record: also read all records up front, so that TFRecord
        corruption (truncation, bad length or CRC) fails here naming the file
        rather than when it is reached. Costs one pass over the data.
      skip_corrupt_records: at read time, skip the rest of a file from its first
        unreadable record on, with a WARNING naming the file and the byte offset,
        instead of failing with TensorFlow's DataLossError (see `find_corrupt_file`).
        Never silent: each skip is counted in `corrupt_record_counter` (default:
        DEFAULT_CORRUPT_RECORD_COUNTER). Costs a little per record, so it is off by default.
      heldout_examples: the first this many records, in file order (files sorted), form a
        held-out slice (Nado et al. select trials on 10k training examples): training
        (`heldout=False`) never reads them.
      heldout: read only the held-out slice, in order, once (for evaluation); needs
        `heldout_examples`.
    """
    if heldout and heldout_examples < 1:
        raise ValueError("heldout=True needs heldout_examples >= 1")
    files = list_files(file_pattern)
    if validate_files:
        for path in files:
            _check_first_record(path, seq_length, max_predictions_per_seq, dynamic_masking)
    if check_every_record:
        for path in files:
            check_all_records(path)
    if dynamic_masking:
        info = _read_info(files[0]) or {}
        if vocab_size is None:
            if "vocab_size" not in info:
                raise ValueError(
                    f"dynamic_masking needs vocab_size: pass it, or keep the "
                    f"{files[0] + INFO_SUFFIX} written by create_pretraining_data."
                )
            vocab_size = int(info["vocab_size"])
        if mask_token_id is None:
            mask_token_id = int(info.get("mask_id", BERT_MASK_ID))
        if special_token_ids is None:
            special_token_ids = tuple(
                int(info.get(key, default))
                for key, default in zip(("pad_id", "cls_id", "sep_id"), BERT_SPECIAL_IDS)
            )

    num_pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    # Records at the start of each file that belong to the held-out slice.
    skips = heldout_split(files, heldout_examples) if heldout_examples else [0] * len(files)
    if heldout:
        files, skips = zip(*[(path, skip) for path, skip in zip(files, skips) if skip])
        files, skips = list(files), list(skips)
    elif heldout_examples:
        files, skips = _files_after_heldout(files, skips, heldout_examples, file_pattern)
    shard_files = num_pipelines > 1 and len(files) >= num_pipelines and not heldout
    if shard_files:
        files = files[pipeline_id::num_pipelines]
        skips = skips[pipeline_id::num_pipelines]
    deterministic = seed is not None or heldout
    # File sizes only for the end-of-file accounting of skip_corrupt_records.
    sizes = [tf.io.gfile.stat(path).length if skip_corrupt_records else 0 for path in files]

    dataset = tf.data.Dataset.from_tensor_slices(
        (files, tf.constant(sizes, tf.int64), tf.constant(skips, tf.int64))
    )
    if is_training:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)

    def read_file(path, size, skip):
        if skip_corrupt_records:
            records = read_records_checked(path, size, True, corrupt_record_counter)
        else:
            # Plain reading costs nothing extra; a corrupt file then raises TensorFlow's
            # DataLossError, which `find_corrupt_file` turns into one naming the file.
            records = tf.data.TFRecordDataset(path)
        records = records.take(skip) if heldout else records.skip(skip)
        if num_pipelines > 1 and not shard_files:
            # Sharding each file's records keeps pipelines disjoint whatever
            # order the (possibly non-deterministic) interleave produces.
            records = records.shard(num_pipelines, pipeline_id)
        return records.map(lambda record: (path, record))

    if heldout:  # In file order, so that every run scores the same examples.
        dataset = dataset.flat_map(read_file)
    else:
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
