"""Tests of data.pretraining_input on records made from real text."""

import collections
import math

import numpy as np
import pytest
import tensorflow as tf

from data import (
    pretraining_input,
    pretraining_instances,
    pretraining_records,
    text_corpus,
    tokenization,
)

SEQ = 64
PRED = 10
MASK_ID, CLS_ID, SEP_ID = 103, 101, 102
BERT_MASK_ID = 103


@pytest.fixture(scope="module")
def tokenizer(minilm_vocab):
    return tokenization.FullTokenizer(minilm_vocab, do_lower_case=True)


@pytest.fixture(scope="module")
def record_files(shared_data, tokenizer, tmp_path_factory):
    """4 masked and 4 unmasked shards, plus a single unmasked file."""
    path = str(shared_data / "text" / "wikitext2_test_sentences.txt")
    documents = list(text_corpus.read_text_file(path))[:6]
    text_file = tmp_path_factory.mktemp("text") / "docs.txt"
    text_file.write_text("\n\n".join("\n".join(d) for d in documents) + "\n", encoding="utf-8")
    out = tmp_path_factory.mktemp("records")
    files = {}
    for name, masking, shards in (
        ("masked", True, 4),
        ("unmasked", False, 4),
        ("single", False, 1),
    ):
        options = pretraining_instances.InstanceOptions(
            max_seq_length=SEQ, max_predictions_per_seq=PRED, dupe_factor=1, masking=masking
        )
        outputs = pretraining_records.output_paths(str(out / name), shards)
        pretraining_records.create_pretraining_data([str(text_file)], outputs, tokenizer, options)
        files[name] = str(out / f"{name}*")
    return files


def all_records(pattern):
    files = pretraining_input.list_files(pattern)
    return [r.numpy() for r in tf.data.TFRecordDataset(files)]


def row_key(ids, labels=None, positions=None, weights=None):
    """Identity of an example: its unmasked token ids."""
    ids = np.array(ids, np.int32)
    if weights is not None:
        valid = weights > 0
        ids[positions[valid]] = labels[valid]
    return ids.tobytes()


def test_static_shapes_dtypes_and_contents(record_files):
    ds = pretraining_input.build_dataset(
        record_files["masked"],
        batch_size=8,
        seq_length=SEQ,
        max_predictions_per_seq=PRED,
        is_training=False,
    )
    expected = {
        "input_ids": ([8, SEQ], tf.int32),
        "input_mask": ([8, SEQ], tf.int32),
        "segment_ids": ([8, SEQ], tf.int32),
        "masked_lm_positions": ([8, PRED], tf.int32),
        "masked_lm_ids": ([8, PRED], tf.int32),
        "masked_lm_weights": ([8, PRED], tf.float32),
        "next_sentence_labels": ([8], tf.int32),
    }
    assert set(ds.element_spec) == set(expected)
    for name, (shape, dtype) in expected.items():
        assert ds.element_spec[name].shape.as_list() == shape, name
        assert ds.element_spec[name].dtype == dtype, name
    # Every example comes from the files, each once (minus the dropped remainder).
    truth = tf.io.parse_example(
        all_records(record_files["masked"]),
        {
            "input_ids": tf.io.FixedLenFeature([SEQ], tf.int64),
            "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
        },
    )
    truth_keys = collections.Counter(
        (row_key(i), int(label[0]))
        for i, label in zip(truth["input_ids"].numpy(), truth["next_sentence_labels"].numpy())
    )
    seen = collections.Counter()
    for batch in ds.as_numpy_iterator():
        for ids, label in zip(batch["input_ids"], batch["next_sentence_labels"]):
            seen[(row_key(ids), int(label))] += 1
    n = sum(truth_keys.values())
    assert sum(seen.values()) == n - n % 8
    assert not seen - truth_keys


def file_keys(pattern):
    """Counter of the unmasked token ids of every record in the files."""
    spec = {
        "input_ids": tf.io.FixedLenFeature([SEQ], tf.int64),
        "masked_lm_positions": tf.io.FixedLenFeature([PRED], tf.int64),
        "masked_lm_ids": tf.io.FixedLenFeature([PRED], tf.int64),
        "masked_lm_weights": tf.io.FixedLenFeature([PRED], tf.float32),
    }
    parsed = {k: v.numpy() for k, v in tf.io.parse_example(all_records(pattern), spec).items()}
    return collections.Counter(
        row_key(*row)
        for row in zip(
            parsed["input_ids"],
            parsed["masked_lm_ids"],
            parsed["masked_lm_positions"],
            parsed["masked_lm_weights"],
        )
    )


@pytest.mark.parametrize("kind", ["masked", "single"])
def test_input_context_sharding_is_disjoint_and_covers(record_files, kind):
    dynamic = kind == "single"  # One file for two pipelines: records are sharded.
    keys = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2
        )
        ds = pretraining_input.build_dataset(
            record_files[kind],
            batch_size=1,
            seq_length=SEQ,
            max_predictions_per_seq=PRED,
            is_training=False,
            input_context=context,
            seed=None,
            dynamic_masking=dynamic,
        )
        keys.append(
            collections.Counter(
                row_key(
                    b["input_ids"][0],
                    b["masked_lm_ids"][0],
                    b["masked_lm_positions"][0],
                    b["masked_lm_weights"][0],
                )
                for b in ds.as_numpy_iterator()
            )
        )
    everything = file_keys(record_files[kind])
    assert min(sum(k.values()) for k in keys) >= 0.3 * sum(everything.values())
    assert keys[0] + keys[1] == everything  # Full coverage...
    shared = keys[0] & keys[1]
    assert all(everything[k] >= 2 for k in shared)  # ...and disjoint.


def test_dynamic_masking_fresh_each_epoch_and_follows_rules(record_files, tokenizer):
    records = all_records(record_files["unmasked"])
    n = len(records)
    ds = pretraining_input.build_dataset(
        record_files["unmasked"],
        batch_size=1,
        seq_length=SEQ,
        max_predictions_per_seq=PRED,
        is_training=True,
        seed=3,
        dynamic_masking=True,
    )
    masks = collections.defaultdict(list)
    outcome = collections.Counter()
    total = 0
    for batch in ds.take(3 * n).as_numpy_iterator():
        ids, positions = batch["input_ids"][0], batch["masked_lm_positions"][0]
        labels, weights = batch["masked_lm_ids"][0], batch["masked_lm_weights"][0]
        length = int(batch["input_mask"][0].sum())
        k = int(weights.sum())
        assert k == min(PRED, max(1, round(length * 0.15)))
        assert np.all(weights[:k] == 1) and np.all(weights[k:] == 0)
        pos = positions[:k]
        assert np.all(np.diff(pos) > 0) and np.all(pos < length) and np.all(positions[k:] == 0)
        original = ids.copy()
        original[pos] = labels[:k]
        assert not np.isin(labels[:k], [0, CLS_ID, SEP_ID]).any()
        assert original[0] == CLS_ID and original[length - 1] == SEP_ID
        shown = ids[pos]
        outcome["mask"] += int(np.sum(shown == MASK_ID))
        outcome["keep"] += int(np.sum(shown == labels[:k]))
        total += k
        masks[row_key(original)].append(tuple(pos))
    # Each epoch is a permutation of the records: every example three times...
    assert len(masks) == len(
        set(
            row_key(i)
            for i in tf.io.parse_example(
                records, {"input_ids": tf.io.FixedLenFeature([SEQ], tf.int64)}
            )["input_ids"].numpy()
        )
    )
    # ...with a fresh mask each time.
    fresh = sum(len(set(m)) == len(m) for m in masks.values() if len(m) == 3)
    assert fresh >= 0.95 * sum(len(m) == 3 for m in masks.values()) > 0
    sd = 4 * math.sqrt(total * 0.8 * 0.2)
    assert abs(outcome["mask"] - 0.8 * total) <= sd
    assert abs(outcome["keep"] - 0.1 * total) <= 4 * math.sqrt(total * 0.1 * 0.9)

    # Deterministic for a seed: two pipelines built alike give the same batches.
    def first_batches(seed):
        ds = pretraining_input.build_dataset(
            record_files["unmasked"],
            batch_size=4,
            seq_length=SEQ,
            max_predictions_per_seq=PRED,
            is_training=True,
            seed=seed,
            dynamic_masking=True,
        )
        return [b["input_ids"] for b in ds.take(2 * n // 4).as_numpy_iterator()]

    np.testing.assert_array_equal(first_batches(5), first_batches(5))
    assert not np.array_equal(first_batches(5), first_batches(6))


def test_masked_or_unmasked_mismatch_is_reported(record_files):
    with pytest.raises(ValueError, match="unmasked"):
        pretraining_input.build_dataset(record_files["unmasked"], 4, SEQ, PRED, True)
    with pytest.raises(ValueError, match="already masked"):
        pretraining_input.build_dataset(
            record_files["masked"], 4, SEQ, PRED, True, dynamic_masking=True, vocab_size=30522
        )


def _example(drop=None, **lengths):
    feature = {}
    for name in pretraining_input.FEATURE_NAMES:
        if name == drop:
            continue
        size = lengths.get(
            name,
            {
                "input_ids": SEQ,
                "input_mask": SEQ,
                "segment_ids": SEQ,
                "next_sentence_labels": 1,
            }.get(name, PRED),
        )
        if name == "masked_lm_weights":
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[1.0] * size))
        else:
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[1] * size))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_corrupt_files_are_named(tmp_path):
    garbage = tmp_path / "garbage.tfrecord"
    garbage.write_bytes(b"this is not a TFRecord file at all" * 3)
    with pytest.raises(ValueError, match="garbage.tfrecord"):
        pretraining_input.build_dataset(str(garbage), 2, SEQ, PRED, False)
    wrong = tmp_path / "wrong-length.tfrecord"
    with tf.io.TFRecordWriter(str(wrong)) as writer:
        writer.write(_example(input_ids=SEQ - 1))
    with pytest.raises(ValueError, match=r"wrong-length.tfrecord.*'input_ids' has 63"):
        pretraining_input.build_dataset(str(wrong), 2, SEQ, PRED, False)
    # A bad record after a good first one fails at read time, naming its file.
    late = tmp_path / "late-bad.tfrecord"
    with tf.io.TFRecordWriter(str(late)) as writer:
        for i in range(4):
            writer.write(_example(drop="masked_lm_ids" if i == 2 else None))
    good = tmp_path / "good.tfrecord"
    with tf.io.TFRecordWriter(str(good)) as writer:
        for _ in range(4):
            writer.write(_example())
    ds = pretraining_input.build_dataset(f"{good},{late}", 4, SEQ, PRED, False)
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"late-bad.tfrecord(.|\n)*masked_lm_ids"
    ):
        for _ in ds:
            pass
    # TFRecord corruption in the middle of a file (bad CRC) with the full check.
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "crc.tfrecord").write_bytes(bytes(data))
    pretraining_input.build_dataset(str(tmp_path / "crc.tfrecord"), 4, SEQ, PRED, False)
    with pytest.raises(ValueError, match=r"crc.tfrecord: corrupt TFRecord after \d good"):
        pretraining_input.build_dataset(
            str(tmp_path / "crc.tfrecord"), 4, SEQ, PRED, False, check_every_record=True
        )
    with pytest.raises(FileNotFoundError, match="missing"):
        pretraining_input.build_dataset(str(tmp_path / "missing*"), 2, SEQ, PRED, False)


def test_dynamic_masking_uses_the_special_ids_of_a_sentencepiece_model(shared_data, tmp_path):
    from data import vocab_learning as learn_vocab

    path = str(shared_data / "text" / "wikitext2_test_sentences.txt")
    documents = list(text_corpus.read_text_file(path))[:6]
    lines = [sentence for document in documents for sentence in document]
    model = learn_vocab.train_sentencepiece(lines, str(tmp_path / "spm.model"), vocab_size=1500)
    spm_tokenizer = tokenization.create_tokenizer(spm_model_file=model)
    sp = spm_tokenizer.sp_model
    pad, cls, sep, mask = (sp.piece_to_id(p) for p in ("[PAD]", "[CLS]", "[SEP]", "[MASK]"))
    assert (pad, cls, sep, mask) == (0, 2, 3, 4)  # Not BERT's 0, 101, 102, 103.
    text_file = tmp_path / "docs.txt"
    text_file.write_text("\n\n".join("\n".join(d) for d in documents) + "\n", encoding="utf-8")
    options = pretraining_instances.InstanceOptions(
        max_seq_length=SEQ, max_predictions_per_seq=PRED, dupe_factor=1, masking=False
    )
    output = str(tmp_path / "spm.tfrecord")
    pretraining_records.create_pretraining_data([str(text_file)], [output], spm_tokenizer, options)
    # Nothing but the records and their info.json: the ids come from the latter.
    ds = pretraining_input.build_dataset(
        output, 8, SEQ, PRED, is_training=True, seed=1, dynamic_masking=True
    )
    shown = labels_seen = 0
    masked_as_mask = 0
    for batch in ds.take(20).as_numpy_iterator():
        weights = batch["masked_lm_weights"] > 0
        labels = batch["masked_lm_ids"][weights]
        assert not np.isin(labels, [pad, cls, sep]).any()
        assert (labels < sp.get_piece_size()).all()
        rows, cols = np.nonzero(weights)
        ids = batch["input_ids"][rows, batch["masked_lm_positions"][rows, cols]]
        masked_as_mask += int(np.sum(ids == mask))
        shown += int(np.sum(ids == BERT_MASK_ID))
        labels_seen += len(labels)
    assert abs(masked_as_mask - 0.8 * labels_seen) <= 4 * math.sqrt(labels_seen * 0.16)
    assert shown <= 0.02 * labels_seen  # BERT's 103 only as a 1-in-1500 random replacement.


def _batches_as_ids(ds):
    return [row.tobytes() for b in ds.as_numpy_iterator() for row in b["input_ids"]]


def test_heldout_slice_is_the_first_records_and_training_never_reads_them(record_files):
    files = pretraining_input.list_files(record_files["masked"])
    counts = [sum(1 for _ in tf.data.TFRecordDataset(f)) for f in files]
    heldout_examples = counts[0] + 3  # Ends inside the second file.
    spec = {"input_ids": tf.io.FixedLenFeature([SEQ], tf.int64)}
    in_order = [
        np.asarray(tf.io.parse_single_example(r, spec)["input_ids"], np.int32).tobytes()
        for r in all_records(record_files["masked"])
    ]
    common = dict(seq_length=SEQ, max_predictions_per_seq=PRED, heldout_examples=heldout_examples)
    heldout = pretraining_input.build_dataset(
        record_files["masked"], batch_size=1, is_training=False, heldout=True, **common
    )
    assert _batches_as_ids(heldout) == in_order[:heldout_examples]  # Same records, same order.
    rest = pretraining_input.build_dataset(
        record_files["masked"], batch_size=1, is_training=False, **common
    )
    assert sorted(_batches_as_ids(rest)) == sorted(in_order[heldout_examples:])
    # Training (shuffled, repeated) never meets a held-out record, whatever the pipeline.
    seen = set()
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(2, pipeline_id, 2)
        train = pretraining_input.build_dataset(
            record_files["masked"],
            batch_size=4,
            is_training=True,
            seed=3,
            input_context=context,
            **common,
        )
        seen.update(_batches_as_ids(train.take(2 * sum(counts) // 4)))
    assert seen == set(in_order[heldout_examples:])


def test_a_heldout_slice_larger_than_the_data_is_refused(record_files):
    total = len(all_records(record_files["masked"]))
    for heldout, match in ((False, "nothing is left to train on"), (True, "hold only")):
        with pytest.raises(ValueError, match=match):
            pretraining_input.build_dataset(
                record_files["masked"],
                batch_size=1,
                seq_length=SEQ,
                max_predictions_per_seq=PRED,
                is_training=False,
                heldout_examples=total + (1 if heldout else 0),
                heldout=heldout,
            )
