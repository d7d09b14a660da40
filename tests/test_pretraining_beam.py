"""The Beam pipeline (DirectRunner) writes the local path's records, from the same inputs.

The reference is the in-memory path (`generate_records`) over the same real text
(shared/data/text), split into several files so that the pipeline tokenizes them as separate
corpus parts and must read them back as one corpus.
"""

import collections
import json
import os
import subprocess
import sys
import tempfile

import apache_beam  # noqa: F401 (the [beam] extra: CI installs it; missing, this file fails)
import numpy as np
import pytest
from conftest import REPO_ROOT, read_records

from data import (
    corpus_store,
    corpus_tokenization,
    pretraining_beam,
    pretraining_instances,
    pretraining_records,
    text_corpus,
    tokenization,
)


@pytest.fixture(scope="module")
def documents(shared_data):
    path = str(shared_data / "text" / "wiki_squad_contexts.txt")
    return list(text_corpus.read_text_file(path))[:48]


def _write(path, documents):
    path.write_text("\n\n".join("\n".join(d) for d in documents) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def text_files(documents, tmp_path_factory):
    """Three files of 20, 0 (empty: a part with no documents) and 28 documents."""
    directory = tmp_path_factory.mktemp("text")
    empty = directory / "b.txt"
    empty.write_text("", encoding="utf-8")
    return [
        _write(directory / "a.txt", documents[:20]),
        str(empty),
        _write(directory / "c.txt", documents[20:]),
    ]


def test_parts_read_as_one_corpus_equal_the_corpus_of_all_files(tmp_path, text_files, minilm_vocab):
    tokenizer = tokenization.FullTokenizer(minilm_vocab, do_lower_case=True)
    whole = corpus_tokenization.tokenize_corpus(text_corpus.read_documents(text_files), tokenizer)
    parts = []
    for i, path in enumerate(text_files):
        directory = str(tmp_path / f"part-{i}")
        pretraining_records.store_corpus(text_corpus.read_text_file(path), tokenizer, directory)
        parts.append(corpus_store.StoredCorpus(directory))
    joined = corpus_store.ConcatenatedCorpus(parts)
    assert joined.num_documents == whole.num_documents
    for d in range(whole.num_documents):
        assert joined.sentence_offsets(d) == whole.sentence_offsets(d)
    offsets = np.random.default_rng(0).integers(0, len(whole.token_ids), size=(40, 64))
    np.testing.assert_array_equal(joined.gather(offsets), whole.token_ids[offsets])
    joined.close()


@pytest.mark.slow
@pytest.mark.parametrize("masking", [True, False])
def test_direct_runner_writes_the_local_paths_records(tmp_path, text_files, minilm_vocab, masking):
    """Same multiset of records as the in-memory path over the files read in order."""
    options = pretraining_instances.InstanceOptions(
        max_seq_length=64, max_predictions_per_seq=10, dupe_factor=2, masking=masking
    )
    tokenizer = tokenization.FullTokenizer(minilm_vocab, do_lower_case=True)
    corpus = corpus_tokenization.tokenize_corpus(text_corpus.read_documents(text_files), tokenizer)
    vocab = pretraining_instances.Vocab.from_tokenizer(tokenizer)
    expected = pretraining_records.generate_records(corpus, options, vocab)

    prefix = str(tmp_path / "out" / "train")
    argv = [
        sys.executable,
        "-m",
        "data.create_pretraining_data",
        f"--input_file={','.join(text_files)}",
        f"--output_file={prefix}",
        "--num_output_shards=3",
        f"--vocab_file={minilm_vocab}",
        "--do_lower_case",
        "--max_seq_length=64",
        "--max_predictions_per_seq=10",
        "--dupe_factor=2",
        "--runner=DirectRunner",
        "--direct_num_workers=1",  # a Beam option, passed through
    ]
    if not masking:
        argv.append("--no_masking")
    subprocess.run(argv, cwd=REPO_ROOT, check=True, capture_output=True)

    shards = [f"{prefix}-{i:05d}-of-00003" for i in range(3)]
    got = read_records(shards)
    assert collections.Counter(got) == collections.Counter(expected)
    assert not os.path.exists(pretraining_beam.work_directory(prefix))  # removed when done
    for shard in shards:
        info_path = shard + ".info.json"
        if masking:
            assert not os.path.exists(info_path)
        else:
            with open(info_path) as f:
                info = json.load(f)
            assert info["num_instances"] == len(read_records([shard]))
            assert info["vocab_size"] == vocab.size and info["masked"] is False


def test_beam_options_need_a_runner(tmp_path, text_files, minilm_vocab):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "data.create_pretraining_data",
            f"--input_file={text_files[0]}",
            f"--output_file={tmp_path / 'x'}",
            f"--vocab_file={minilm_vocab}",
            "--temp_location=/tmp",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "--temp_location" in result.stderr and "--runner" in result.stderr


def test_remote_parts_are_copied_once_per_machine(tmp_path, text_files, minilm_vocab, monkeypatch):
    tokenizer = tokenization.FullTokenizer(minilm_vocab, do_lower_case=True)
    work = "ram://beam-test/work"
    for i, path in enumerate(text_files):
        local = str(tmp_path / f"written-{i}")
        pretraining_records.store_corpus(text_corpus.read_text_file(path), tokenizer, local)
        pretraining_beam._copy_directory(local, pretraining_beam._part(work, i))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "machine"))
    os.makedirs(tempfile.tempdir)
    first = pretraining_beam._local_copy(work, len(text_files), "run-1")
    stamps = [os.stat(os.path.join(d, "tokens.bin")).st_mtime_ns for d in first]
    again = pretraining_beam._local_copy(work, len(text_files), "run-1")  # another worker process
    assert again == first
    assert [os.stat(os.path.join(d, "tokens.bin")).st_mtime_ns for d in again] == stamps
    whole = corpus_tokenization.tokenize_corpus(text_corpus.read_documents(text_files), tokenizer)
    joined = corpus_store.ConcatenatedCorpus([corpus_store.StoredCorpus(d) for d in first])
    np.testing.assert_array_equal(joined.gather(np.arange(len(whole.token_ids))), whole.token_ids)
    joined.close()
