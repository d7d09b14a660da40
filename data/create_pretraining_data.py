"""Creates masked-LM / next-sentence-prediction TFRecords for BERT pretraining.

Same algorithm, flags and output features as google-research/bert
`create_pretraining_data.py`, made fast:

* sentences are tokenized in compiled code, in batches (tensorflow-text:
  FastBertTokenizer for plain ASCII lines, where it equals BERT's tokenizer,
  and the exact in-graph tokenizer of `data.tokenization` for the rest);
* instances are created by `--num_workers` processes over fixed tasks of
  DOCUMENTS_PER_TASK documents; truncation, masking and serialization are
  vectorized with numpy over a whole task.

Output depends only on the inputs and flags, never on `--num_workers`: the
sentence pairs of every (dupe, document) come from a generator seeded from
(random_seed, dupe, document index) (the random "next sentence" document is
drawn from it over the whole corpus), and truncation and masks of a task from
one seeded from (random_seed, dupe, first document of the task). All records
are then shuffled with random_seed and dealt round-robin to the output files.

Example:
  python -m data.create_pretraining_data \
    --input_file='corpus/*.txt' --output_file=out/train.tfrecord \
    --num_output_shards=8 --vocab_file=vocab.txt --do_lower_case \
    --max_seq_length=128 --max_predictions_per_seq=20 --num_workers=8

With `--no_masking` (or --masked_lm_prob=0) records are written unmasked for
dynamic masking in `data.pretraining_input`; each output file then gets a
`<file>.info.json` describing how it was made (vocab size, special ids, ...).
"""

import dataclasses
import functools
import gc
import json
import multiprocessing
import os
import random
import time
import uuid
from collections.abc import Sequence

import numpy as np
from absl import app, flags, logging

from data import example_encoding, fileio, text_corpus, tokenization
from data.pretraining_input import FEATURE_NAMES, INFO_SUFFIX

FLAGS = flags.FLAGS


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
        if isinstance(tokenizer, tokenization.SentencePieceTokenizer):
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
        self.sentence_starts_list = self.sentence_starts.tolist()
        self.document_starts_list = self.document_starts.tolist()

    @property
    def num_documents(self) -> int:
        return len(self.document_starts) - 1


# -----------------------------------------------------------------------------
# Tokenization.
# -----------------------------------------------------------------------------


def _fast_ascii_tokenizer(vocab: Sequence[str], do_lower_case: bool):
    """tensorflow-text FastBertTokenizer for printable-ASCII text.

    On such text BERT's normalization is only lower-casing and splitting on
    spaces and ASCII punctuation, which this
    C++ tokenizer does identically (checked in the tests against
    FullTokenizer.tokenize); non-ASCII text goes through the exact in-graph
    tokenizer of `data.tokenization`.
    """
    import tensorflow as tf
    import tensorflow_text as tf_text

    return tf_text.FastBertTokenizer(
        list(vocab),
        suffix_indicator="##",
        max_bytes_per_word=100,
        token_out_type=tf.int32,
        unknown_token="[UNK]",
        lower_case_nfd_strip_accents=bool(do_lower_case),
    )


def _compiled_tokenizers(tokenizer):
    """(ASCII fast path, exact path) as tf.functions over [batch] strings."""
    return _compiled_tokenizers_for(
        tokenizer.vocab_file, tuple(tokenizer.vocab), bool(tokenizer.do_lower_case)
    )


@functools.lru_cache(maxsize=4)
def _compiled_tokenizers_for(vocab_file: str, vocab: tuple[str, ...], do_lower_case: bool):
    """Keyed by the vocabulary, not the tokenizer object, so the tables are built and
    both functions traced once per process and vocabulary."""
    import tensorflow as tf

    from data import tokenization

    spec = [tf.TensorSpec([None], tf.string)]
    fast = _fast_ascii_tokenizer(vocab, do_lower_case)
    exact = tokenization.InGraphTokenizer(vocab_file, do_lower_case, vocab=list(vocab))
    return (
        tf.function(lambda s: fast.tokenize(s), input_signature=spec),
        tf.function(lambda s: exact.tokenize(s), input_signature=spec),
    )


def tokenize_sentences(
    sentences: Sequence[str], tokenizer, batch_size: int = 8192
) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of many sentences: (flat int32 ids, int64 lengths)."""
    if isinstance(tokenizer, tokenization.SentencePieceTokenizer):
        return _tokenize_sentences_spm(sentences, tokenizer, batch_size)
    import tensorflow as tf  # Only the main process uses TensorFlow.

    # Printable ASCII only: control characters take the exact path.
    is_ascii = np.array([s.isascii() and s.isprintable() for s in sentences], bool)
    lengths = np.zeros([len(sentences)], np.int64)
    pieces: list[tuple[np.ndarray, np.ndarray]] = []  # (sentence indices, ragged ids)
    ascii_fn, exact_fn = _compiled_tokenizers(tokenizer)
    groups = [(np.flatnonzero(is_ascii), ascii_fn), (np.flatnonzero(~is_ascii), exact_fn)]
    progress = Progress("tokenize", total=len(sentences), unit="sentences")
    for indices, tokenize in groups:
        for start in range(0, len(indices), batch_size):
            batch = indices[start : start + batch_size]
            ragged = tokenize(tf.constant([sentences[i] for i in batch], tf.string))
            lengths[batch] = ragged.row_lengths().numpy()
            pieces.append((batch, ragged.flat_values.numpy().astype(np.int32)))
            progress.update(len(batch))
    progress.done()
    # Put the ids back in sentence order.
    starts = np.concatenate([[0], np.cumsum(lengths)])
    flat = np.zeros([int(starts[-1])], np.int32)
    for batch, ids in pieces:
        batch_lengths = lengths[batch]
        local_starts = np.concatenate([[0], np.cumsum(batch_lengths)[:-1]])
        flat[np.repeat(starts[batch] - local_starts, batch_lengths) + np.arange(len(ids))] = ids
    return flat, lengths


def _tokenize_sentences_spm(
    sentences: Sequence[str], tokenizer, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """SentencePiece ids of many sentences (its C++ batch encoder, exact)."""
    lengths = np.zeros([len(sentences)], np.int64)
    pieces: list[np.ndarray] = []
    progress = Progress("tokenize", total=len(sentences), unit="sentences")
    for start in range(0, len(sentences), batch_size):
        batch = tokenizer.tokenize_batch_to_ids(sentences[start : start + batch_size])
        lengths[start : start + len(batch)] = [len(ids) for ids in batch]
        pieces.extend(np.asarray(ids, np.int32) for ids in batch)
        progress.update(len(batch))
    progress.done()
    flat = np.concatenate(pieces) if pieces else np.zeros([0], np.int32)
    return flat.astype(np.int32), lengths


def tokenize_corpus(documents: Sequence[Sequence[str]], tokenizer) -> TokenizedCorpus:
    """Tokenizes every sentence in compiled code; drops empty sentences/documents."""
    sentences = [s for doc in documents for s in doc]
    token_ids, sentence_lengths = tokenize_sentences(sentences, tokenizer)
    doc_of_sentence = np.repeat(np.arange(len(documents)), [len(d) for d in documents])
    keep = sentence_lengths > 0
    sentence_lengths = sentence_lengths[keep]
    sentences_per_doc = np.bincount(doc_of_sentence[keep], minlength=len(documents))
    doc_bytes = np.array([sum(len(s.encode("utf-8")) + 1 for s in d) for d in documents], np.int64)
    non_empty = sentences_per_doc > 0
    return TokenizedCorpus(
        token_ids=token_ids,
        sentence_starts=np.concatenate([[0], np.cumsum(sentence_lengths)]).astype(np.int64),
        document_starts=np.concatenate([[0], np.cumsum(sentences_per_doc[non_empty])]).astype(
            np.int64
        ),
        document_bytes=doc_bytes[non_empty],
    )


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
    and B as ranges of `corpus.token_ids` (the sentences of a document are
    contiguous there, so a run of sentences is one range), not yet truncated
    (see `truncate_seq_pairs`).
    """
    starts, doc_starts = corpus.sentence_starts_list, corpus.document_starts_list
    first, end = doc_starts[document_index], doc_starts[document_index + 1]
    max_num_tokens = options.max_seq_length - 3
    # As in the original, the target length is drawn once per document.
    target_seq_length = max_num_tokens
    if rng.random() < options.short_seq_prob:
        target_seq_length = _randint(rng, 2, max_num_tokens)

    pairs = []
    chunk_first, chunk_size = first, 0
    i = first
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
                r_first, r_end = doc_starts[random_index], doc_starts[random_index + 1]
                j = r_first + _randint(rng, 0, r_end - r_first - 1)
                b_lo = starts[j]
                while j < r_end - 1 and starts[j + 1] - b_lo < target_b_length:
                    j += 1
                b_hi = starts[j + 1]
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
            np.where(p < len_a + len_b + 3, corpus.token_ids[source], vocab.pad_id),
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


# -----------------------------------------------------------------------------
# Parallel driver.
# -----------------------------------------------------------------------------

# Set in the parent before forking; worker processes inherit them.
_WORKER_STATE: dict[str, object] = {}


def _process_chunk(task: tuple[int, int, int]):
    """Worker: serialized records of documents [start, end) for one dupe."""
    dupe, start, end = task
    instances = create_instances(
        _WORKER_STATE["corpus"], dupe, start, end, _WORKER_STATE["options"], _WORKER_STATE["vocab"]
    )
    records = serialize_instances(instances)
    # One blob and its lengths pickle far faster than many small bytes objects.
    return task, b"".join(records), np.array([len(r) for r in records], np.int64)


class Progress:
    """Logs items/s, MB/s and ETA at most every `interval` seconds."""

    def __init__(
        self, name: str, total: float, unit: str, total_bytes: float = 0, interval: float = 5.0
    ):
        self.name, self.total, self.unit, self.total_bytes = name, total, unit, total_bytes
        self.interval = interval
        self.count = self.bytes = 0
        self.start = self.last = time.perf_counter()

    def update(self, count: float, num_bytes: float = 0):
        self.count += count
        self.bytes += num_bytes
        now = time.perf_counter()
        if now - self.last >= self.interval:
            self.last = now
            self._log(now)

    def _log(self, now):
        elapsed = max(now - self.start, 1e-9)
        rate = self.count / elapsed
        eta = (self.total - self.count) / rate if rate > 0 else float("inf")
        mbps = f", {self.bytes / elapsed / 1e6:.2f} MB/s" if self.total_bytes else ""
        logging.info(
            "%s: %d/%d %s (%.1f %s/s%s), elapsed %.1fs, ETA %.1fs",
            self.name,
            self.count,
            self.total,
            self.unit,
            rate,
            self.unit,
            mbps,
            elapsed,
            eta,
        )

    def done(self):
        self._log(time.perf_counter())


# Documents per task. Masks are drawn per task, so this is part of the
# algorithm's definition (fixed, never derived from the number of workers).
DOCUMENTS_PER_TASK = 16


def generate_records(
    corpus: TokenizedCorpus, options: InstanceOptions, vocab: Vocab, num_workers: int = 1
) -> list[bytes]:
    """Serialized records of all dupes and documents, in (dupe, document) order."""
    tasks = [
        (dupe, start, min(start + DOCUMENTS_PER_TASK, corpus.num_documents))
        for dupe in range(options.dupe_factor)
        for start in range(0, corpus.num_documents, DOCUMENTS_PER_TASK)
    ]
    total_bytes = float(corpus.document_bytes.sum()) * options.dupe_factor
    progress = Progress(
        "create instances",
        total=corpus.num_documents * options.dupe_factor,
        unit="docs",
        total_bytes=total_bytes,
    )
    _WORKER_STATE.update(corpus=corpus, options=options, vocab=vocab)
    records: list[bytes] = []

    def consume(results):
        for (_, start, end), blob, lengths in results:
            offsets = np.concatenate([[0], np.cumsum(lengths)]).tolist()
            records.extend(blob[offsets[i] : offsets[i + 1]] for i in range(len(lengths)))
            progress.update(end - start, float(corpus.document_bytes[start:end].sum()))

    try:
        if num_workers <= 1:
            consume(map(_process_chunk, tasks))
        else:
            # fork: workers share the tokenized corpus without copying it.
            # gc.freeze keeps the children's garbage collector from touching
            # (and so copying) every page of the parent's heap.
            gc.freeze()
            try:
                with multiprocessing.get_context("fork").Pool(num_workers) as pool:
                    # Batches of tasks per message: fewer round trips to this process.
                    consume(pool.imap(_process_chunk, tasks, chunksize=8))
            finally:
                gc.unfreeze()
    finally:
        _WORKER_STATE.clear()
    progress.done()
    return records


def output_paths(output_file: str, num_output_shards: int = 0) -> list[str]:
    """A comma list of files, or `prefix-00000-of-0000N` when sharding a prefix."""
    if num_output_shards and num_output_shards > 1:
        if "," in output_file:
            raise ValueError(
                "Give either a comma list of output files or one prefix with "
                "--num_output_shards, not both."
            )
        return [
            f"{output_file}-{i:05d}-of-{num_output_shards:05d}" for i in range(num_output_shards)
        ]
    return [p.strip() for p in output_file.split(",") if p.strip()]


def write_records(
    records: Sequence[bytes], paths: Sequence[str], random_seed: int, info: dict | None = None
) -> list[int]:
    """Shuffles the records (seeded), writes them round-robin over `paths`.

    Each file is streamed to a temporary name and renamed when complete (its
    `.info.json` is written atomically by `data.fileio` just before), so
    a failure never leaves partial output under a final name.
    """
    import tensorflow as tf

    order = np.random.default_rng(random_seed).permutation(len(records))
    counts = []
    for shard, path in enumerate(paths):
        directory = os.path.dirname(path)
        if directory:
            tf.io.gfile.makedirs(directory)
        temporary = f"{path}.tmp-{uuid.uuid4().hex[:12]}"  # As data.fileio names them.
        try:
            with tf.io.TFRecordWriter(temporary) as writer:
                shard_order = order[shard :: len(paths)]
                for index in shard_order:
                    writer.write(records[index])
            if info is not None:
                shard_info = dict(info, num_instances=int(len(shard_order)))
                # json.dumps as before (no trailing newline): output unchanged.
                fileio.write_atomic(path + INFO_SUFFIX, json.dumps(shard_info, indent=2))
            tf.io.gfile.rename(temporary, path, overwrite=True)
        except BaseException:
            if tf.io.gfile.exists(temporary):
                tf.io.gfile.remove(temporary)
            raise
        counts.append(len(shard_order))
    return counts


def create_pretraining_data(
    input_files: Sequence[str],
    output_files: Sequence[str],
    tokenizer,
    options: InstanceOptions,
    num_workers: int = 1,
    hf_datasets: Sequence[str] = (),
    hf_max_documents: int = 0,
) -> dict:
    """Runs the whole pipeline; returns statistics (counts, seconds, rates)."""
    start = time.perf_counter()
    documents = text_corpus.read_documents(
        input_files, hf_datasets, hf_max_documents=hf_max_documents
    )
    if not documents:
        raise ValueError(f"No documents found in {list(input_files) + list(hf_datasets)}.")
    read_seconds = time.perf_counter() - start
    corpus = tokenize_corpus(documents, tokenizer)
    tokenize_seconds = time.perf_counter() - start - read_seconds
    vocab = Vocab.from_tokenizer(tokenizer)
    records = generate_records(corpus, options, vocab, num_workers)
    instances_seconds = time.perf_counter() - start - read_seconds - tokenize_seconds
    info = dict(
        dataclasses.asdict(options),
        masked=options.is_masked,
        vocab_size=vocab.size,
        cls_id=vocab.cls_id,
        sep_id=vocab.sep_id,
        mask_id=vocab.mask_id,
        pad_id=vocab.pad_id,
        do_lower_case=getattr(tokenizer, "do_lower_case", None),
    )
    counts = write_records(
        records, output_files, options.random_seed, info=None if options.is_masked else info
    )
    seconds = time.perf_counter() - start
    input_bytes = float(corpus.document_bytes.sum())
    stats = dict(
        documents=corpus.num_documents,
        instances=len(records),
        seconds=seconds,
        read_seconds=read_seconds,
        tokenize_seconds=tokenize_seconds,
        instances_seconds=instances_seconds,  # create, mask and serialize
        write_seconds=seconds - read_seconds - tokenize_seconds - instances_seconds,
        input_megabytes=input_bytes / 1e6,
        mb_per_second=input_bytes / 1e6 / seconds,
        instances_per_second=len(records) / seconds,
        records_per_file=counts,
    )
    logging.info(
        "Wrote %d instances from %d documents to %d file(s) in %.1fs "
        "(%.2f input MB/s, %.0f instances/s).",
        len(records),
        corpus.num_documents,
        len(output_files),
        seconds,
        stats["mb_per_second"],
        stats["instances_per_second"],
    )
    return stats


def define_flags():
    flags.DEFINE_string(
        "input_file",
        None,
        "Input raw text file(s): comma-separated globs. One sentence per "
        "line, a blank line between documents.",
    )
    flags.DEFINE_string(
        "output_file",
        None,
        "Output TFRecord file(s): comma-separated, or a prefix with --num_output_shards.",
    )
    flags.DEFINE_string("vocab_file", None, "The WordPiece vocabulary file of the BERT model.")
    flags.DEFINE_string(
        "spm_model_file",
        None,
        "A SentencePiece model (e.g. from data.learn_vocab --kind=sentencepiece), instead "
        "of --vocab_file. It needs the pieces [CLS], [SEP], [MASK] and [PAD].",
    )
    flags.DEFINE_bool("do_lower_case", True, "Lower-case the input text (uncased models).")
    flags.DEFINE_bool(
        "do_whole_word_mask",
        False,
        "Mask all pieces of a word together (WordPiece: a word is a piece and its "
        '"##" continuations; SentencePiece: a piece starting with "\u2581" and the '
        "pieces after it).",
    )
    flags.DEFINE_integer("max_seq_length", 128, "Maximum sequence length.")
    flags.DEFINE_integer("max_predictions_per_seq", 20, "Maximum masked LM predictions.")
    flags.DEFINE_integer("random_seed", 12345, "Random seed for data generation.")
    flags.DEFINE_integer("dupe_factor", 10, "Times to duplicate the input with different masks.")
    flags.DEFINE_float("masked_lm_prob", 0.15, "Masked LM probability.")
    flags.DEFINE_float(
        "short_seq_prob", 0.1, "Probability of a shorter sequence than the maximum length."
    )
    flags.DEFINE_bool(
        "no_masking", False, "Write unmasked records (for dynamic masking in the input pipeline)."
    )
    flags.DEFINE_integer(
        "num_workers",
        os.cpu_count() or 1,
        "Processes creating instances (output does not depend on it).",
    )
    flags.DEFINE_integer(
        "num_output_shards", 0, "If > 1, --output_file is a prefix of this many shards."
    )
    flags.DEFINE_list(
        "hf_dataset",
        [],
        "Hugging Face datasets as name[:config], e.g. wikipedia:20220301.en "
        "or bookcorpus; read with datasets.load_dataset (needs network).",
    )
    flags.DEFINE_integer(
        "hf_max_documents",
        0,
        "If > 0, read at most this many documents from each Hugging Face dataset.",
    )


def main(_):
    if not FLAGS.input_file and not FLAGS.hf_dataset:
        raise app.UsageError("Give --input_file and/or --hf_dataset.")
    input_files = text_corpus.expand_file_patterns(FLAGS.input_file) if FLAGS.input_file else []
    if bool(FLAGS.vocab_file) == bool(FLAGS.spm_model_file):
        raise app.UsageError(
            "Give exactly one of --vocab_file (WordPiece) and --spm_model_file (SentencePiece)."
        )
    tokenizer = tokenization.create_tokenizer(
        vocab_file=FLAGS.vocab_file or None,
        spm_model_file=FLAGS.spm_model_file or None,
        do_lower_case=FLAGS.do_lower_case,
    )
    options = InstanceOptions(
        max_seq_length=FLAGS.max_seq_length,
        max_predictions_per_seq=FLAGS.max_predictions_per_seq,
        masked_lm_prob=FLAGS.masked_lm_prob,
        short_seq_prob=FLAGS.short_seq_prob,
        dupe_factor=FLAGS.dupe_factor,
        random_seed=FLAGS.random_seed,
        do_whole_word_mask=FLAGS.do_whole_word_mask,
        masking=not FLAGS.no_masking,
    )
    outputs = output_paths(FLAGS.output_file, FLAGS.num_output_shards)
    logging.info(
        "Reading %d file(s) and %d dataset(s); writing %d file(s).",
        len(input_files),
        len(FLAGS.hf_dataset),
        len(outputs),
    )
    create_pretraining_data(
        input_files,
        outputs,
        tokenizer,
        options,
        num_workers=FLAGS.num_workers,
        hf_datasets=FLAGS.hf_dataset,
        hf_max_documents=FLAGS.hf_max_documents,
    )


if __name__ == "__main__":
    define_flags()
    flags.mark_flags_as_required(["output_file"])
    app.run(main)
