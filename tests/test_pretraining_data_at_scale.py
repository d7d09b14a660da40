"""Pretraining data in bounded memory: the same records as in memory, resumable, flat RSS.

The reference is the in-memory path (`generate_records`: every instance held, then
shuffled), run on the same real text (shared/data/text).
"""

import collections
import functools
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO_ROOT, read_records

from data import (
    corpus_store,
    corpus_tokenization,
    instance_workers,
    pretraining_instances,
    pretraining_records,
    text_corpus,
    tf_startup,
    tokenization,
)

OPTIONS = pretraining_instances.InstanceOptions(
    max_seq_length=64, max_predictions_per_seq=10, dupe_factor=2
)


@pytest.fixture(scope="module")
def tokenizer(minilm_vocab):
    return tokenization.FullTokenizer(minilm_vocab, do_lower_case=True)


@pytest.fixture(scope="module")
def text_file(shared_data, tmp_path_factory):
    """The first 60 documents of the real text (about 1,700 records at dupe 2)."""
    docs = list(text_corpus.read_text_file(str(shared_data / "text" / "wiki_squad_contexts.txt")))
    path = tmp_path_factory.mktemp("text") / "docs.txt"
    path.write_text("\n\n".join("\n".join(d) for d in docs[:60]) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def in_memory(text_file, tokenizer):
    corpus = corpus_tokenization.tokenize_corpus(text_corpus.read_documents([text_file]), tokenizer)
    vocab = pretraining_instances.Vocab.from_tokenizer(tokenizer)
    return corpus, pretraining_records.generate_records(corpus, OPTIONS, vocab)


def recording_tasks(made: list, killed_after: int | None = None):
    """`process_task` that appends each task to `made`, and raises KeyboardInterrupt (a kill)
    at task `killed_after` if given."""

    def process(task):
        if killed_after is not None and len(made) == killed_after:
            raise KeyboardInterrupt("killed")
        made.append(task)
        return instance_workers.process_task(task)

    return process


def test_the_stored_corpus_gives_the_same_documents_and_instances(
    tmp_path, text_file, tokenizer, in_memory
):
    corpus, _ = in_memory
    documents = text_corpus.read_documents([text_file])
    with corpus_store.CorpusWriter(str(tmp_path)) as writer:
        for first in range(0, len(documents), 7):  # chunks of 7 documents
            writer.append(
                corpus_tokenization.tokenize_corpus(documents[first : first + 7], tokenizer)
            )
    stored = corpus_store.StoredCorpus(str(tmp_path))
    assert stored.num_documents == corpus.num_documents
    for d in range(corpus.num_documents):
        assert stored.sentence_offsets(d) == corpus.sentence_offsets(d)
    offsets = np.random.default_rng(0).integers(0, len(corpus.token_ids), size=(50, 64))
    np.testing.assert_array_equal(stored.gather(offsets), corpus.token_ids[offsets])
    vocab = pretraining_instances.Vocab.from_tokenizer(tokenizer)
    for start in (0, 16, 48):
        end = min(start + 16, corpus.num_documents)
        a = pretraining_instances.create_instances(corpus, 1, start, end, OPTIONS, vocab)
        b = pretraining_instances.create_instances(stored, 1, start, end, OPTIONS, vocab)
        assert pretraining_instances.serialize_instances(a) == (
            pretraining_instances.serialize_instances(b)
        )


@pytest.mark.parametrize(
    "shards,memory_megabytes,workers",
    [(3, 0.5, 2), (1, 0.25, 1)],
    ids=["buckets", "spilled-piles"],
)
def test_bounded_memory_output_equals_the_in_memory_records(
    tmp_path, text_file, tokenizer, in_memory, shards, memory_megabytes, workers
):
    """The same multiset of records (~0.9 MB) when buckets are shuffled one by one, in memory
    or split into piles on disk first, and nothing left beside the outputs."""
    _, reference = in_memory
    outputs = pretraining_records.output_paths(str(tmp_path / "out" / "train"), shards)
    stats = pretraining_records.create_pretraining_data(
        [text_file], outputs, tokenizer, OPTIONS, workers, memory_megabytes=memory_megabytes
    )
    records = read_records(outputs)
    assert collections.Counter(records) == collections.Counter(reference)
    assert stats["instances"] == len(reference) == sum(stats["records_per_file"])
    assert [len(read_records([p])) for p in outputs] == stats["records_per_file"]
    assert sorted(os.listdir(tmp_path / "out")) == sorted(os.path.basename(p) for p in outputs)
    # Shuffled: not in the order the instances were made.
    assert records != reference


def test_records_that_fit_in_memory_give_the_in_memory_paths_files(
    tmp_path, text_file, tokenizer, in_memory
):
    """Within the budget, the files are those of the in-memory path byte for byte (the whole
    set shuffled at once), so small corpora give the same data as before buckets existed."""
    _, reference = in_memory
    expected = pretraining_records.output_paths(str(tmp_path / "expected" / "train"), 3)
    pretraining_records.write_records(reference, expected, OPTIONS.random_seed)
    outputs = pretraining_records.output_paths(str(tmp_path / "out" / "train"), 3)
    pretraining_records.create_pretraining_data([text_file], outputs, tokenizer, OPTIONS, 2)
    for got, want in zip(outputs, expected):
        assert pathlib.Path(got).read_bytes() == pathlib.Path(want).read_bytes()


@pytest.mark.parametrize("corpus_in_memory", [True, False], ids=["held", "read-from-disk"])
def test_a_corpus_tokenized_in_many_chunks_gives_the_in_memory_paths_files(
    tmp_path, text_file, tokenizer, in_memory, monkeypatch, corpus_in_memory
):
    """Chunks tokenized on threads are stored in order, and instances made from the stored
    corpus held in memory or read from disk are the same: the in-memory path's files."""
    _, reference = in_memory
    expected = pretraining_records.output_paths(str(tmp_path / "expected" / "train"), 2)
    pretraining_records.write_records(reference, expected, OPTIONS.random_seed)
    monkeypatch.setattr(pretraining_records, "CHUNK_BYTES", 8_000)  # ~25 chunks
    opened = []

    def open_corpus(directory, max_bytes):
        assert max_bytes == 128 * 2**20  # the whole budget: one worker
        corpus = real_open(directory, max_bytes if corpus_in_memory else 0)
        opened.append(corpus)
        return corpus

    real_open = corpus_store.open_corpus
    monkeypatch.setattr(corpus_store, "open_corpus", open_corpus)
    outputs = pretraining_records.output_paths(str(tmp_path / "out" / "train"), 2)
    pretraining_records.create_pretraining_data([text_file], outputs, tokenizer, OPTIONS, 1)
    assert len(opened) == 1
    assert isinstance(opened[0], corpus_store.StoredCorpus) != corpus_in_memory
    for got, want in zip(outputs, expected):
        assert pathlib.Path(got).read_bytes() == pathlib.Path(want).read_bytes()


def test_output_does_not_depend_on_the_number_of_workers(tmp_path, text_file, tokenizer):
    contents = []
    for workers in (1, 2):  # buckets shuffled on their own (a 0.25 MB budget)
        outputs = pretraining_records.output_paths(str(tmp_path / f"w{workers}" / "t"), 2)
        pretraining_records.create_pretraining_data(
            [text_file], outputs, tokenizer, OPTIONS, workers, memory_megabytes=0.25
        )
        contents.append([pathlib.Path(p).read_bytes() for p in outputs])
    assert contents[0] == contents[1]


def test_a_killed_run_resumes_without_redoing_finished_buckets(
    tmp_path, text_file, tokenizer, in_memory, monkeypatch
):
    _, reference = in_memory
    outputs = pretraining_records.output_paths(str(tmp_path / "train"), 4)
    real_shuffle = pretraining_records._shuffled_records
    monkeypatch.setattr(pretraining_records, "SAVE_SECONDS", 0.0)

    def killed_at_bucket_2(path, *args):
        if path.endswith("bucket-00002"):
            raise KeyboardInterrupt("killed")
        return real_shuffle(path, *args)

    monkeypatch.setattr(pretraining_records, "_shuffled_records", killed_at_bucket_2)
    run = functools.partial(
        pretraining_records.create_pretraining_data,
        [text_file],
        outputs,
        tokenizer,
        OPTIONS,
        memory_megabytes=0.25,  # more than fits: buckets shuffled one by one
    )
    with pytest.raises(KeyboardInterrupt):
        run()
    finished = {p: os.stat(p).st_mtime_ns for p in outputs[:2]}
    assert not any(os.path.exists(p) for p in outputs[2:])
    work = pretraining_records.work_directory(outputs)
    state = json.loads(pathlib.Path(work, "state.json").read_text())
    assert state["buckets_written"] == [0, 1]

    monkeypatch.setattr(pretraining_records, "_shuffled_records", real_shuffle)
    made = []
    monkeypatch.setattr(pretraining_records, "_process_task", recording_tasks(made))
    run()
    assert made == []  # No instance made again,
    assert {p: os.stat(p).st_mtime_ns for p in outputs[:2]} == finished  # no bucket rewritten,
    assert collections.Counter(read_records(outputs)) == collections.Counter(reference)
    assert not os.path.exists(work)


def test_a_run_killed_while_making_instances_resumes_from_its_last_task(
    tmp_path, text_file, tokenizer, in_memory, monkeypatch
):
    _, reference = in_memory
    outputs = [str(tmp_path / "train")]
    monkeypatch.setattr(pretraining_records, "SAVE_SECONDS", 0.0)  # a resumable point per task
    made = []
    monkeypatch.setattr(pretraining_records, "_process_task", recording_tasks(made, 5))
    with pytest.raises(KeyboardInterrupt):
        pretraining_records.create_pretraining_data([text_file], outputs, tokenizer, OPTIONS)
    first_five = list(made)
    made.clear()
    monkeypatch.setattr(pretraining_records, "_process_task", recording_tasks(made))
    pretraining_records.create_pretraining_data([text_file], outputs, tokenizer, OPTIONS)
    assert not set(made) & set(first_five) and len(first_five) + len(made) == len(
        pretraining_records.instance_tasks(60, OPTIONS.dupe_factor)
    )
    assert collections.Counter(read_records(outputs)) == collections.Counter(reference)


def test_bucket_records_lost_in_a_machine_crash_are_made_again(
    tmp_path, text_file, tokenizer, in_memory, monkeypatch
):
    """Bucket files are flushed, not synced: one shorter than state.json records (what a
    crashed machine lost) makes the bucket stage start over instead of reading zeros."""
    _, reference = in_memory
    outputs = [str(tmp_path / "train")]
    monkeypatch.setattr(pretraining_records, "SAVE_SECONDS", 0.0)
    made = []
    monkeypatch.setattr(pretraining_records, "_process_task", recording_tasks(made, 5))
    with pytest.raises(KeyboardInterrupt):
        pretraining_records.create_pretraining_data([text_file], outputs, tokenizer, OPTIONS)
    bucket = pathlib.Path(pretraining_records.work_directory(outputs), "buckets", "bucket-00000")
    bucket.write_bytes(bucket.read_bytes()[:-100])  # the last 100 bytes never reached disk
    made.clear()
    monkeypatch.setattr(pretraining_records, "_process_task", recording_tasks(made))
    pretraining_records.create_pretraining_data([text_file], outputs, tokenizer, OPTIONS)
    assert len(made) == len(pretraining_records.instance_tasks(60, OPTIONS.dupe_factor))
    assert collections.Counter(read_records(outputs)) == collections.Counter(reference)


def test_other_flags_start_over_instead_of_resuming(tmp_path, text_file, tokenizer, monkeypatch):
    outputs = [str(tmp_path / "train")]
    monkeypatch.setattr(
        pretraining_records, "_shuffled_records", lambda *a: (_ for _ in ()).throw(OSError("x"))
    )
    with pytest.raises(OSError):
        pretraining_records.create_pretraining_data(
            [text_file], outputs, tokenizer, OPTIONS, memory_megabytes=0.25
        )
    monkeypatch.undo()
    other = pretraining_instances.InstanceOptions(
        max_seq_length=64, max_predictions_per_seq=10, dupe_factor=1
    )
    stats = pretraining_records.create_pretraining_data([text_file], outputs, tokenizer, other)
    corpus = corpus_tokenization.tokenize_corpus(text_corpus.read_documents([text_file]), tokenizer)
    vocab = pretraining_instances.Vocab.from_tokenizer(tokenizer)
    expected = pretraining_records.generate_records(corpus, other, vocab)
    assert stats["instances"] == len(expected)
    assert collections.Counter(read_records(outputs)) == collections.Counter(expected)


PEAK_RSS = textwrap.dedent(
    """
    import resource, sys
    from data import pretraining_instances, pretraining_records, tokenization
    text, vocab, out, memory = sys.argv[1:]
    tokenizer = tokenization.FullTokenizer(vocab, do_lower_case=True)
    options = pretraining_instances.InstanceOptions(max_seq_length=128, dupe_factor=1)
    stats = pretraining_records.create_pretraining_data(
        [text], [out + "-0", out + "-1"], tokenizer, options, 1, memory_megabytes=int(memory)
    )
    print(stats["instances"], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """
)


@pytest.mark.slow
def test_peak_memory_stays_flat_for_a_corpus_ten_times_larger(
    tmp_path, shared_data, minilm_vocab, monkeypatch
):
    """1x and 10x the real text (1.85 and 18.5 MB), a 16 MB shuffle budget: the 10x run's peak
    RSS stays within 1.25x of the 1x run's (held in memory it grew ~24 bytes per input byte)."""
    text = "".join(
        p.read_text(encoding="utf-8").rstrip("\n") + "\n\n"
        for p in sorted((shared_data / "text").glob("*.txt"))
    )
    peaks, instances = [], []
    for scale in (1, 10):
        path = tmp_path / f"text{scale}.txt"
        path.write_text(text * scale, encoding="utf-8")
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                PEAK_RSS,
                str(path),
                minilm_vocab,
                str(tmp_path / f"o{scale}"),
                "16",
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=900,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        )
        assert result.returncode == 0, result.stderr[-3000:]
        count, peak_kb = map(int, result.stdout.split()[-2:])
        instances.append(count)
        peaks.append(peak_kb)
    assert 9 * instances[0] < instances[1] < 11 * instances[0]
    assert peaks[1] < 1.25 * peaks[0], peaks


def test_inputs_and_outputs_on_a_tensorflow_file_system(text_file, tokenizer, in_memory):
    """gs:// paths go through tf.io.gfile; TensorFlow's ram:// file system stands in for it
    (the work directory is then local)."""
    _, reference = in_memory
    remote_text = "ram://corpus/docs.txt"
    with open(text_file, "rb") as f:
        tf.io.gfile.makedirs("ram://corpus")
        with tf.io.gfile.GFile(remote_text, "wb") as g:
            g.write(f.read())
    assert text_corpus.expand_file_patterns("ram://corpus/*.txt") == [remote_text]
    outputs = pretraining_records.output_paths("ram://records/train", 2)
    pretraining_records.create_pretraining_data([remote_text], outputs, tokenizer, OPTIONS)
    assert collections.Counter(read_records(outputs)) == collections.Counter(reference)
    assert not os.path.exists(pretraining_records.work_directory(outputs))
    with pytest.raises(FileNotFoundError, match="ram://corpus/missing.txt"):
        pretraining_records.create_pretraining_data(
            ["ram://corpus/missing.txt"], outputs, tokenizer, OPTIONS
        )


def _fails_on_task_3(task):
    if task[1] == 3 * pretraining_records.DOCUMENTS_PER_TASK:
        raise ValueError("a bad task")
    return _REAL_PROCESS_TASK(task)


_REAL_PROCESS_TASK = pretraining_records._process_task


def test_a_failing_worker_stops_the_run_with_its_error(tmp_path, text_file, tokenizer, monkeypatch):
    """With 2 worker processes, a task's error reaches the caller (the pool closes; nothing
    waits forever on the tasks still to feed)."""
    import signal

    monkeypatch.setattr(pretraining_records, "_process_task", _fails_on_task_3)
    signal.alarm(300)  # a hang fails the test instead of the suite
    try:
        with pytest.raises(ValueError, match="a bad task"):
            pretraining_records.create_pretraining_data(
                [text_file], [str(tmp_path / "train")], tokenizer, OPTIONS, num_workers=2
            )
    finally:
        signal.alarm(0)


def test_worker_processes_import_no_tensorflow(tmp_path, text_file, tokenizer, monkeypatch):
    """The pool's workers import neither TensorFlow nor the tokenizers (or every worker would
    pay TensorFlow's import), even when started by a project program whose quiet start-up
    (MARKER, inherited) would otherwise import it in every child."""
    monkeypatch.setenv(tf_startup.MARKER, tf_startup.QUIET_LEVEL)
    corpus_dir = str(tmp_path / "corpus")
    pretraining_records.store_corpus(text_corpus.read_text_file(text_file), tokenizer, corpus_dir)
    vocab = pretraining_instances.Vocab.from_tokenizer(tokenizer)
    with pretraining_records.worker_pool(2, (corpus_dir, OPTIONS, vocab, 2)) as pool:
        check = "sorted(m for m in __import__('sys').modules if m.startswith('tensorflow'))[:3]"
        assert [pool.apply(eval, (check,)) for _ in range(4)] == [[]] * 4
        assert pool.apply(pretraining_records._process_task, ((0, 0, 16),))[0] == (0, 0, 16)
