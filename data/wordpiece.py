"""BERT's WordPiece in Python: vocabulary files, character classes and the reference algorithm.

The same algorithm as google-research/bert `tokenization.py`: `BasicTokenizer` (clean text,
space out CJK, lower-case and strip accents, split off punctuation) and `WordpieceTokenizer`
(greedy longest-match-first). `data.tokenization.FullTokenizer` puts the two together;
`data.wordpiece_graph` computes its in-graph tables from the functions here.
"""

import collections
import os
import unicodedata

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
