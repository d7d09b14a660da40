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

`FullTokenizer` and `create_tokenizer` live here; the pieces are in `data.wordpiece`
(vocabularies, the reference algorithm), `data.wordpiece_graph` (in-graph) and
`data.sentencepiece_tokenizer`, all re-exported.
"""

import functools
import os
from collections.abc import Iterable, Sequence

import tensorflow as tf

from data.sentencepiece_tokenizer import (  # noqa: F401 (re-exported)
    SPM_UNK,
    SPM_WORD_START,
    InGraphSentencePieceTokenizer,
    SentencePieceTokenizer,
)
from data.wordpiece import (  # noqa: F401 (re-exported)
    BERT_SPECIAL_TOKENS,
    CLS,
    MASK,
    MAX_INPUT_CHARS_PER_WORD,
    PAD,
    RESERVED_TOKENS,
    SEP,
    SUFFIX_INDICATOR,
    UNK,
    BasicTokenizer,
    VocabError,
    WordpieceTokenizer,
    _require_tokens,
    check_vocab_fits_model,
    convert_by_vocab,
    convert_to_unicode,
    load_vocab,
)
from data.wordpiece_graph import InGraphTokenizer  # noqa: F401 (re-exported)


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
