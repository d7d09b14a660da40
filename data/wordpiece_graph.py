"""BERT WordPiece in-graph: `InGraphTokenizer`, a `tf.Module` of TensorFlow ops.

Built from TensorFlow ops and tensorflow-text's `FastWordpieceTokenizer`, it works inside
`tf.data` and can be exported in a SavedModel. The normalization is a per-code-point table
computed from the very Python functions of `data.wordpiece` (clean text, CJK spacing,
lower-case, NFD, strip accents, punctuation splitting). tensorflow-text's own normalizers
are not used because they differ from BERT (NFKC folding turns "²" into "2" and "ﬁ" into
"fi"; control characters become spaces instead of being dropped). The one context-dependent
rule of Python's `str.lower()`, the Greek final sigma, is reproduced in-graph too.
"""

import functools
import os
import unicodedata

import numpy as np
import tensorflow as tf

from data.wordpiece import (
    _CJK_RANGES,
    CLS,
    MASK,
    MAX_INPUT_CHARS_PER_WORD,
    PAD,
    SEP,
    SUFFIX_INDICATOR,
    UNK,
    _is_chinese_char,
    _is_control,
    _is_punctuation,
    _is_whitespace,
    _require_tokens,
    _strip_accents,
    load_vocab,
)

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
