"""Tests of data.create_pretraining_data on real text (shared/data/text)."""

import glob
import json
import math
import os
import pathlib
import subprocess
import sys
import unicodedata

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO_ROOT

from data import (
    corpus_tokenization,
    pretraining_input,
    pretraining_instances,
    pretraining_records,
    text_corpus,
    tokenization,
)

MAX_SEQ = 128
MAX_PRED = 20
NUM_DOCS = 20  # The first documents of the file keep the tests fast.

# The original google-research/bert reader's feature spec.
ORIGINAL_SPEC = {
    "input_ids": tf.io.FixedLenFeature([MAX_SEQ], tf.int64),
    "input_mask": tf.io.FixedLenFeature([MAX_SEQ], tf.int64),
    "segment_ids": tf.io.FixedLenFeature([MAX_SEQ], tf.int64),
    "masked_lm_positions": tf.io.FixedLenFeature([MAX_PRED], tf.int64),
    "masked_lm_ids": tf.io.FixedLenFeature([MAX_PRED], tf.int64),
    "masked_lm_weights": tf.io.FixedLenFeature([MAX_PRED], tf.float32),
    "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
}


@pytest.fixture(scope="module")
def tokenizer(minilm_vocab):
    return tokenization.FullTokenizer(minilm_vocab, do_lower_case=True)


@pytest.fixture(scope="module")
def documents(shared_data):
    docs = list(text_corpus.read_text_file(str(shared_data / "text" / "wiki_squad_contexts.txt")))
    return docs[:NUM_DOCS]


@pytest.fixture(scope="module")
def small_text_file(documents, tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "docs.txt"
    path.write_text("\n\n".join("\n".join(d) for d in documents[:8]) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def corpus(documents, tokenizer):
    return corpus_tokenization.tokenize_corpus(documents, tokenizer)


@pytest.fixture(scope="module")
def vocab(tokenizer):
    return pretraining_instances.Vocab.from_tokenizer(tokenizer)


def parse(records):
    """Decodes records with the original spec into numpy arrays."""
    parsed = tf.io.parse_example(tf.constant(records), ORIGINAL_SPEC)
    return {k: v.numpy() for k, v in parsed.items()}


def make(corpus, vocab, **overrides):
    options = pretraining_instances.InstanceOptions(
        **dict(
            dict(max_seq_length=MAX_SEQ, dupe_factor=1, max_predictions_per_seq=MAX_PRED),
            **overrides,
        )
    )
    return parse(pretraining_records.generate_records(corpus, options, vocab, num_workers=1))


def restore(parsed):
    """Original (unmasked) token ids: labels put back at the masked positions."""
    ids = parsed["input_ids"].copy()
    rows, cols = np.nonzero(parsed["masked_lm_weights"])
    ids[rows, parsed["masked_lm_positions"][rows, cols]] = parsed["masked_lm_ids"][rows, cols]
    return ids


def binomial_ok(successes, n, p, sigmas=4.0):
    return abs(successes - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def test_fast_tokenization_equals_reference_tokenizer(documents, corpus, tokenizer):
    sentences = [s for d in documents for s in d]
    starts = corpus.sentence_starts
    assert len(starts) - 1 == len(sentences)  # No empty sentence in this file.
    rng = np.random.default_rng(0)
    non_ascii = [i for i, s in enumerate(sentences) if not s.isascii()]
    sample = list(rng.choice(len(sentences), 150, replace=False)) + non_ascii[:50]
    for i in sample:
        expected = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(sentences[i]))
        assert corpus.token_ids[starts[i] : starts[i + 1]].tolist() == expected, sentences[i]


def test_serialization_equals_protobuf(corpus, vocab):
    from tensorflow.core.example import example_pb2

    options = pretraining_instances.InstanceOptions(max_seq_length=MAX_SEQ, dupe_factor=1)
    instances = pretraining_instances.create_instances(corpus, 0, 0, 4, options, vocab)
    records = pretraining_instances.serialize_instances(instances)
    assert len(records) == len(instances.lengths) > 10
    for row, record in enumerate(records[:20]):
        example = example_pb2.Example()
        feature = example.features.feature
        length, a_length = instances.lengths[row], instances.segment_a_lengths[row]
        feature["input_ids"].int64_list.value.extend(instances.input_ids[row].tolist())
        feature["input_mask"].int64_list.value.extend([1] * length + [0] * (MAX_SEQ - length))
        feature["segment_ids"].int64_list.value.extend(
            [0] * a_length + [1] * (length - a_length) + [0] * (MAX_SEQ - length)
        )
        feature["masked_lm_positions"].int64_list.value.extend(
            instances.masked_lm_positions[row].tolist()
        )
        feature["masked_lm_ids"].int64_list.value.extend(instances.masked_lm_ids[row].tolist())
        feature["masked_lm_weights"].float_list.value.extend(
            instances.masked_lm_weights[row].tolist()
        )
        feature["next_sentence_labels"].int64_list.value.append(int(instances.is_random_next[row]))
        assert record == example.SerializeToString(deterministic=True)


def test_sentence_pairs_are_packed_from_corpus_text(corpus, vocab):
    parsed = make(corpus, vocab, short_seq_prob=0.0, dupe_factor=2)
    ids, mask, segments = parsed["input_ids"], parsed["input_mask"], parsed["segment_ids"]
    n = len(ids)
    lengths = mask.sum(axis=1)
    assert n > 100
    # input_mask is a prefix of ones; lengths never exceed max_seq_length.
    assert np.all(mask == (np.arange(MAX_SEQ)[None] < lengths[:, None]))
    # Without short sequences nearly every instance is packed to the maximum.
    assert np.mean(lengths == MAX_SEQ) > 0.8
    restored = restore(parsed)
    stream = corpus.token_ids.astype("<i4").tobytes()
    doc_of_token = (
        np.searchsorted(
            corpus.sentence_starts[corpus.document_starts],
            np.arange(len(corpus.token_ids)),
            side="right",
        )
        - 1
    )

    def locate(tokens):
        """Document of a contiguous run of corpus tokens (-1 if not found)."""
        at = stream.find(tokens.astype("<i4").tobytes())
        while at % 4:  # Only aligned matches are token matches.
            at = stream.find(tokens.astype("<i4").tobytes(), at + 1)
        return -1 if at < 0 else doc_of_token[at // 4]

    for row in range(n):
        length = lengths[row]
        sep = np.flatnonzero(restored[row, :length] == vocab.sep_id)
        assert restored[row, 0] == vocab.cls_id and len(sep) == 2 and sep[1] == length - 1
        # Segment 0 is [CLS] A [SEP], segment 1 is B [SEP].
        assert np.all(segments[row, : sep[0] + 1] == 0)
        assert np.all(segments[row, sep[0] + 1 : length] == 1)
        assert np.all(segments[row, length:] == 0)
        tokens_a, tokens_b = restored[row, 1 : sep[0]], restored[row, sep[0] + 1 : length - 1]
        assert len(tokens_a) >= 1 and len(tokens_b) >= 1
        doc_a, doc_b = locate(tokens_a), locate(tokens_b)
        assert doc_a >= 0 and doc_b >= 0  # A and B are real, contiguous corpus text.
        if min(len(tokens_a), len(tokens_b)) >= 10:  # Long enough to be unambiguous.
            if parsed["next_sentence_labels"][row, 0]:
                assert doc_a != doc_b
            else:
                assert doc_a == doc_b


def test_short_sequences_and_random_next_fraction(corpus, vocab):
    parsed = make(corpus, vocab, dupe_factor=4)
    lengths = parsed["input_mask"].sum(axis=1)
    n = len(lengths)
    # Targets are drawn per document: ~10% of (document, dupe) draws are short.
    assert np.median(lengths) >= 0.9 * MAX_SEQ
    assert 0.01 < np.mean(lengths < MAX_SEQ // 2) < 0.4
    # short_seq_prob=1: every target length is uniform in [2, 125].
    short = make(corpus, vocab, short_seq_prob=1.0, dupe_factor=4)["input_mask"].sum(axis=1)
    assert np.median(short) < 0.8 * MAX_SEQ and np.min(short) < 0.3 * MAX_SEQ
    # Next-sentence: 50% random, plus chunks of one sentence that must be random.
    random_next = int(parsed["next_sentence_labels"].sum())
    sigma = math.sqrt(n * 0.25)
    assert n * 0.5 - 4 * sigma <= random_next <= n * 0.5 + 4 * sigma + 0.05 * n


def test_masking_rule_and_80_10_10(corpus, vocab):
    parsed = make(corpus, vocab, dupe_factor=3)
    weights, positions = parsed["masked_lm_weights"], parsed["masked_lm_positions"]
    lengths = parsed["input_mask"].sum(axis=1)
    restored = restore(parsed)
    expected = np.minimum(MAX_PRED, np.maximum(1, [round(x * 0.15) for x in lengths]))
    np.testing.assert_array_equal(weights.sum(axis=1), expected)
    total = 0
    outcome = {"mask": 0, "keep": 0, "random": 0}
    for row in range(len(lengths)):
        k = int(expected[row])
        pos = positions[row, :k]
        assert np.all(np.diff(pos) > 0) and np.all(positions[row, k:] == 0)
        assert np.all(weights[row, k:] == 0) and np.all(parsed["masked_lm_ids"][row, k:] == 0)
        assert np.all(pos < lengths[row])
        labels = parsed["masked_lm_ids"][row, :k]
        assert not np.isin(labels, [vocab.cls_id, vocab.sep_id]).any()
        np.testing.assert_array_equal(restored[row, pos], labels)
        shown = parsed["input_ids"][row, pos]
        outcome["mask"] += int(np.sum(shown == vocab.mask_id))
        outcome["keep"] += int(np.sum(shown == labels))
        outcome["random"] += int(np.sum((shown != labels) & (shown != vocab.mask_id)))
        total += k
        # Unmasked positions show the original token.
        others = np.setdiff1d(np.arange(MAX_SEQ), pos)
        np.testing.assert_array_equal(parsed["input_ids"][row, others], restored[row, others])
    assert binomial_ok(outcome["mask"], total, 0.8)
    assert binomial_ok(outcome["keep"], total, 0.1 + 0.1 / vocab.size, sigmas=4.5)
    assert binomial_ok(outcome["random"], total, 0.1 - 0.1 / vocab.size, sigmas=4.5)
    # Overall masking rate ~15% of the tokens.
    assert abs(total / lengths.sum() - 0.15) < 0.01


def test_whole_word_masking_keeps_words_together(corpus, vocab, tokenizer):
    parsed = make(corpus, vocab, do_whole_word_mask=True, dupe_factor=2)
    restored = restore(parsed)
    is_piece = vocab.is_continuation
    words_checked = 0
    for row in range(len(restored)):
        masked = set(parsed["masked_lm_positions"][row][parsed["masked_lm_weights"][row] > 0])
        length = parsed["input_mask"][row].sum()
        assert 1 <= len(masked) <= MAX_PRED
        for i in range(1, length):
            if is_piece[restored[row, i]] and restored[row, i - 1] not in (
                vocab.sep_id,
                vocab.cls_id,
            ):
                # A "##" piece and the token before it are masked together.
                assert (i in masked) == (i - 1 in masked), tokenizer.convert_ids_to_tokens(
                    restored[row, max(0, i - 3) : i + 2]
                )
                words_checked += i in masked
    assert words_checked > 20  # Multi-piece words were actually masked.
    lengths = parsed["input_mask"].sum(axis=1)
    expected = np.minimum(MAX_PRED, np.maximum(1, np.rint(lengths * 0.15)))
    # Whole words may leave a few slots free, never overshoot.
    assert np.all(parsed["masked_lm_weights"].sum(axis=1) <= expected)
    assert np.mean(parsed["masked_lm_weights"].sum(axis=1) == expected) > 0.8


def test_deterministic_for_seed(corpus, vocab):
    options = pretraining_instances.InstanceOptions(max_seq_length=MAX_SEQ, dupe_factor=1)
    first = pretraining_records.generate_records(corpus, options, vocab)
    assert first == pretraining_records.generate_records(corpus, options, vocab)
    other = pretraining_instances.InstanceOptions(
        max_seq_length=MAX_SEQ, dupe_factor=1, random_seed=7
    )
    assert first != pretraining_records.generate_records(corpus, other, vocab)


def test_end_to_end_same_bytes_for_1_and_2_workers(small_text_file, tokenizer, tmp_path):
    options = pretraining_instances.InstanceOptions(max_seq_length=MAX_SEQ, dupe_factor=2)
    contents = []
    for workers in (1, 2):
        outputs = pretraining_records.output_paths(
            str(tmp_path / f"w{workers}" / "train.tfrecord"), 2
        )
        stats = pretraining_records.create_pretraining_data(
            [small_text_file], outputs, tokenizer, options, num_workers=workers
        )
        assert sum(stats["records_per_file"]) == stats["instances"] > 50
        contents.append([pathlib.Path(p).read_bytes() for p in outputs])
        assert sorted(os.listdir(tmp_path / f"w{workers}")) == [
            "train.tfrecord-00000-of-00002",
            "train.tfrecord-00001-of-00002",
        ]
    assert contents[0] == contents[1]
    records = [
        r.numpy() for r in tf.data.TFRecordDataset(sorted(glob.glob(str(tmp_path / "w2" / "*"))))
    ]
    assert len(records) == stats["instances"]
    parse(records)  # Every record decodes with the original spec.


def test_unmasked_records_for_dynamic_masking(small_text_file, tokenizer, tmp_path):
    options = pretraining_instances.InstanceOptions(
        max_seq_length=MAX_SEQ, dupe_factor=1, masking=False
    )
    output = str(tmp_path / "unmasked.tfrecord")
    pretraining_records.create_pretraining_data([small_text_file], [output], tokenizer, options)
    parsed = parse([r.numpy() for r in tf.data.TFRecordDataset(output)])
    assert not parsed["masked_lm_weights"].any() and not parsed["masked_lm_positions"].any()
    assert not (parsed["input_ids"] == tokenizer.mask_id).any()
    import json

    info = json.loads(pathlib.Path(output + pretraining_input.INFO_SUFFIX).read_text())
    assert info["masked"] is False and info["vocab_size"] == len(tokenizer.vocab)
    assert info["num_instances"] == len(parsed["input_ids"])


def test_missing_input_file_is_named(tokenizer, tmp_path):
    missing = str(tmp_path / "nope.txt")
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        pretraining_records.create_pretraining_data(
            [missing],
            [str(tmp_path / "out")],
            tokenizer,
            pretraining_instances.InstanceOptions(dupe_factor=1),
        )
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        text_corpus.expand_file_patterns(str(tmp_path / "nothing-here*.txt"))
    assert os.listdir(tmp_path) == []


def test_non_utf8_input_names_file_and_line(tokenizer, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"A good sentence.\nAnother one.\nBroken \xff\xfe byte.\n")
    with pytest.raises(ValueError, match=r"bad\.txt:3: not valid UTF-8"):
        pretraining_records.create_pretraining_data(
            [str(bad)],
            [str(tmp_path / "out")],
            tokenizer,
            pretraining_instances.InstanceOptions(dupe_factor=1),
        )
    assert sorted(os.listdir(tmp_path)) == ["bad.txt"]


def test_failed_write_leaves_no_partial_output(tmp_path):
    good = pretraining_records.write_records([b"x"] * 4, [str(tmp_path / "ok")], random_seed=1)
    assert good == [4]
    with pytest.raises(TypeError):
        pretraining_records.write_records(
            [b"x", b"y", None, b"z"], [str(tmp_path / "out")], random_seed=1
        )
    assert sorted(os.listdir(tmp_path)) == ["ok"]


def test_vectorized_truncation_matches_original_loop():
    rng = np.random.default_rng(1)
    n, max_tokens = 2000, 125
    len_a, len_b = rng.integers(1, 200, n), rng.integers(1, 200, n)
    a_lo, b_lo = rng.integers(0, 1000, n), rng.integers(0, 1000, n)
    new = pretraining_instances.truncate_seq_pairs(
        a_lo, a_lo + len_a, b_lo, b_lo + len_b, max_tokens, rng
    )
    front_drops = total_drops = 0
    for i in range(n):
        # The original loop: drop from the longer one until the pair fits.
        la, lb = int(len_a[i]), int(len_b[i])
        while la + lb > max_tokens:
            if la > lb:
                la -= 1
            else:
                lb -= 1
        assert (new[1][i] - new[0][i], new[3][i] - new[2][i]) == (la, lb)
        assert a_lo[i] <= new[0][i] and new[1][i] <= a_lo[i] + len_a[i]
        assert b_lo[i] <= new[2][i] and new[3][i] <= b_lo[i] + len_b[i]
        front_drops += int(new[0][i] - a_lo[i] + new[2][i] - b_lo[i])
        total_drops += int(len_a[i] - la + len_b[i] - lb)
    assert binomial_ok(front_drops, total_drops, 0.5)


def test_sentence_splitter_recovers_most_sentence_boundaries(shared_data):
    # The shared files are one sentence per line (made with a similar
    # heuristic); joining a document and splitting it again should give back
    # nearly all of its sentences.
    path = str(shared_data / "text" / "wikitext2_test_sentences.txt")
    documents = list(text_corpus.read_text_file(path))[:15]
    total = recovered = 0
    for document in documents:
        split = text_corpus.split_sentences(" ".join(document))
        assert " ".join(split) == " ".join(document)  # Nothing lost or altered.
        total += len(document)
        recovered += len(set(split) & set(document))
    assert recovered / total > 0.9


def test_large_ids_round_trip_through_tf_parser():
    # Varints of 1 to 4 bytes (ids up to 2**28, e.g. huge vocabularies).
    rng = np.random.default_rng(2)
    n = 50
    ids = rng.integers(0, 1 << 28, (n, MAX_SEQ)).astype(np.int64)
    ids[:, :4] = [127, 128, 16384, (1 << 21) + 5]
    instances = pretraining_instances.Instances(
        input_ids=ids,
        lengths=rng.integers(5, MAX_SEQ + 1, n),
        segment_a_lengths=np.full([n], 3),
        is_random_next=rng.random(n) < 0.5,
        masked_lm_positions=rng.integers(0, MAX_SEQ, (n, MAX_PRED)),
        masked_lm_ids=rng.integers(0, 1 << 28, (n, MAX_PRED)),
        masked_lm_weights=rng.random((n, MAX_PRED)).astype(np.float32),
    )
    parsed = parse(pretraining_instances.serialize_instances(instances))
    np.testing.assert_array_equal(parsed["input_ids"], ids)
    np.testing.assert_array_equal(parsed["masked_lm_ids"], instances.masked_lm_ids)
    np.testing.assert_array_equal(parsed["masked_lm_positions"], instances.masked_lm_positions)
    np.testing.assert_array_equal(parsed["masked_lm_weights"], instances.masked_lm_weights)
    np.testing.assert_array_equal(parsed["next_sentence_labels"][:, 0], instances.is_random_next)
    np.testing.assert_array_equal(parsed["input_mask"].sum(axis=1), instances.lengths)


def test_hugging_face_source_is_read_as_documents_of_sentences(monkeypatch, shared_data):
    """The `datasets` path (online only) on records rebuilt from the real text, no network."""
    import datasets

    from data import text_corpus

    documents = list(
        text_corpus.read_text_file(str(shared_data / "text" / "wiki_squad_contexts.txt"))
    )[:3]
    records = [{"text": " ".join(doc), "title": f"doc{i}"} for i, doc in enumerate(documents)]
    calls = []

    def fake_load_dataset(name, config=None, split=None, streaming=False):
        calls.append((name, config, split, streaming))
        return iter(records)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    read = text_corpus.read_documents(hf_datasets=["wikimedia/wikipedia:20231101.en"])
    assert calls == [("wikimedia/wikipedia", "20231101.en", "train", True)]
    assert len(read) == 3
    for original, got in zip(documents, read):
        # Same text, re-split into sentences by the heuristic splitter.
        assert " ".join(got) == " ".join(original)
        assert len(got) >= 0.8 * len(original)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: iter([{"content": "x"}]))
    with pytest.raises(KeyError, match="no field 'text'"):
        text_corpus.read_documents(hf_datasets=["some/dataset"])


# -----------------------------------------------------------------------------
# SentencePiece models (data.learn_vocab).
# -----------------------------------------------------------------------------

SPM_WORD_START = "\u2581"


@pytest.fixture(scope="module")
def spm_tokenizer(shared_data, tmp_path_factory):
    from data import vocab_learning as learn_vocab

    text = (shared_data / "text" / "wiki_squad_contexts.txt").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip()]
    model = tmp_path_factory.mktemp("spm") / "spm.model"
    learn_vocab.train_sentencepiece(lines, str(model), vocab_size=3000, do_lower_case=True)
    return tokenization.create_tokenizer(spm_model_file=str(model), do_lower_case=True)


def test_sentencepiece_records_info_and_tokens(documents, spm_tokenizer, small_text_file, tmp_path):
    sp = spm_tokenizer.sp_model
    # The corpus holds exactly SentencePiece's own ids of every (non-empty) sentence.
    corpus = corpus_tokenization.tokenize_corpus(documents, spm_tokenizer)
    expected = [i for doc in documents for sentence in doc for i in sp.encode(sentence.lower())]
    assert corpus.token_ids.tolist() == expected
    expected_text = "," + ",".join(map(str, expected[: corpus.sentence_starts[-1]])) + ","
    options = pretraining_instances.InstanceOptions(
        max_seq_length=MAX_SEQ, dupe_factor=1, masking=False
    )
    output = str(tmp_path / "spm.tfrecord")
    pretraining_records.create_pretraining_data([small_text_file], [output], spm_tokenizer, options)
    info = json.loads(pathlib.Path(output + pretraining_input.INFO_SUFFIX).read_text())
    assert info["vocab_size"] == sp.get_piece_size() == 3000
    special = {name: sp.piece_to_id(f"[{name.upper()}]") for name in ("cls", "sep", "mask", "pad")}
    assert {name: info[f"{name}_id"] for name in special} == special
    assert len(set(special.values())) == 4 and sp.piece_to_id("[PAD]") == 0
    parsed = parse([r.numpy() for r in tf.data.TFRecordDataset(output)])
    assert info["num_instances"] == len(parsed["input_ids"]) > 20
    for ids, mask, segments in zip(
        parsed["input_ids"], parsed["input_mask"], parsed["segment_ids"]
    ):
        length = mask.sum()
        assert ids[0] == special["cls"] and ids[length - 1] == special["sep"]
        assert (ids[length:] == special["pad"]).all()
        a_end = np.flatnonzero(segments)[0] - 1 if segments.any() else length - 1
        assert ids[a_end] == special["sep"]
        # Segment A is a run of SentencePiece's ids of the input text.
        segment_a = "," + ",".join(map(str, ids[1:a_end])) + ","
        assert a_end > 1 and segment_a in expected_text


def test_sentencepiece_whole_word_masking_uses_word_start_marker(documents, spm_tokenizer):
    corpus = corpus_tokenization.tokenize_corpus(documents, spm_tokenizer)
    vocab = pretraining_instances.Vocab.from_tokenizer(spm_tokenizer)
    pieces = [spm_tokenizer.sp_model.id_to_piece(i) for i in range(vocab.size)]
    ascii_punctuation = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")

    def is_punctuation(char):  # BERT's definition: ASCII symbols and Unicode P*.
        return char in ascii_punctuation or unicodedata.category(char).startswith("P")

    # Independent of the implementation: a piece continues a word unless it has the
    # marker, is a special piece or only punctuation (a word of its own, as in BERT).
    continues = [
        not (p.startswith(SPM_WORD_START) or p in ("[CLS]", "[SEP]", "[MASK]", "[PAD]", "<unk>"))
        and not all(is_punctuation(c) for c in p)
        for p in pieces
    ]
    assert vocab.is_continuation.tolist() == continues
    assert not vocab.is_continuation[spm_tokenizer.sp_model.piece_to_id(SPM_WORD_START + "the")]

    parsed = make(corpus, vocab, do_whole_word_mask=True, dupe_factor=2)
    restored = restore(parsed)
    multi_piece_words = 0
    for row in range(len(restored)):
        masked = set(parsed["masked_lm_positions"][row][parsed["masked_lm_weights"][row] > 0])
        length = parsed["input_mask"][row].sum()
        for i in range(2, length):
            if continues[restored[row, i]] and restored[row, i - 1] != vocab.sep_id:
                assert (i in masked) == (i - 1 in masked), pieces[restored[row, i]]
                multi_piece_words += i in masked
    assert multi_piece_words > 20


@pytest.mark.slow
def test_command_line_sentencepiece_and_exclusive_vocab_flags(
    spm_tokenizer, small_text_file, minilm_vocab, tmp_path
):
    output = tmp_path / "cli.tfrecord"
    command = [
        sys.executable,
        "-m",
        "data.create_pretraining_data",
        f"--input_file={small_text_file}",
        f"--output_file={output}",
        f"--spm_model_file={spm_tokenizer.model_file}",
        "--dupe_factor=1",
        "--num_workers=1",
        "--no_masking",
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    subprocess.run(command, check=True, cwd=REPO_ROOT, env=env, capture_output=True)
    info = json.loads(pathlib.Path(str(output) + pretraining_input.INFO_SUFFIX).read_text())
    assert (info["vocab_size"], info["cls_id"], info["mask_id"]) == (3000, 2, 4)
    both = subprocess.run(
        [*command, f"--vocab_file={minilm_vocab}"], cwd=REPO_ROOT, env=env, capture_output=True
    )
    assert both.returncode != 0
    assert "--vocab_file" in both.stderr.decode() and "--spm_model_file" in both.stderr.decode()
