# Copyright 2026 The bert-large-batch Authors. Apache-2.0.
"""WordPiece and SentencePiece tokenization, in Python and in-graph.

Two faces of the same WordPiece algorithm as google-research/bert
`tokenization.py` (BasicTokenizer then greedy longest-match-first WordPiece):

* `FullTokenizer`: the familiar Python API (`tokenize`, `convert_tokens_to_ids`,
  ...). A pure-Python mirror of the reference algorithm, plus
  `tokenize_batch(texts)`, a fast path that runs the in-graph tokenizer on a
  whole batch (use it for pretraining-data creation).
* `InGraphTokenizer`: a `tf.Module` built from TensorFlow ops and
  tensorflow-text's `FastWordpieceTokenizer`. Works inside `tf.data` and can be
  exported in a SavedModel.

The in-graph normalization is a per-code-point table computed from the very
Python functions that `FullTokenizer` uses (clean text, CJK spacing,
lower-case, NFD, strip accents, punctuation splitting). tensorflow-text's own
normalizers are not used because they differ from BERT (NFKC folding turns
"²" into "2" and "ﬁ" into "fi"; control characters become spaces instead of
being dropped). The one context-dependent rule of Python's `str.lower()`, the
Greek final sigma, is reproduced in-graph too.

SentencePiece models are the other vocabulary kind (`SentencePieceTokenizer`,
`InGraphSentencePieceTokenizer`); `create_tokenizer` picks one of the two.
"""

import collections
import functools
import os
import unicodedata
from collections.abc import Iterable, Sequence

import numpy as np
import tensorflow as tf

# Special tokens of BERT vocabularies, in the order a learned vocab puts them.
PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
RESERVED_TOKENS = (PAD, UNK, CLS, SEP, MASK)
MAX_INPUT_CHARS_PER_WORD = 100  # longer words become [UNK], as in BERT.
SUFFIX_INDICATOR = "##"


# -----------------------------------------------------------------------------
# Vocabulary files.
# -----------------------------------------------------------------------------


class VocabError(ValueError):
    """A vocabulary file is missing or malformed (message names file and line)."""


def load_vocab(vocab_file) -> "collections.OrderedDict[str, int]":
    """Reads a WordPiece vocab file (one token per line) into token -> id.

    Tokens are stripped of surrounding whitespace, as in BERT. Raises VocabError
    naming the file (and line) when the file is missing, not UTF-8, holds an
    empty line or a duplicate token, or is empty.
    """
    path = os.fspath(vocab_file)
    if not tf.io.gfile.exists(path):
        raise VocabError(f"{path}: vocab file not found")
    with tf.io.gfile.GFile(path, "rb") as f:
        raw_lines = f.read().split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()  # The final newline does not start another token.
    vocab = collections.OrderedDict()
    for line_no, raw in enumerate(raw_lines, start=1):
        try:
            token = raw.decode("utf-8").strip()
        except UnicodeDecodeError as e:
            raise VocabError(
                f"{path}:{line_no}: not valid UTF-8 ({e.reason} at byte {e.start} of the line)"
            ) from None
        if not token:
            raise VocabError(f"{path}:{line_no}: empty line, expected one token")
        if token in vocab:
            raise VocabError(
                f"{path}:{line_no}: duplicate token {token!r} (first on line {vocab[token] + 1})"
            )
        vocab[token] = len(vocab)
    if not vocab:
        raise VocabError(f"{path}: vocab file is empty")
    return vocab


def _require_tokens(vocab, vocab_file, tokens):
    missing = [t for t in tokens if t not in vocab]
    if missing:
        raise VocabError(f"{os.fspath(vocab_file)}: missing required token(s) {missing}")


BERT_SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[MASK]", "[PAD]")


def check_vocab_fits_model(
    vocab, vocab_file, model_vocab_size: int, model_source: str = ""
) -> None:
    """Refuses a vocabulary a BERT model cannot use.

    A vocabulary (token -> id) larger than the model's `vocab_size` would feed ids past the
    embedding table, which an XLA gather clamps silently; one without BERT's special tokens
    cannot build its inputs. Errors name the vocabulary, the model's source and both sizes.
    """
    source = f" ({model_source})" if model_source else ""
    missing = [t for t in BERT_SPECIAL_TOKENS if t not in vocab]
    if missing:
        raise VocabError(
            f"{os.fspath(vocab_file)}: missing required token(s) {missing}; BERT's inputs "
            f"need {list(BERT_SPECIAL_TOKENS)}"
        )
    if len(vocab) > model_vocab_size:
        raise VocabError(
            f"{os.fspath(vocab_file)} has {len(vocab)} entries but the model's vocab_size is "
            f"{model_vocab_size}{source}"
        )


def convert_by_vocab(vocab, items):
    """Maps each item through `vocab` (raises KeyError for unknown items)."""
    return [vocab[item] for item in items]


def convert_to_unicode(text) -> str:
    """Returns `text` as str; bytes are decoded as UTF-8 ignoring bad bytes."""
    if isinstance(text, str):
        return text
    if isinstance(text, bytes):
        return text.decode("utf-8", "ignore")
    raise TypeError(f"expected str or bytes, got {type(text).__name__}")


# -----------------------------------------------------------------------------
# Character classes of the reference BasicTokenizer.
# -----------------------------------------------------------------------------


def _is_whitespace(char: str) -> bool:
    """Space, tab, newline, carriage return or a Unicode space separator (Zs)."""
    if char in (" ", "\t", "\n", "\r"):
        return True
    return unicodedata.category(char) == "Zs"


def _is_control(char: str) -> bool:
    """Cc or Cf, but not tab / newline / carriage return (they are whitespace)."""
    if char in ("\t", "\n", "\r"):
        return False
    return unicodedata.category(char) in ("Cc", "Cf")


def _is_punctuation(char: str) -> bool:
    """All non-alphanumeric ASCII (e.g. "$", "^", "`") and Unicode P* classes."""
    cp = ord(char)
    if (33 <= cp <= 47) or (58 <= cp <= 64) or (91 <= cp <= 96) or (123 <= cp <= 126):
        return True
    return unicodedata.category(char).startswith("P")


# The CJK Unified Ideographs blocks, as in BERT (not Hangul, not kana).
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def _is_chinese_char(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def _strip_accents(text: str) -> str:
    """NFD, then drops nonspacing marks (Mn)."""
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def _split_on_punctuation(text: str) -> list[str]:
    """Splits `text` so that every punctuation character is its own piece."""
    pieces, current = [], []
    for char in text:
        if _is_punctuation(char):
            if current:
                pieces.append("".join(current))
                current = []
            pieces.append(char)
        else:
            current.append(char)
    if current:
        pieces.append("".join(current))
    return pieces


# -----------------------------------------------------------------------------
# Python face: the reference algorithm.
# -----------------------------------------------------------------------------


class BasicTokenizer:
    """Clean text, space out CJK, split on whitespace, lower-case and strip
    accents (if do_lower_case), split off punctuation."""

    def __init__(self, do_lower_case: bool = True):
        self.do_lower_case = do_lower_case

    def tokenize(self, text) -> list[str]:
        text = convert_to_unicode(text)
        chars = []
        for char in text:
            cp = ord(char)
            if cp == 0 or cp == 0xFFFD or _is_control(char):
                continue
            if _is_chinese_char(cp):
                chars.extend((" ", char, " "))
            elif _is_whitespace(char):
                chars.append(" ")
            else:
                chars.append(char)
        words = []
        for token in "".join(chars).split():
            if self.do_lower_case:
                token = _strip_accents(token.lower())
            words.extend(_split_on_punctuation(token))
        return " ".join(words).split()


class WordpieceTokenizer:
    """Greedy longest-match-first WordPiece of one basic-tokenized word."""

    def __init__(
        self, vocab, unk_token: str = UNK, max_input_chars_per_word: int = MAX_INPUT_CHARS_PER_WORD
    ):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word

    def tokenize_word(self, word: str) -> list[str]:
        if len(word) > self.max_input_chars_per_word:
            return [self.unk_token]
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end]
                if start > 0:
                    piece = SUFFIX_INDICATOR + piece
                if piece in self.vocab:
                    break
                end -= 1
            if end == start:  # No piece matches: the whole word is unknown.
                return [self.unk_token]
            pieces.append(piece)
            start = end
        return pieces

    def tokenize(self, text) -> list[str]:
        """WordPiece of each whitespace-separated word of `text`."""
        return [p for w in convert_to_unicode(text).split() for p in self.tokenize_word(w)]


class FullTokenizer:
    """BERT WordPiece tokenizer with the familiar google-research/bert API.

    `tokenize(text)` is pure Python (the reference algorithm, exact);
    `basic_tokenize(text)` and `wordpiece(word)` (alias `tokenize_word`) are
    its two stages, for SQuAD's word-to-piece alignment.

    Fast path for bulk work (pretraining data): `tokenize_batch(texts)` and
    `tokenize_batch_to_ids(texts)` run the in-graph tokenizer
    (`self.in_graph_tokenizer`, built on first use) on batches of 4096 texts
    and return the same tokens / ids as `tokenize`.
    """

    def __init__(self, vocab_file, do_lower_case: bool = True):
        self.vocab_file = os.fspath(vocab_file)
        self.vocab = load_vocab(vocab_file)
        _require_tokens(self.vocab, vocab_file, [UNK])
        self.inv_vocab = {i: t for t, i in self.vocab.items()}
        self.do_lower_case = do_lower_case
        self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case)
        self.wordpiece_tokenizer = WordpieceTokenizer(self.vocab)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def basic_tokenize(self, text) -> list[str]:
        """The BasicTokenizer words of `text` (normalized, punctuation split)."""
        return self.basic_tokenizer.tokenize(text)

    def wordpiece(self, word: str) -> list[str]:
        """WordPiece of one already basic-tokenized word."""
        return self.wordpiece_tokenizer.tokenize_word(word)

    tokenize_word = wordpiece  # Name used by the SQuAD code.

    def tokenize(self, text) -> list[str]:
        return [p for w in self.basic_tokenize(text) for p in self.wordpiece(w)]

    def tokenize_batch(self, texts: Sequence[str], batch_size: int = 4096) -> list[list[str]]:
        """Fast path: tokens of many texts, computed in-graph in batches."""
        return [
            [self.inv_vocab[i] for i in ids]
            for ids in self.tokenize_batch_to_ids(texts, batch_size)
        ]

    def tokenize_batch_to_ids(
        self, texts: Sequence[str], batch_size: int = 4096
    ) -> list[list[int]]:
        """Fast path: token ids of many texts, computed in-graph in batches."""
        out = []
        for start in range(0, len(texts), batch_size):
            chunk = [convert_to_unicode(t) for t in texts[start : start + batch_size]]
            ids = self._tokenize_graph(tf.constant(chunk, dtype=tf.string))
            flat = ids.flat_values.numpy().tolist()  # Much faster than to_list().
            splits = ids.row_splits.numpy().tolist()
            out.extend(flat[a:b] for a, b in zip(splits[:-1], splits[1:]))
        return out

    @functools.cached_property
    def _tokenize_graph(self):
        return tf.function(
            self.in_graph_tokenizer.tokenize, input_signature=[tf.TensorSpec([None], tf.string)]
        )

    @functools.cached_property
    def in_graph_tokenizer(self) -> "InGraphTokenizer":
        return InGraphTokenizer(self.vocab_file, self.do_lower_case, vocab=list(self.vocab))

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        return convert_by_vocab(self.vocab, tokens)

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        return convert_by_vocab(self.inv_vocab, [int(i) for i in ids])

    # Special ids, looked up in the vocab (None if the vocab lacks the token).
    @property
    def cls_id(self):
        return self.vocab.get(CLS)

    @property
    def sep_id(self):
        return self.vocab.get(SEP)

    @property
    def pad_id(self):
        return self.vocab.get(PAD)

    @property
    def mask_id(self):
        return self.vocab.get(MASK)

    @property
    def unk_id(self):
        return self.vocab[UNK]


# -----------------------------------------------------------------------------
# In-graph face.
# -----------------------------------------------------------------------------

_GREEK_CAPITAL_SIGMA = 0x03A3
_MAX_CODE_POINT = 0x10FFFF


def _char_output(char: str, do_lower_case: bool) -> str:
    """What BasicTokenizer makes of `char` alone, with word breaks as spaces."""
    cp = ord(char)
    if cp == 0 or cp == 0xFFFD or _is_control(char):
        return ""
    if _is_whitespace(char) or char.isspace():  # str.split() breaks on both.
        return " "
    out = _strip_accents(char.lower()) if do_lower_case else char
    out = "".join(f" {c} " if _is_punctuation(c) else c for c in out)
    return f" {out} " if _is_chinese_char(cp) else out


@functools.lru_cache(maxsize=2)
def _normalization_table(do_lower_case: bool):
    """Code points whose BasicTokenizer output is not the character itself
    (plain CJK ideographs excepted: they are spaced out by a range test)."""
    keys, values = [], []
    for cp in range(_MAX_CODE_POINT + 1):
        if 0xD800 <= cp <= 0xDFFF:
            continue  # Surrogates never reach the tokenizer as code points.
        char = chr(cp)
        if (
            unicodedata.category(char) in ("Cn", "Co", "Lo")
            and char.lower() == char
            and unicodedata.is_normalized("NFD", char)
        ):
            continue  # The bulk of code points (CJK too): output is the default.
        out = _char_output(char, do_lower_case)
        plain = f" {char} " if _is_chinese_char(cp) else char
        if out != plain:
            keys.append(cp)
            values.append(out.encode("utf-8"))
    return np.array(keys, np.int64), np.array(values, object)


@functools.lru_cache(maxsize=1)
def _sigma_context_table():
    """Code points -> 0 if skipped by the Final_Sigma rule (case-ignorable, or
    a control character that BERT drops), 1 if cased; absent otherwise.

    Probed from CPython's own str.lower() so that it agrees with it exactly.
    """
    keys, values = [], []
    for cp in range(_MAX_CODE_POINT + 1):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        char = chr(cp)
        if unicodedata.category(char) in ("Cn", "Co") and cp not in (0, 0xFFFD):
            continue  # Neither cased nor case-ignorable.
        if (char + "\u03a3").lower()[-1] == "\u03c2":
            keys.append(cp)
            values.append(1)
        elif ("A" + char + "\u03a3").lower()[-1] == "\u03c2" or (
            cp == 0 or cp == 0xFFFD or _is_control(char)
        ):
            keys.append(cp)
            values.append(0)
    return np.array(keys, np.int64), np.array(values, np.int64)


def _cjk_mask(cps):
    mask = tf.zeros_like(cps, dtype=tf.bool)
    for lo, hi in _CJK_RANGES:
        mask |= (cps >= lo) & (cps <= hi)
    return mask


class InGraphTokenizer(tf.Module):
    """BERT WordPiece tokenizer built from TF ops (tf.data- and SavedModel-ready).

    tokenize(strings): [batch] string -> RaggedTensor [batch, (pieces)] ids.
    tokenize_words(strings): -> RaggedTensor [batch, (words), (pieces)] ids, the
      pieces grouped by BasicTokenizer word (for whole-word masking and SQuAD).
    basic_tokenize(strings): -> RaggedTensor [batch, (words)] of word strings.
    A scalar string gives the same without the batch dimension.
    """

    def __init__(
        self,
        vocab_file,
        do_lower_case: bool = True,
        token_out_type=tf.int64,
        vocab: list[str] | None = None,
        name: str | None = None,
    ):
        super().__init__(name=name)
        import tensorflow_text as tf_text  # Heavy import; only needed here.

        self.vocab_file = os.fspath(vocab_file)
        self.do_lower_case = do_lower_case
        if vocab is None:
            vocab = list(load_vocab(vocab_file))
        vocab_ids = {t: i for i, t in enumerate(vocab)}
        _require_tokens(vocab_ids, vocab_file, [UNK])
        # A tuple: tf.Module would wrap a list in a tracked ListWrapper, with one
        # tracking call per token.
        self.vocab = tuple(vocab)
        self.vocab_size = len(vocab)
        self.unk_id = vocab_ids[UNK]
        self.cls_id = vocab_ids.get(CLS)
        self.sep_id = vocab_ids.get(SEP)
        self.pad_id = vocab_ids.get(PAD)
        self.mask_id = vocab_ids.get(MASK)
        self._token_out_type = token_out_type

        keys, values = _normalization_table(do_lower_case)
        self._char_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(keys, tf.int64), tf.constant(values, tf.string)
            ),
            default_value="\x00",
        )  # "\x00" never is a table value: means "keep".
        sigma_keys, sigma_values = _sigma_context_table()
        self._sigma_kind_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(sigma_keys), tf.constant(sigma_values)),
            default_value=2,
        )
        # Words over 100 chars are replaced by UNK before WordPiece, so the byte
        # limit of FastWordpiece (4 bytes per UTF-8 char) never triggers first.
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=vocab,
            suffix_indicator=SUFFIX_INDICATOR,
            max_bytes_per_word=4 * MAX_INPUT_CHARS_PER_WORD,
            token_out_type=token_out_type,
            unknown_token=UNK,
            no_pretokenization=True,
        )
        self._vocab_tensor = tf.constant(vocab, tf.string)

    # ---- normalization -------------------------------------------------------

    def normalize_code_points(self, cps):
        """Each code point's BERT-normalized text, aligned with `cps.flat_values`.

        `cps`: RaggedTensor [batch, (code points)] of ints. Returns a flat string
        tensor: "" for dropped characters, " x " around CJK ideographs, accents
        stripped and lower-cased with do_lower_case (Greek final sigma decided in
        its row's context). Joining a row gives its normalized text; the SQuAD
        export uses the alignment to map answer pieces back to original bytes.
        """
        flat = tf.cast(cps.flat_values, tf.int64)
        chars = tf.strings.unicode_encode(tf.expand_dims(cps.flat_values, -1), "UTF-8")
        mapped = self._char_table.lookup(flat)
        kept = tf.where(_cjk_mask(flat), " " + chars + " ", chars)
        mapped = tf.where(mapped == "\x00", kept, mapped)
        if self.do_lower_case:
            mapped = tf.where(self._final_sigma(cps), "\u03c2", mapped)
        return mapped

    def _normalize(self, text):
        """[batch] strings -> [batch] strings with words separated by spaces."""
        cps = tf.strings.unicode_decode(text, "UTF-8", errors="replace", replacement_char=0xFFFD)
        return tf.strings.reduce_join(
            cps.with_flat_values(self.normalize_code_points(cps)), axis=-1
        )

    def _final_sigma(self, cps):
        """Mask of the Σ that Python's str.lower() turns into the final form ς.

        Final_Sigma (Unicode 3.13), as CPython applies it to each whitespace
        token: Σ preceded by a cased letter and not followed by one, skipping
        case-ignorable characters (and the control characters BERT drops).
        """
        flat = cps.flat_values

        def apply():
            flat64 = tf.cast(flat, tf.int64)
            kind = self._sigma_kind_table.lookup(flat64)  # 0 skip, 1 cased, 2 other
            solid = kind != 0
            solid_pos = tf.cast(tf.where(solid)[:, 0], tf.int64)
            num_solid = tf.shape(solid_pos, out_type=tf.int64)[0]
            solid_count = tf.cumsum(tf.cast(solid, tf.int64))
            row_ids = cps.value_rowids()
            row_start = tf.gather(cps.row_starts(), row_ids)
            row_limit = tf.gather(cps.row_limits(), row_ids)
            # Nearest solid character before / after each position (in its row).
            before = solid_count - tf.cast(solid, tf.int64) - 1
            prev_pos = tf.gather(solid_pos, tf.maximum(before, 0))
            prev_cased = (before >= 0) & (prev_pos >= row_start) & (tf.gather(kind, prev_pos) == 1)
            after = solid_count
            next_pos = tf.gather(solid_pos, tf.minimum(after, num_solid - 1))
            next_cased = (
                (after < num_solid) & (next_pos < row_limit) & (tf.gather(kind, next_pos) == 1)
            )
            return is_sigma & prev_cased & ~next_cased

        is_sigma = flat == _GREEK_CAPITAL_SIGMA
        return tf.cond(tf.reduce_any(is_sigma), apply, lambda: is_sigma)

    # ---- public API ---------------------------------------------------------

    def _batched(self, fn, strings):
        strings = tf.convert_to_tensor(strings, tf.string)
        if strings.shape.rank == 0:
            return fn(tf.expand_dims(strings, 0))[0]
        return fn(strings)

    def basic_tokenize(self, strings):
        """Strings -> RaggedTensor of BasicTokenizer words."""
        return self._batched(lambda s: tf.strings.split(self._normalize(s)), strings)

    def _wordpiece_words(self, words):
        lengths = tf.strings.length(words.flat_values, unit="UTF8_CHAR")
        flat = tf.where(lengths > MAX_INPUT_CHARS_PER_WORD, UNK, words.flat_values)
        return words.with_flat_values(self._wordpiece.tokenize(flat))

    def tokenize_words(self, strings):
        """Strings -> RaggedTensor [batch, (words), (pieces)] of ids."""
        return self._batched(
            lambda s: self._wordpiece_words(tf.strings.split(self._normalize(s))), strings
        )

    def tokenize(self, strings):
        """Strings -> RaggedTensor [batch, (pieces)] of ids (no [CLS]/[SEP])."""
        return self._batched(
            lambda s: self._wordpiece_words(tf.strings.split(self._normalize(s))).merge_dims(
                -2, -1
            ),
            strings,
        )

    def ids_to_tokens(self, ids):
        """Ids (dense or ragged) -> token strings of the same structure."""
        if isinstance(ids, tf.RaggedTensor):
            return ids.with_flat_values(tf.gather(self._vocab_tensor, ids.flat_values))
        return tf.gather(self._vocab_tensor, ids)


# -----------------------------------------------------------------------------
# SentencePiece.
# -----------------------------------------------------------------------------

SPM_UNK = "<unk>"
SPM_WORD_START = "\u2581"  # "▁": the piece starts a new (whitespace-separated) word.


class SentencePieceTokenizer:
    """A SentencePiece model with the FullTokenizer API.

    Special ids ([CLS], [SEP], [MASK], [PAD], <unk>) are looked up in the model
    (None when the model was trained without them; `pad_id` falls back to the
    model's own pad piece). With do_lower_case the text is lower-cased before
    encoding (as ALBERT does for models trained on lower-cased text); models
    trained by `data.learn_vocab --do_lower_case` case-fold by themselves.
    """

    def __init__(self, model_file, do_lower_case: bool = False):
        import sentencepiece as spm

        self.model_file = os.fspath(model_file)
        if not tf.io.gfile.exists(self.model_file):
            raise VocabError(f"{self.model_file}: SentencePiece model not found")
        with tf.io.gfile.GFile(self.model_file, "rb") as f:
            self.model_proto = f.read()
        self.sp_model = spm.SentencePieceProcessor()
        try:
            self.sp_model.LoadFromSerializedProto(self.model_proto)
        except (RuntimeError, OSError) as e:
            raise VocabError(f"{self.model_file}: not a SentencePiece model ({e})") from None
        self.do_lower_case = do_lower_case
        self.vocab = collections.OrderedDict(
            (self.sp_model.id_to_piece(i), i) for i in range(self.vocab_size)
        )
        self.inv_vocab = {i: t for t, i in self.vocab.items()}

    @property
    def vocab_size(self) -> int:
        return self.sp_model.get_piece_size()

    def _piece_id(self, piece) -> int | None:
        return self.vocab.get(piece)

    @property
    def cls_id(self):
        return self._piece_id(CLS)

    @property
    def sep_id(self):
        return self._piece_id(SEP)

    @property
    def mask_id(self):
        return self._piece_id(MASK)

    @property
    def unk_id(self):
        return self.sp_model.unk_id()

    @property
    def pad_id(self):
        pad = self._piece_id(PAD)
        if pad is None and self.sp_model.pad_id() >= 0:
            pad = self.sp_model.pad_id()
        return pad

    def _prepare(self, text) -> str:
        text = convert_to_unicode(text)
        return text.lower() if self.do_lower_case else text

    def tokenize(self, text) -> list[str]:
        """Vocabulary pieces of `text` (out-of-vocab pieces become <unk>)."""
        return self.convert_ids_to_tokens(self.sp_model.encode(self._prepare(text)))

    def tokenize_batch(self, texts: Sequence[str]) -> list[list[str]]:
        return [self.convert_ids_to_tokens(ids) for ids in self.tokenize_batch_to_ids(texts)]

    def tokenize_batch_to_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return self.sp_model.encode([self._prepare(t) for t in texts])

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        return [self.sp_model.piece_to_id(t) for t in tokens]

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        return [self.sp_model.id_to_piece(int(i)) for i in ids]

    def decode_ids(self, ids: Iterable[int]) -> str:
        return self.sp_model.decode([int(i) for i in ids])

    def tokenize_with_offsets(self, text) -> tuple[list[str], list[tuple[int, int]]]:
        """Pieces of `text` (as `tokenize`) and each piece's character span in `text`.

        The span [start, end) is the piece's surface in the original text, without the
        whitespace that its "▁" stands for; a bare "▁" piece gets an empty span. SQuAD
        uses the spans to map a predicted token span back to the original characters,
        which text matching cannot do for SentencePiece (its normalization, e.g. NFKC,
        may change characters, and pieces do not split at punctuation).
        """
        text = convert_to_unicode(text)
        prepared = self._prepare(text)
        char_of = list(range(len(text) + 1))  # prepared char index -> text char index
        if len(prepared) != len(text):  # Lower-casing changed the length (e.g. "İ").
            lowered = [c.lower() for c in text]
            prepared = "".join(lowered)
            char_of = [i for i, c in enumerate(lowered) for _ in c] + [len(text)]
        # SentencePiece reports offsets in UTF-8 bytes of its input.
        byte_to_char = np.zeros([len(prepared.encode("utf-8")) + 1], np.int64)
        position = 0
        for i, char in enumerate(prepared):
            size = len(char.encode("utf-8"))
            byte_to_char[position : position + size] = i
            position += size
        byte_to_char[position] = len(prepared)
        proto = self.sp_model.encode(prepared, return_type="proto")
        tokens, offsets = [], []
        for piece in proto.pieces:
            tokens.append(self.sp_model.id_to_piece(piece.id))
            start, end = int(byte_to_char[piece.begin]), int(byte_to_char[piece.end])
            while start < end and prepared[start].isspace():
                start += 1
            offsets.append((char_of[start], char_of[end]))
        return tokens, offsets

    def is_word_start(self, token: str) -> bool:
        """Whether a piece begins a word (whole-word masking): it carries the "▁"
        word-start marker, is a special or unknown piece, or is only punctuation
        (BERT splits punctuation into words of its own)."""
        if token.startswith(SPM_WORD_START):
            return True
        piece_id = self.sp_model.piece_to_id(token)
        if token in (CLS, SEP, MASK, PAD) or self.sp_model.is_unknown(piece_id):
            return True
        if self.sp_model.is_control(piece_id):
            return True
        return all(_is_punctuation(c) for c in token)

    @functools.cached_property
    def in_graph_tokenizer(self) -> "InGraphSentencePieceTokenizer":
        return InGraphSentencePieceTokenizer(self.model_file, self.do_lower_case)


class InGraphSentencePieceTokenizer(tf.Module):
    """tensorflow_text.SentencepieceTokenizer with the InGraphTokenizer API.

    tokenize(strings) -> RaggedTensor [batch, (pieces)] of ids. Lower-casing
    (do_lower_case) uses tf.strings.lower, which can differ from Python's
    str.lower on rare characters (e.g. final sigma).
    """

    def __init__(
        self,
        model_file,
        do_lower_case: bool = False,
        token_out_type=tf.int64,
        name: str | None = None,
    ):
        super().__init__(name=name)
        import tensorflow_text as tf_text

        python_face = SentencePieceTokenizer(model_file)
        self.model_file = python_face.model_file
        self.do_lower_case = do_lower_case
        self.vocab_size = python_face.vocab_size
        self.unk_id = python_face.unk_id
        self.cls_id = python_face.cls_id
        self.sep_id = python_face.sep_id
        self.pad_id = python_face.pad_id
        self.mask_id = python_face.mask_id
        self._token_out_type = token_out_type
        # The op emits int32 (or strings) only; ids are cast afterwards.
        self._sp = tf_text.SentencepieceTokenizer(model=python_face.model_proto, out_type=tf.int32)

    def tokenize(self, strings):
        strings = tf.convert_to_tensor(strings, tf.string)
        if self.do_lower_case:
            strings = tf.strings.lower(strings, encoding="utf-8")
        ids = self._sp.tokenize(strings)
        if isinstance(ids, tf.RaggedTensor):
            return ids.with_flat_values(tf.cast(ids.flat_values, self._token_out_type))
        return tf.cast(ids, self._token_out_type)

    def ids_to_tokens(self, ids):
        return self._sp.id_to_string(ids)


def create_tokenizer(vocab_file=None, spm_model_file=None, do_lower_case: bool = True):
    """FullTokenizer for a WordPiece vocab, SentencePieceTokenizer for a model.

    Exactly one of `vocab_file` / `spm_model_file` must be given.
    """
    if (vocab_file is None) == (spm_model_file is None):
        raise ValueError(
            "give exactly one of vocab_file (WordPiece) and spm_model_file (SentencePiece)"
        )
    if spm_model_file is not None:
        return SentencePieceTokenizer(spm_model_file, do_lower_case=do_lower_case)
    return FullTokenizer(vocab_file, do_lower_case=do_lower_case)
