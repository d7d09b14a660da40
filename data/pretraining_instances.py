"""Pretraining instances from a tokenized corpus: the original BERT algorithm, vectorized.

Sentence pairs per document (`create_document_pairs`, the original packing with its random
"next sentence"), truncation (`truncate_seq_pairs`) and masking (`mask_instances`) vectorized
with numpy over a task of documents (`create_instances`), and the records' tf.train.Example
bytes (`serialize_instances`). Every function here is pure given its seeds, so the output does
not depend on which process runs it (`data.pretraining_records` runs them in parallel).
"""

import dataclasses
import random

import numpy as np

from data import example_encoding

# The features of a pretraining record (google-research/bert's names); the input pipeline
# (`data.pretraining_input`, which imports them from here) parses exactly these.
FEATURE_NAMES = (
    "input_ids",
    "input_mask",
    "segment_ids",
    "masked_lm_positions",
    "masked_lm_ids",
    "masked_lm_weights",
    "next_sentence_labels",
)


@dataclasses.dataclass(frozen=True)
class InstanceOptions:
    """How training instances are made from documents (original flag names)."""

    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    dupe_factor: int = 10
    random_seed: int = 12345
    do_whole_word_mask: bool = False
    masking: bool = True  # False writes unmasked records (dynamic masking).

    def __post_init__(self):
        if self.max_seq_length < 5:
            raise ValueError(f"max_seq_length must be >= 5, got {self.max_seq_length}.")
        if not 0.0 <= self.masked_lm_prob <= 1.0:
            raise ValueError(f"masked_lm_prob must be in [0, 1], got {self.masked_lm_prob}.")
        if self.dupe_factor < 1:
            raise ValueError(f"dupe_factor must be >= 1, got {self.dupe_factor}.")

    @property
    def is_masked(self) -> bool:
        return self.masking and self.masked_lm_prob > 0


@dataclasses.dataclass(frozen=True)
class Vocab:
    """The vocabulary facts that instance creation needs."""

    size: int
    cls_id: int
    sep_id: int
    mask_id: int
    pad_id: int
    is_continuation: np.ndarray  # bool [size]: token continues the word before it.

    @classmethod
    def from_tokenizer(cls, tokenizer) -> "Vocab":
        """From a WordPiece `FullTokenizer` or a `SentencePieceTokenizer`.

        A WordPiece token continues a word when it starts with "##"; a SentencePiece
        piece when it does not start a word (`SentencePieceTokenizer.is_word_start`:
        no "▁" marker, not special, not punctuation).
        """
        tokens = list(tokenizer.vocab)
        special = {"[CLS]": tokenizer.cls_id, "[SEP]": tokenizer.sep_id}
        special.update({"[MASK]": tokenizer.mask_id, "[PAD]": tokenizer.pad_id})
        missing = [name for name, token_id in special.items() if token_id is None]
        if missing:
            source = getattr(tokenizer, "model_file", None) or getattr(tokenizer, "vocab_file", "")
            raise ValueError(
                f"{source}: the vocabulary has no {', '.join(missing)}; pretraining data "
                "needs [CLS], [SEP], [MASK] and [PAD] (data.learn_vocab adds them)."
            )
        if hasattr(tokenizer, "is_word_start"):  # SentencePiece (no TensorFlow import here)
            is_continuation = [not tokenizer.is_word_start(t) for t in tokens]
        else:
            is_continuation = [t.startswith("##") for t in tokens]
        return cls(
            size=len(tokens),
            cls_id=special["[CLS]"],
            sep_id=special["[SEP]"],
            mask_id=special["[MASK]"],
            pad_id=special["[PAD]"],
            is_continuation=np.array(is_continuation, bool),
        )


@dataclasses.dataclass
class TokenizedCorpus:
    """All token ids in one flat array, with sentence and document boundaries.

    Sentence s is token_ids[sentence_starts[s]:sentence_starts[s + 1]];
    document d is sentences document_starts[d] .. document_starts[d + 1] - 1,
    so the sentences of a document are contiguous in `token_ids`. Empty
    sentences and documents are dropped, as in the original.
    """

    token_ids: np.ndarray
    sentence_starts: np.ndarray
    document_starts: np.ndarray
    document_bytes: np.ndarray  # UTF-8 bytes of each document's text.

    def __post_init__(self):
        # Python lists: the instance loop indexes them one element at a time.
        self._sentence_starts = self.sentence_starts.tolist()
        self._document_starts = self.document_starts.tolist()

    # What instance creation reads (`data.corpus_store.StoredCorpus` has the same three).

    @property
    def num_documents(self) -> int:
        return len(self.document_starts) - 1

    def sentence_offsets(self, document: int) -> list[int]:
        """Token offsets of the document's sentences, and of its end (sentences + 1)."""
        return self._sentence_starts[
            self._document_starts[document] : self._document_starts[document + 1] + 1
        ]

    def gather(self, offsets: np.ndarray) -> np.ndarray:
        """The token ids at `offsets` (any shape)."""
        return self.token_ids[offsets]


# -----------------------------------------------------------------------------
# Instance creation (the original algorithm).
# -----------------------------------------------------------------------------


@dataclasses.dataclass
class Instances:
    """Training instances as padded arrays."""

    input_ids: np.ndarray  # int32 [n, max_seq_length], 0-padded.
    lengths: np.ndarray  # int64 [n]: tokens incl. [CLS]/[SEP].
    segment_a_lengths: np.ndarray  # int64 [n]: [CLS] A [SEP] = segment 0.
    is_random_next: np.ndarray  # bool [n].
    masked_lm_positions: np.ndarray  # int32 [n, max_predictions_per_seq].
    masked_lm_ids: np.ndarray  # int32 [n, max_predictions_per_seq].
    masked_lm_weights: np.ndarray  # float32 [n, max_predictions_per_seq].


def truncate_seq_pairs(a_lo, a_hi, b_lo, b_hi, max_num_tokens: int, rng: np.random.Generator):
    """The original `truncate_seq_pair`, vectorized over token ranges.

    The original drops one token at a time from the longer of A and B, from
    the front or the back with probability 1/2 each, until the pair fits.
    Which segment loses how many tokens depends only on the lengths (the
    longer loses until they are equal, then B and A alternate, B first); the
    number dropped from the front is then Binomial(dropped, 1/2).
    """
    len_a, len_b = a_hi - a_lo, b_hi - b_lo
    excess = np.maximum(len_a + len_b - max_num_tokens, 0)
    from_a = np.minimum(excess, np.maximum(len_a - len_b, 0))
    from_b = np.minimum(excess, np.maximum(len_b - len_a, 0))
    rest = excess - from_a - from_b
    from_a += rest // 2
    from_b += rest - rest // 2
    front_a = rng.binomial(from_a, 0.5)
    front_b = rng.binomial(from_b, 0.5)
    return (a_lo + front_a, a_hi - (from_a - front_a), b_lo + front_b, b_hi - (from_b - front_b))


def _randint(rng: random.Random, low: int, high: int) -> int:
    """Uniform integer in [low, high] (random.randint without its overhead)."""
    return low + int(rng.random() * (high - low + 1))


def create_document_pairs(
    corpus: TokenizedCorpus, document_index: int, options: InstanceOptions, rng: random.Random
):
    """Packs one document into sentence pairs, as in the original.

    Returns a list of (a_lo, a_hi, b_lo, b_hi, is_random_next): segments A
    and B as ranges of the corpus's token offsets (the sentences of a document are
    contiguous there, so a run of sentences is one range), not yet truncated
    (see `truncate_seq_pairs`).
    """
    starts = corpus.sentence_offsets(document_index)
    end = len(starts) - 1  # sentences; i, chunk_first and j below count them
    max_num_tokens = options.max_seq_length - 3
    # As in the original, the target length is drawn once per document.
    target_seq_length = max_num_tokens
    if rng.random() < options.short_seq_prob:
        target_seq_length = _randint(rng, 2, max_num_tokens)

    pairs = []
    chunk_first, chunk_size = 0, 0
    i = 0
    while i < end:
        chunk_size += 1
        if i == end - 1 or starts[i + 1] - starts[chunk_first] >= target_seq_length:
            a_end = _randint(rng, 1, chunk_size - 1) if chunk_size >= 2 else 1
            a_lo, a_hi = starts[chunk_first], starts[chunk_first + a_end]
            if chunk_size == 1 or rng.random() < 0.5:
                is_random_next = True
                target_b_length = target_seq_length - (a_hi - a_lo)
                # Depends only on this document's generator and the corpus
                # size, so it does not matter which worker runs it.
                for _ in range(10):
                    random_index = _randint(rng, 0, corpus.num_documents - 1)
                    if random_index != document_index:
                        break
                other = corpus.sentence_offsets(random_index)
                j = _randint(rng, 0, len(other) - 2)
                b_lo = other[j]
                while j < len(other) - 2 and other[j + 1] - b_lo < target_b_length:
                    j += 1
                b_hi = other[j + 1]
                # The unused segments go back to be used by the next instance.
                i -= chunk_size - a_end
            else:
                is_random_next = False
                b_lo, b_hi = a_hi, starts[chunk_first + chunk_size]
            pairs.append((a_lo, a_hi, b_lo, b_hi, is_random_next))
            chunk_first, chunk_size = i + 1, 0
        i += 1
    return pairs


def _choose_whole_words(order, word_start, num_to_predict, num_candidates):
    """The original greedy rule: take words in random order, skipping a word
    whose pieces would overshoot num_to_predict."""
    chosen = []
    j = 0
    while j < num_candidates and len(chosen) < num_to_predict:
        k = j + 1  # The word's pieces follow its start in `order`.
        while k < num_candidates and not word_start[order[k]]:
            k += 1
        if len(chosen) + (k - j) <= num_to_predict:
            chosen.extend(order[j:k])
        j = k
    return chosen


def mask_instances(
    input_ids: np.ndarray,
    lengths: np.ndarray,
    options: InstanceOptions,
    vocab: Vocab,
    rng: np.random.Generator,
):
    """Masks a batch of instances (the original rule, vectorized).

    Candidates are all tokens but [CLS]/[SEP]; num_to_predict =
    min(max_predictions_per_seq, max(1, round(length * masked_lm_prob))),
    chosen in random order (whole words when do_whole_word_mask: a "##" piece
    belongs to the word before it); each chosen token becomes [MASK] with
    prob 0.8, stays with 0.1, and becomes a random vocab id with 0.1.
    Returns (masked input ids, positions, label ids, weights), positions sorted.
    """
    n, seq_length = input_ids.shape
    max_predictions = options.max_predictions_per_seq
    grid = np.arange(seq_length)
    candidate = (
        (grid[None, :] < lengths[:, None])
        & (input_ids != vocab.cls_id)
        & (input_ids != vocab.sep_id)
    )
    num_to_predict = np.minimum(
        max_predictions, np.maximum(1, np.rint(lengths * options.masked_lm_prob).astype(np.int64))
    )
    keys = rng.random((n, seq_length))
    if options.do_whole_word_mask:
        previous_candidate = np.pad(candidate[:, :-1], ((0, 0), (1, 0)))
        word_start = candidate & ~(vocab.is_continuation[input_ids] & previous_candidate)
        start_of = np.maximum.accumulate(np.where(word_start, grid, 0), axis=1)
        keys = np.take_along_axis(keys, start_of, axis=1)  # One key per word.
    keys = np.where(candidate, keys, np.inf)
    num_candidates = candidate.sum(axis=1)

    positions = np.full((n, max_predictions), seq_length, np.int64)
    if options.do_whole_word_mask:
        order = np.argsort(keys, axis=1, kind="stable")  # A word's pieces stay together.
        for row in range(n):
            chosen = _choose_whole_words(
                order[row], word_start[row], num_to_predict[row], num_candidates[row]
            )
            positions[row, : len(chosen)] = chosen
    else:
        # The num_to_predict smallest keys: a random subset of the candidates.
        width = min(max_predictions, seq_length)
        smallest = np.argpartition(keys, width - 1, axis=1)[:, :width]
        smallest = np.take_along_axis(
            smallest, np.argsort(np.take_along_axis(keys, smallest, axis=1), axis=1), axis=1
        )
        take = np.minimum(num_to_predict, num_candidates)
        positions[:, :width] = np.where(
            np.arange(width)[None, :] < take[:, None], smallest, seq_length
        )
    positions.sort(axis=1)
    valid = positions < seq_length
    positions = np.where(valid, positions, 0)
    labels = np.where(valid, np.take_along_axis(input_ids, positions, axis=1), 0)

    draw = rng.random((n, max_predictions))
    random_ids = rng.integers(0, vocab.size, (n, max_predictions))
    replacement = np.where(draw < 0.8, vocab.mask_id, np.where(draw < 0.9, labels, random_ids))
    masked = input_ids.copy()
    rows, cols = np.nonzero(valid)
    masked[rows, positions[rows, cols]] = replacement[rows, cols]
    return (masked, positions.astype(np.int32), labels.astype(np.int32), valid.astype(np.float32))


def create_instances(
    corpus: TokenizedCorpus,
    dupe: int,
    first_document: int,
    end_document: int,
    options: InstanceOptions,
    vocab: Vocab,
) -> Instances:
    """All instances of documents [first_document, end_document) in one dupe.

    A pure function of its arguments: pairs come from one generator per
    (random_seed, dupe, document), truncation and masks from one per
    (random_seed, dupe, first_document), so the output does not depend on
    which process runs it.
    """
    pairs = []
    for document in range(first_document, end_document):
        rng = random.Random(f"{options.random_seed:d}/{dupe:d}/{document:d}")
        pairs.extend(create_document_pairs(corpus, document, options, rng))
    n, seq_length = len(pairs), options.max_seq_length
    a_lo, a_hi, b_lo, b_hi, is_random_next = (
        np.array(column).reshape([n]) for column in (zip(*pairs) if pairs else [[]] * 5)
    )
    np_rng = np.random.default_rng([options.random_seed, dupe, first_document])
    a_lo, a_hi, b_lo, b_hi = truncate_seq_pairs(a_lo, a_hi, b_lo, b_hi, seq_length - 3, np_rng)
    len_a, len_b = (a_hi - a_lo)[:, None], (b_hi - b_lo)[:, None]
    # [CLS] A [SEP] B [SEP] [PAD]...: where each position's token comes from.
    p = np.arange(seq_length)[None, :]
    source = np.where(
        (p >= 1) & (p <= len_a),
        a_lo[:, None] + p - 1,
        np.where((p >= len_a + 2) & (p <= len_a + len_b + 1), b_lo[:, None] + p - len_a - 2, 0),
    )
    input_ids = np.where(
        p == 0,
        vocab.cls_id,
        np.where(
            (p == len_a + 1) | (p == len_a + len_b + 2),
            vocab.sep_id,
            np.where(p < len_a + len_b + 3, corpus.gather(source), vocab.pad_id),
        ),
    )
    input_ids = input_ids.astype(np.int32)
    lengths = (len_a + len_b + 3)[:, 0]
    num_predictions = options.max_predictions_per_seq
    if options.is_masked and n:
        input_ids, positions, labels, weights = mask_instances(
            input_ids, lengths, options, vocab, np_rng
        )
    else:
        positions = np.zeros((n, num_predictions), np.int32)
        labels = np.zeros((n, num_predictions), np.int32)
        weights = np.zeros((n, num_predictions), np.float32)
    return Instances(
        input_ids, lengths, len_a[:, 0] + 2, is_random_next.astype(bool), positions, labels, weights
    )


# -----------------------------------------------------------------------------
# Serialization: exactly the original tf.train.Example features.
# -----------------------------------------------------------------------------


def serialize_instances(instances: Instances) -> list[bytes]:
    """Serialized tf.train.Example of each instance, with the original features
    (int64 lists, and a float list for masked_lm_weights).

    Encoded for all instances at once by `data.example_encoding` (building
    protobuf messages one by one would be the slowest step of the pipeline);
    the bytes equal protobuf's deterministic serialization.
    """
    seq_length = instances.input_ids.shape[1]
    grid = np.arange(seq_length)[None, :]
    input_mask = grid < instances.lengths[:, None]
    segment_ids = input_mask & (grid >= instances.segment_a_lengths[:, None])
    features = {
        "input_ids": instances.input_ids,
        "input_mask": input_mask,
        "segment_ids": segment_ids,
        "masked_lm_positions": instances.masked_lm_positions,
        "masked_lm_ids": instances.masked_lm_ids,
        "masked_lm_weights": instances.masked_lm_weights,
        "next_sentence_labels": instances.is_random_next[:, None],
    }
    assert set(features) == set(FEATURE_NAMES)
    return example_encoding.serialize_examples(features, float_features=("masked_lm_weights",))
