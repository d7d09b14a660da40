"""A truncated pretraining shard: named in the error, or skipped with a warning and counts.

Records are made from real Wikipedia text; one of two shards is cut to half its bytes, as a
copy interrupted mid-file leaves it. The truths are independent of the code under test: the
records of the intact shard with their byte extents, and TensorFlow's own error on the
truncated file ("truncated record at <offset>").
"""

import collections
import json
import logging
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO_ROOT
from test_pretraining import write_experiment

from data import pretraining_input, pretraining_instances, pretraining_records, tokenization

SEQ, PRED = 64, 10


@pytest.fixture(scope="module")
def shards(tmp_path_factory, shared_data, minilm_vocab):
    """Two shards from real text ("intact"), and the same with shard 1 cut in half ("cut")."""
    root = tmp_path_factory.mktemp("corrupt")
    lines = (shared_data / "text" / "wiki_squad_contexts.txt").read_text("utf-8").split("\n")
    text = root / "wiki.txt"
    text.write_text("\n".join(lines[:300]), "utf-8")
    tokenizer = tokenization.FullTokenizer(str(minilm_vocab), do_lower_case=True)
    intact = [str(root / f"intact-{i}.tfrecord") for i in range(2)]
    pretraining_records.create_pretraining_data(
        [str(text)],
        intact,
        tokenizer,
        pretraining_instances.InstanceOptions(
            max_seq_length=SEQ, max_predictions_per_seq=PRED, dupe_factor=1, random_seed=7
        ),
    )
    (root / "cut").mkdir()
    cut = [str(root / "cut" / f"shard-{i}.tfrecord") for i in range(2)]
    shutil.copyfile(intact[0], cut[0])
    with open(intact[1], "rb") as f:
        data = f.read()
    with open(cut[1], "wb") as f:
        f.write(data[: len(data) // 2])
    return {"intact": intact, "cut": cut, "cut_pattern": str(root / "cut" / "shard-*.tfrecord")}


def records_with_ends(path):
    """Every record of an intact file with the byte offset where its framing ends."""
    out, end = [], 0
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        end += 8 + 4 + len(record) + 4  # length, length CRC, data, data CRC
        out.append((record, end))
    assert end == os.path.getsize(path)
    return out


def tensorflow_error_offset(path):
    """TensorFlow's own report on a truncated file: (good records before, bad offset)."""
    good = 0
    with pytest.raises(tf.errors.DataLossError) as error:
        for _ in tf.data.TFRecordDataset(path):
            good += 1
    offset = re.search(r"truncated record at (\d+)", error.value.message)
    assert offset, error.value.message
    return good, int(offset.group(1))


def input_ids_key(record):
    """Identity of a record: its token ids with the masked positions restored."""
    example = tf.train.Example.FromString(record).features.feature
    ids = np.array(example["input_ids"].int64_list.value, np.int64)
    weights = np.array(example["masked_lm_weights"].float_list.value)
    positions = np.array(example["masked_lm_positions"].int64_list.value)[weights > 0]
    ids[positions] = np.array(example["masked_lm_ids"].int64_list.value)[weights > 0]
    return ids.tobytes()


def batch_keys(batch):
    keys = []
    for ids, positions, labels, weights in zip(
        batch["input_ids"],
        batch["masked_lm_positions"],
        batch["masked_lm_ids"],
        batch["masked_lm_weights"],
    ):
        ids = np.array(ids, np.int64)
        ids[positions[weights > 0]] = labels[weights > 0]
        keys.append(ids.tobytes())
    return keys


def expected_truth(shards):
    """The records a reader can get from the cut shards: all of shard 0 and the complete
    records of shard 1 that end within its first half; and where the first bad one starts."""
    cut_size = os.path.getsize(shards["cut"][1])
    shard1 = records_with_ends(shards["intact"][1])
    prefix = [record for record, end in shard1 if end <= cut_size]
    bad_offset = shard1[len(prefix) - 1][1] if prefix else 0
    records = [record for record, _ in records_with_ends(shards["intact"][0])] + prefix
    return collections.Counter(map(input_ids_key, records)), len(prefix), bad_offset, cut_size


def test_truth_agrees_with_tensorflow(shards):
    _, num_prefix, bad_offset, cut_size = expected_truth(shards)
    assert num_prefix > 0 and bad_offset < cut_size
    assert tensorflow_error_offset(shards["cut"][1]) == (num_prefix, bad_offset)


@pytest.mark.parametrize("is_training", [False, True])
def test_without_the_flag_the_error_names_the_file_and_offset(shards, is_training):
    _, num_prefix, bad_offset, cut_size = expected_truth(shards)
    ds = pretraining_input.build_dataset(
        shards["cut_pattern"], 4, SEQ, PRED, is_training=is_training, seed=3
    )
    with pytest.raises(tf.errors.DataLossError):  # TensorFlow's error, without a file name
        for _ in ds.take(1000):
            pass
    message = str(pretraining_input.find_corrupt_file(shards["cut_pattern"]))
    assert f"Corrupt TFRecord file: {shards['cut'][1]}: corrupt TFRecord after {num_prefix} " in (
        message
    )
    assert f"truncated record at {bad_offset}" in message
    assert "skip_corrupt_records" in message and "shard-0" not in message
    assert pretraining_input.find_corrupt_file(shards["intact"][0]) is None
    # The checked reader of one file names it in-graph, with the record's byte offset.
    records = pretraining_input.read_records_checked(shards["cut"][1], cut_size)
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        for _ in records:
            pass
    message = error.value.message
    assert f"Corrupt TFRecord file {shards['cut'][1]}:" in message
    assert f"byte offset {bad_offset} of {cut_size} after {num_prefix} good record" in message
    # The up-front scan is still there and names the file before any reading.
    with pytest.raises(ValueError, match=r"shard-1.tfrecord: corrupt TFRecord after \d+ good"):
        pretraining_input.build_dataset(
            shards["cut_pattern"], 4, SEQ, PRED, False, check_every_record=True
        )


def test_intact_files_read_exactly_as_before(shards):
    """The end-of-file check changes nothing on good files: every record once, in order."""
    ds = pretraining_input.build_dataset(shards["intact"][1], 1, SEQ, PRED, is_training=False)
    got = [key for batch in ds.as_numpy_iterator() for key in batch_keys(batch)]
    want = [input_ids_key(record) for record, _ in records_with_ends(shards["intact"][1])]
    assert got == want


def test_skip_yields_the_intact_prefix_and_all_other_records(shards, caplog):
    truth, num_prefix, bad_offset, cut_size = expected_truth(shards)
    counter = pretraining_input.CorruptRecordCounter()
    ds = pretraining_input.build_dataset(
        shards["cut_pattern"],
        1,
        SEQ,
        PRED,
        is_training=False,
        skip_corrupt_records=True,
        corrupt_record_counter=counter,
    )
    with caplog.at_level(logging.WARNING):
        got = collections.Counter(
            key for batch in ds.as_numpy_iterator() for key in batch_keys(batch)
        )
    assert got == truth
    assert counter.metrics() == {
        "corrupt_files": 1,
        "corrupt_tails_skipped": 1,
        "corrupt_bytes_skipped": cut_size - bad_offset,
    }
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert shards["cut"][1] in warnings[0]
    assert f"byte offset {bad_offset} of {cut_size} after {num_prefix} good" in warnings[0]
    assert "Running count: 1 corrupt tail(s) skipped in 1 file(s)" in warnings[0]

    # Fewer files than pipelines (records are sharded): together the pipelines still read
    # the prefix exactly once, and each reports the corrupt tail it met.
    prefix_only = collections.Counter(
        input_ids_key(record)
        for record, end in records_with_ends(shards["intact"][1])
        if end <= cut_size
    )
    counter = pretraining_input.CorruptRecordCounter()
    got = collections.Counter()
    for pipeline in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline)
        ds = pretraining_input.build_dataset(
            shards["cut"][1],
            1,
            SEQ,
            PRED,
            is_training=False,
            input_context=ctx,
            skip_corrupt_records=True,
            corrupt_record_counter=counter,
        )
        got.update(key for batch in ds.as_numpy_iterator() for key in batch_keys(batch))
    assert got == prefix_only
    assert counter.metrics()["corrupt_tails_skipped"] == 2
    assert counter.metrics()["corrupt_files"] == 1


def test_skip_counts_grow_with_each_pass_in_training(shards):
    """Training repeats the data: the corrupt tail is met (and reported) on every pass."""
    truth, _, _, _ = expected_truth(shards)
    per_pass = sum(truth.values())
    counter = pretraining_input.CorruptRecordCounter()
    ds = pretraining_input.build_dataset(
        shards["cut_pattern"],
        8,
        SEQ,
        PRED,
        is_training=True,
        seed=1,
        shuffle_buffer_size=16,
        skip_corrupt_records=True,
        corrupt_record_counter=counter,
    )
    seen = collections.Counter()
    for batch in ds.take(3 * per_pass // 8).as_numpy_iterator():
        seen.update(batch_keys(batch))
    assert set(seen) == set(truth)  # nothing from the lost tail, every record of the rest
    assert counter.metrics()["corrupt_tails_skipped"] >= 2
    assert counter.metrics()["corrupt_files"] == 1


def test_a_bad_crc_mid_file_is_named_or_skipped_like_a_truncation(shards, tmp_path):
    """One flipped byte inside a record (bad CRC): TensorFlow stops at that record too."""
    with open(shards["intact"][0], "rb") as f:
        data = bytearray(f.read())
    data[len(data) // 2] ^= 0xFF
    path = tmp_path / "flipped.tfrecord"
    path.write_bytes(bytes(data))
    good = 0
    with pytest.raises(tf.errors.DataLossError) as error:
        for _ in tf.data.TFRecordDataset(str(path)):
            good += 1
    # TensorFlow gives the offset of the record's data; the record starts 12 bytes before
    # (length and its CRC), at the end of the last good record.
    data_offset = int(re.search(r"corrupted record at (\d+)", error.value.message).group(1))
    offset = data_offset - 12
    assert offset == records_with_ends(shards["intact"][0])[good - 1][1]
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=rf"flipped.tfrecord: unreadable record starting at byte offset {offset} of "
        rf"{len(data)} after {good} good",
    ):
        for _ in pretraining_input.read_records_checked(str(path), len(data)):
            pass
    message = str(pretraining_input.find_corrupt_file(str(path)))
    assert f"flipped.tfrecord: corrupt TFRecord after {good} good record(s)" in message
    assert f"corrupted record at {data_offset}" in message
    counter = pretraining_input.CorruptRecordCounter()
    ds = pretraining_input.build_dataset(
        str(path),
        1,
        SEQ,
        PRED,
        is_training=False,
        skip_corrupt_records=True,
        corrupt_record_counter=counter,
    )
    got = [key for batch in ds.as_numpy_iterator() for key in batch_keys(batch)]
    intact = [input_ids_key(r) for r, _ in records_with_ends(shards["intact"][0])]
    assert got == intact[:good]
    assert counter.metrics()["corrupt_bytes_skipped"] == len(data) - offset


# -----------------------------------------------------------------------------------------
# End to end: python -m bert.run_pretraining on the cut shards.


def run_pretraining(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_DETERMINISTIC_OPS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "bert.run_pretraining", *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
        check=False,
    )
    return proc.returncode, proc.stdout


def tensorboard_scalars(log_dir, name):
    values = []
    for path in tf.io.gfile.glob(os.path.join(log_dir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == name:
                    values.append((event.step, float(tf.make_ndarray(value.tensor))))
    return sorted(values)


@pytest.mark.slow
def test_run_pretraining_fails_naming_the_file_or_skips_with_the_flag(shards, tmp_path):
    _, num_prefix, bad_offset, cut_size = expected_truth(shards)
    experiment = write_experiment(str(tmp_path / "experiment.json"), phase1_steps=4)
    common = [
        f"--experiment={experiment}",
        f"--input_file={shards['cut_pattern']}",
        "--steps_per_loop=2",
        "--do_eval=false",
    ]
    code, out = run_pretraining(*common, f"--model_dir={tmp_path / 'fails'}")
    assert code != 0, out[-3000:]
    assert f"Corrupt TFRecord file: {shards['cut'][1]}: corrupt TFRecord after {num_prefix} " in out
    assert f"truncated record at {bad_offset}" in out and "--skip_corrupt_records" in out

    model_dir = tmp_path / "skips"
    code, out = run_pretraining(*common, f"--model_dir={model_dir}", "--skip_corrupt_records")
    assert code == 0, out[-3000:]
    warnings = [line for line in out.splitlines() if line.startswith("W") and "Corrupt" in line]
    assert warnings and all(shards["cut"][1] in line for line in warnings)
    assert "Running count: 1 corrupt tail(s) skipped in 1 file(s)" in warnings[0]
    with open(model_dir / "train_log.jsonl") as f:
        log = [json.loads(line) for line in f]
    assert [entry["step"] for entry in log] == [2, 4]
    assert log[-1]["corrupt_files"] == 1
    assert log[-1]["corrupt_tails_skipped"] >= 1
    assert log[-1]["corrupt_bytes_skipped"] == log[-1]["corrupt_tails_skipped"] * (
        cut_size - bad_offset
    )
    scalars = tensorboard_scalars(str(model_dir / "train"), "corrupt_tails_skipped")
    assert [step for step, _ in scalars] == [2, 4]
    assert scalars[-1][1] == log[-1]["corrupt_tails_skipped"]
