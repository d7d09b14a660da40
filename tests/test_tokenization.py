"""Tests for data.tokenization and data.learn_vocab.

Truth: the reference tokens/ids of 200 real sentences (google-research/bert
algorithm via transformers), the Unicode rules themselves (Python's str.lower,
unicodedata), hand-built vocabularies, and round trips.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO_ROOT

from data import tokenization
from data import vocab_learning as learn_vocab


@pytest.fixture(scope="module")
def reference(shared_data):
    with open(
        shared_data / "reference" / "wordpiece_reference_visible.json", encoding="utf-8"
    ) as f:
        ref = json.load(f)
    assert len(ref["entries"]) == 200
    return ref


@pytest.fixture(scope="module")
def full_tokenizer(minilm_vocab):
    return tokenization.FullTokenizer(minilm_vocab, do_lower_case=True)


@pytest.fixture(scope="module")
def in_graph(full_tokenizer):
    return full_tokenizer.in_graph_tokenizer


def _read_lines(path, n, start=0):
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f if line.strip()]
    return lines[start : start + n]


@pytest.fixture(scope="module")
def real_lines(shared_data):
    """A few hundred real sentences and questions, with accents, CJK, etc."""
    text = shared_data / "text"
    lines = _read_lines(text / "wiki_squad_contexts.txt", 300, start=1000) + _read_lines(
        text / "wikitext2_test_sentences.txt", 300, start=500
    )
    with open(shared_data / "squad" / "xquad-en-v1.1.json", encoding="utf-8") as f:
        squad = json.load(f)
    lines += [qa["question"] for p in squad["data"][0]["paragraphs"] for qa in p["qas"]]
    return lines


# ---- the 200 reference sentences -------------------------------------------


def test_reference_special_ids(reference, full_tokenizer, in_graph):
    for token, idx in reference["special_ids"].items():
        assert full_tokenizer.vocab[token] == idx
    assert in_graph.vocab_size == reference["vocab_size"] == len(full_tokenizer.vocab)
    assert (
        in_graph.pad_id,
        in_graph.unk_id,
        in_graph.cls_id,
        in_graph.sep_id,
        in_graph.mask_id,
    ) == (0, 100, 101, 102, 103)


def test_reference_python_face(reference, full_tokenizer):
    for entry in reference["entries"]:
        tokens = full_tokenizer.tokenize(entry["text"])
        assert tokens == entry["tokens"], entry["text"]
        assert full_tokenizer.convert_tokens_to_ids(tokens) == entry["ids"]
        assert full_tokenizer.convert_ids_to_tokens(entry["ids"]) == tokens


def test_reference_in_graph(reference, in_graph):
    texts = [e["text"] for e in reference["entries"]]
    ids = in_graph.tokenize(tf.constant(texts))
    assert isinstance(ids, tf.RaggedTensor)
    for entry, row in zip(reference["entries"], ids.to_list()):
        assert row == entry["ids"], entry["text"]
    tokens = in_graph.ids_to_tokens(ids).to_list()
    for entry, row in zip(reference["entries"], tokens):
        assert [t.decode("utf-8") for t in row] == entry["tokens"]


def test_reference_fast_path(reference, full_tokenizer):
    texts = [e["text"] for e in reference["entries"]]
    assert full_tokenizer.tokenize_batch(texts, batch_size=64) == [
        e["tokens"] for e in reference["entries"]
    ]
    assert full_tokenizer.tokenize_batch_to_ids(texts) == [e["ids"] for e in reference["entries"]]


# ---- Python face == in-graph on real text and on every character -----------


def test_python_equals_in_graph_on_real_lines(real_lines, full_tokenizer):
    assert len(real_lines) > 500
    assert full_tokenizer.tokenize_batch(real_lines) == [
        full_tokenizer.tokenize(line) for line in real_lines
    ]


def _unicode_probe_lines(stride):
    """Each assigned code point in several contexts (inside a word, alone,
    next to Σ so the final-sigma rule sees it)."""
    import unicodedata

    lines = []
    for cp in range(0, 0x110000, stride):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        if unicodedata.category(c) == "Cn":
            continue
        lines.append(f"Ab{c}Cd {c} x{c}\u03a3 \u03a3{c}A")
    return lines


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_python_equals_in_graph_on_unicode(minilm_vocab, do_lower_case):
    tok = tokenization.FullTokenizer(minilm_vocab, do_lower_case=do_lower_case)
    lines = _unicode_probe_lines(stride=7) + [
        "\u0391\u0392\u03a3 \u03a3\u03a3 \u039f\u0394\u039f\u03a3.",
        "A\u03a3'B A\u03a3\u00adB A\u03a3\u0301 \u0301\u03a3 A\u03a3\x01",
        "a\u2028b\u2029c\x85d\u3000e",
        "\x00\ufffd",
        "",
        "  \t\n ",
        "\ufb01ne \u00b2 \uff21 \u2126 \u212b \u0130stanbul",
    ]
    assert tok.tokenize_batch(lines, batch_size=4096) == [tok.tokenize(line) for line in lines]


def test_final_sigma_follows_python_lower(full_tokenizer, in_graph):
    # str.lower() implements Unicode's Final_Sigma rule; BERT inherits it.
    text = "\u039f\u0394\u039f\u03a3 \u03a3\u0391 \u0391\u03a3."
    expected = ["\u03bf\u03b4\u03bf\u03c2", "\u03c3\u03b1", "\u03b1\u03c2", "."]
    assert full_tokenizer.basic_tokenize(text) == expected
    words = in_graph.basic_tokenize(tf.constant(text)).numpy()
    assert [w.decode("utf-8") for w in words] == expected


def test_words_group_the_pieces(real_lines, full_tokenizer, in_graph):
    lines = real_lines[:50]
    words = in_graph.tokenize_words(tf.constant(lines))
    assert words.ragged_rank == 2
    basic = in_graph.basic_tokenize(tf.constant(lines)).to_list()
    for line, row, row_words in zip(lines, words.to_list(), basic):
        python_words = full_tokenizer.basic_tokenize(line)
        assert [w.decode("utf-8") for w in row_words] == python_words
        assert row == [
            full_tokenizer.convert_tokens_to_ids(full_tokenizer.wordpiece(w)) for w in python_words
        ]
    # A scalar string drops the batch dimension.
    scalar = in_graph.tokenize_words(tf.constant(lines[0])).to_list()
    assert scalar == words.to_list()[0]


# ---- rules -----------------------------------------------------------------


def test_overlong_word_is_unk(full_tokenizer, in_graph):
    # The limit is 100 characters (not bytes): alpha is 2 bytes in UTF-8.
    cases = {
        "a" * 100: False,
        "a" * 101: True,
        "\u03b1" * 100: False,
        "\u03b1" * 101: True,
        "\u00e9" * 101: True,
    }  # é -> e after accent stripping, 101 chars.
    for word, is_unk in cases.items():
        tokens = full_tokenizer.tokenize(f"x {word} y")
        ids = in_graph.tokenize(tf.constant(f"x {word} y")).numpy().tolist()
        assert full_tokenizer.convert_tokens_to_ids(tokens) == ids
        assert (tokens[1:-1] == ["[UNK]"]) == is_unk, word
    # A word with a character outside the vocab is one [UNK] as a whole.
    assert full_tokenizer.tokenize("hello\u2603world") == ["[UNK]"]


def _write_vocab(path, tokens):
    path.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    return path


def test_cased_mode_keeps_case_and_accents(tmp_path):
    vocab = _write_vocab(
        tmp_path / "vocab.txt",
        [
            "[PAD]",
            "[UNK]",
            "[CLS]",
            "[SEP]",
            "[MASK]",
            "Café",
            "café",
            "cafe",
            "Hello",
            "hello",
            "WORLD",
            "world",
            ",",
            "北",
            "京",
            "##s",
        ],
    )
    cased = tokenization.FullTokenizer(vocab, do_lower_case=False)
    uncased = tokenization.FullTokenizer(vocab, do_lower_case=True)
    text = "Café Hello,WORLD 北京 Hellos"
    assert cased.basic_tokenize(text) == ["Café", "Hello", ",", "WORLD", "北", "京", "Hellos"]
    assert cased.tokenize(text) == ["Café", "Hello", ",", "WORLD", "北", "京", "Hello", "##s"]
    assert uncased.tokenize(text) == ["cafe", "hello", ",", "world", "北", "京", "hello", "##s"]
    for tok in (cased, uncased):
        assert tok.tokenize_batch([text]) == [tok.tokenize(text)]
    # Decomposed accents are kept (not stripped) in cased mode too.
    assert cased.basic_tokenize("Cafe\u0301") == ["Cafe\u0301"]


# ---- vocab files -----------------------------------------------------------


def test_load_vocab_errors_name_file_and_line(tmp_path):
    with pytest.raises(tokenization.VocabError, match="not found"):
        tokenization.load_vocab(tmp_path / "missing.txt")
    dup = _write_vocab(tmp_path / "dup.txt", ["[PAD]", "[UNK]", "a", "b", "a"])
    with pytest.raises(
        tokenization.VocabError, match=r"dup\.txt:5: duplicate token 'a' \(first on line 3"
    ):
        tokenization.load_vocab(dup)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"[PAD]\n[UNK]\nok\n\xff\xfe\n")
    with pytest.raises(tokenization.VocabError, match=r"bad\.txt:4: not valid UTF-8"):
        tokenization.load_vocab(bad)
    empty_line = _write_vocab(tmp_path / "gap.txt", ["[UNK]", "", "x"])
    with pytest.raises(tokenization.VocabError, match=r"gap\.txt:2: empty line"):
        tokenization.load_vocab(empty_line)
    no_unk = _write_vocab(tmp_path / "nounk.txt", ["[PAD]", "a"])
    with pytest.raises(tokenization.VocabError, match=r"nounk\.txt.*\[UNK\]"):
        tokenization.FullTokenizer(no_unk)
    good = tokenization.load_vocab(_write_vocab(tmp_path / "ok.txt", ["x", "y"]))
    assert list(good.items()) == [("x", 0), ("y", 1)]


# ---- export ----------------------------------------------------------------


@pytest.mark.slow
def test_in_graph_in_tf_data_and_saved_model(tmp_path, in_graph, full_tokenizer):
    texts = ["Hello, world!", "Frédéric Chopin's études", "\u5317\u4eac city"]
    expected = [full_tokenizer.convert_tokens_to_ids(full_tokenizer.tokenize(t)) for t in texts]
    dataset = tf.data.Dataset.from_tensor_slices(texts).map(in_graph.tokenize)
    assert [x.numpy().tolist() for x in dataset] == expected

    module = tf.Module()
    module.tokenizer = in_graph
    module.tokenize = tf.function(
        in_graph.tokenize, input_signature=[tf.TensorSpec([None], tf.string)]
    )
    tf.saved_model.save(module, str(tmp_path / "tokenizer"))
    restored = tf.saved_model.load(str(tmp_path / "tokenizer"))
    assert restored.tokenize(tf.constant(texts)).to_list() == expected


# ---- learning vocabularies -------------------------------------------------


@pytest.fixture(scope="module")
def learned_wordpiece(shared_data, tmp_path_factory):
    """A 2,000-token vocab learned from the first 2,000 lines (the CLI path)."""
    out = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    corpus = shared_data / "text" / "wiki_squad_contexts.txt"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "data.learn_vocab",
            f"--input_file={corpus}",
            f"--output={out}",
            "--vocab_size=2000",
            "--kind=wordpiece",
            "--do_lower_case",
            "--max_sentences=2000",
        ],
        check=True,
        cwd=REPO_ROOT,
    )
    return out


def test_learned_wordpiece_vocab(learned_wordpiece, shared_data):
    vocab = tokenization.load_vocab(learned_wordpiece)  # Also: no duplicates.
    tokens = list(vocab)
    assert tokens[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert 0.9 * 2000 <= len(tokens) <= 2000
    assert not [p for p in os.listdir(learned_wordpiece.parent) if ".tmp" in p]
    # Held-out text (another corpus) is covered: few [UNK] pieces.
    tok = tokenization.FullTokenizer(learned_wordpiece)
    held_out = _read_lines(shared_data / "text" / "wikitext2_test_sentences.txt", 300)
    pieces = [p for ids in tok.tokenize_batch_to_ids(held_out) for p in ids]
    unk_rate = np.mean(np.array(pieces) == tok.unk_id)
    assert len(pieces) > 5000 and unk_rate < 0.01, unk_rate
    # A small vocab splits words into more pieces than MiniLM's 30k vocab.
    words = sum(len(tok.basic_tokenize(line)) for line in held_out)
    assert 1.2 < len(pieces) / words < 2.5


def test_learn_wordpiece_function_and_inputs(shared_data, tmp_path):
    lines = _read_lines(shared_data / "text" / "wiki_squad_contexts.txt", 400)
    vocab = learn_vocab.learn_wordpiece_vocab(lines, 500, do_lower_case=False)
    assert vocab[:5] == list(tokenization.RESERVED_TOKENS)
    assert len(vocab) == len(set(vocab)) <= 500
    assert any(t[:1].isupper() for t in vocab)  # Cased vocab keeps capitals.
    (tmp_path / "a.txt").write_text("x\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("y\n", encoding="utf-8")
    files = learn_vocab.expand_input_files(f"{tmp_path}/a*.txt,{tmp_path}/b.txt")
    assert [os.path.basename(f) for f in files] == ["a.txt", "b.txt"]
    with pytest.raises(FileNotFoundError, match="nothing"):
        learn_vocab.expand_input_files(f"{tmp_path}/nothing*.txt")


def test_sentencepiece_train_and_round_trip(shared_data, tmp_path):
    lines = _read_lines(shared_data / "text" / "wiki_squad_contexts.txt", 2000)
    model = learn_vocab.train_sentencepiece(
        lines, str(tmp_path / "spm.model"), vocab_size=1000, do_lower_case=True
    )
    assert sorted(os.listdir(tmp_path)) == ["spm.model", "spm.vocab"]
    tok = tokenization.create_tokenizer(spm_model_file=model)
    assert isinstance(tok, tokenization.SentencePieceTokenizer)
    assert tok.vocab_size == 1000
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)
    assert tok.convert_ids_to_tokens([0, 1, 2, 3, 4]) == [
        "[PAD]",
        "<unk>",
        "[CLS]",
        "[SEP]",
        "[MASK]",
    ]
    held_out = _read_lines(shared_data / "text" / "wikitext2_test_sentences.txt", 100)
    in_graph = tok.in_graph_tokenizer
    graph_ids = in_graph.tokenize(tf.constant(held_out)).to_list()
    for line, row in zip(held_out, graph_ids):
        tokens = tok.tokenize(line)
        ids = tok.convert_tokens_to_ids(tokens)
        assert ids == row
        assert tok.convert_ids_to_tokens(ids) == tokens
        if line.isascii():  # The model case-folds; NFKC leaves ASCII alone.
            assert tok.decode_ids(ids) == " ".join(line.lower().split())
    assert tok.convert_tokens_to_ids(["[CLS]", "[SEP]", "[MASK]"]) == [2, 3, 4]


def test_create_tokenizer(minilm_vocab):
    tok = tokenization.create_tokenizer(vocab_file=minilm_vocab, do_lower_case=True)
    assert isinstance(tok, tokenization.FullTokenizer)
    with pytest.raises(ValueError, match="exactly one"):
        tokenization.create_tokenizer()
    with pytest.raises(ValueError, match="exactly one"):
        tokenization.create_tokenizer(vocab_file=minilm_vocab, spm_model_file="x.model")
    with pytest.raises(tokenization.VocabError, match="not found"):
        tokenization.create_tokenizer(spm_model_file="/nonexistent/x.model")


def test_sentencepiece_offsets_cover_the_original_text(shared_data, tmp_path):
    lines = _read_lines(shared_data / "text" / "wiki_squad_contexts.txt", 2000)
    model = learn_vocab.train_sentencepiece(lines, str(tmp_path / "spm.model"), vocab_size=1000)
    tok = tokenization.create_tokenizer(spm_model_file=model, do_lower_case=True)
    held_out = _read_lines(shared_data / "text" / "wikitext2_test_sentences.txt", 300)
    held_out += ["Ｔｏｋｙｏ ﬁne İstanbul  ΣΟΦΟΣ", "", "  spaced   out  "]
    non_ascii = 0
    for line in held_out:
        pieces, spans = tok.tokenize_with_offsets(line)
        assert pieces == tok.tokenize(line)
        assert len(spans) == len(pieces)
        # In order, not overlapping, and together exactly the non-space characters.
        ends = [0] + [end for _, end in spans]
        assert all(ends[i] <= start <= end for i, (start, end) in enumerate(spans))
        assert "".join(line[start:end] for start, end in spans) == "".join(line.split())
        if not line.isascii():
            non_ascii += 1
            continue
        for piece, (start, end) in zip(pieces, spans):  # NFKC keeps ASCII; the model folds case.
            if piece != tokenization.SPM_UNK:
                assert piece.lstrip(tokenization.SPM_WORD_START) == line[start:end].lower()
    assert non_ascii > 10


def test_sentencepiece_word_starts(shared_data, tmp_path):
    lines = _read_lines(shared_data / "text" / "wiki_squad_contexts.txt", 2000)
    model = learn_vocab.train_sentencepiece(lines, str(tmp_path / "spm.model"), vocab_size=1000)
    tok = tokenization.create_tokenizer(spm_model_file=model)
    pieces = tok.tokenize("The Notre Dame's golden statue, 1879.")
    assert pieces[0] == "\u2581the" and tok.is_word_start(pieces[0])
    starts = [p for p in pieces if tok.is_word_start(p)]
    # Every word begins with a "▁" piece; "'", "," and "." begin words of their own.
    assert sum(p.startswith("\u2581") for p in starts) == 6
    assert all(tok.is_word_start(p) for p in ("[CLS]", "[SEP]", "[MASK]", "[PAD]", "<unk>"))
    assert [p for p in pieces if not tok.is_word_start(p)] == [
        p for p in pieces if not p.startswith("\u2581") and p not in ("'", ",", ".")
    ]
