# Copyright 2026 The bert-large-batch Authors. Apache-2.0.
"""SQuAD v1.1 / v2.0 data: JSON -> examples -> features -> TFRecords -> tf.data.

The algorithm is the one of google-research/bert `run_squad.py`:

* Examples: the context is split into whitespace words (`doc_tokens`); the
  answer's character offset is mapped to a start and end word.
* Features: every word is WordPiece-tokenized (`tok_to_orig_index`,
  `orig_to_tok_index`); the answer's token span is tightened by searching the
  tokenized answer inside the word span; long documents are cut into sliding
  windows (`doc_stride`), each `[CLS] question [SEP] window [SEP]` with segment
  ids 0/1; `token_is_max_context` marks, for every document token, the one
  window where it has the most context on both sides. A training window that
  does not contain the answer (and every window of an impossible question) is
  labelled start = end = 0, i.e. `[CLS]`.
* TFRecords (int64 features as in the reference) and a tf.data reader that
  gives int32 dicts with static shapes. The prediction input pads its final
  batch with dummy features whose unique id is -1, so that every real feature
  is predicted while the predict step keeps static shapes (XLA/TPU).

The pieces: `data.squad_examples` (reading), `data.squad_features` (examples -> features)
and `data.squad_records` (TFRecords, arrays, tf.data); this module re-exports them.
"""

from data.squad import *  # noqa: F403 (this module's names before data.squad)
