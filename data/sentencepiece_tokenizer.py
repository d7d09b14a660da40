"""SentencePiece models with the tokenizer API of `data.tokenization.FullTokenizer`.

`SentencePieceTokenizer` (Python, the sentencepiece package) and
`InGraphSentencePieceTokenizer` (tensorflow-text, for tf.data and SavedModels).
"""

import collections
import functools
import os
from collections.abc import Iterable, Sequence

import numpy as np
import tensorflow as tf

from data.wordpiece import (
    CLS,
    MASK,
    PAD,
    SEP,
    VocabError,
    _is_punctuation,
    convert_to_unicode,
)

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
