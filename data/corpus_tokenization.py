"""The pretraining corpus as token ids: every sentence tokenized in compiled code, in batches.

WordPiece runs through tensorflow-text (FastBertTokenizer for plain ASCII lines, where it
equals BERT's tokenizer, and the exact in-graph tokenizer of `data.tokenization` for the
rest); SentencePiece through its C++ batch encoder.
"""

import concurrent.futures
import functools
import os
import threading
from collections.abc import Sequence

import numpy as np

from data import tokenization
from data.pretraining_instances import TokenizedCorpus
from data.progress import Progress


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


_BUILDING = threading.Lock()

# Threads tokenizing batches (or chunks) at once: the tokenizer ops run outside the GIL (2
# threads: 1.7x on 2 cores); capped, as reading and batching the text hold the GIL and
# every thread holds its batch.
THREADS = min(4, os.cpu_count() or 1)


def _compiled_tokenizers(tokenizer):
    """(ASCII fast path, exact path) as tf.functions over [batch] strings."""
    with _BUILDING:  # Threads tokenizing at once wait for one build (seconds) to finish.
        return _compiled_tokenizers_for(
            tokenizer.vocab_file, tuple(tokenizer.vocab), bool(tokenizer.do_lower_case)
        )


@functools.lru_cache(maxsize=4)
def _compiled_tokenizers_for(vocab_file: str, vocab: tuple[str, ...], do_lower_case: bool):
    """Keyed by the vocabulary, not the tokenizer object, so the tables are built and
    both functions traced once per process and vocabulary."""
    import tensorflow as tf

    spec = [tf.TensorSpec([None], tf.string)]
    fast = _fast_ascii_tokenizer(vocab, do_lower_case)
    exact = tokenization.InGraphTokenizer(vocab_file, do_lower_case, vocab=list(vocab))
    return (
        tf.function(lambda s: fast.tokenize(s), input_signature=spec),
        tf.function(lambda s: exact.tokenize(s), input_signature=spec),
    )


def tokenize_sentences(
    sentences: Sequence[str], tokenizer, batch_size: int = 8192, progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of many sentences: (flat int32 ids, int64 lengths); `progress` logs it."""
    if isinstance(tokenizer, tokenization.SentencePieceTokenizer):
        return _tokenize_sentences_spm(sentences, tokenizer, batch_size, progress)
    import tensorflow as tf  # Only the main process uses TensorFlow.

    # Printable ASCII only: control characters take the exact path.
    is_ascii = np.array([s.isascii() and s.isprintable() for s in sentences], bool)
    lengths = np.zeros([len(sentences)], np.int64)
    ascii_fn, exact_fn = _compiled_tokenizers(tokenizer)
    batches = [
        (indices[start : start + batch_size], tokenize)
        for indices, tokenize in [
            (np.flatnonzero(is_ascii), ascii_fn),
            (np.flatnonzero(~is_ascii), exact_fn),
        ]
        for start in range(0, len(indices), batch_size)
    ]
    progress = Progress("tokenize", len(sentences), "sentences", enabled=progress)

    def run(batch_and_tokenizer):
        batch, tokenize = batch_and_tokenizer
        ragged = tokenize(tf.constant([sentences[i] for i in batch], tf.string))
        return batch, ragged.row_lengths().numpy(), ragged.flat_values.numpy().astype(np.int32)

    pieces: list[tuple[np.ndarray, np.ndarray]] = []  # (sentence indices, their ids)
    with concurrent.futures.ThreadPoolExecutor(max(1, min(len(batches), THREADS))) as pool:
        for batch, batch_lengths, ids in pool.map(run, batches):
            lengths[batch] = batch_lengths
            pieces.append((batch, ids))
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
    sentences: Sequence[str], tokenizer, batch_size: int, progress: bool
) -> tuple[np.ndarray, np.ndarray]:
    """SentencePiece ids of many sentences (its C++ batch encoder, exact)."""
    lengths = np.zeros([len(sentences)], np.int64)
    pieces: list[np.ndarray] = []
    progress = Progress("tokenize", len(sentences), "sentences", enabled=progress)
    for start in range(0, len(sentences), batch_size):
        batch = tokenizer.tokenize_batch_to_ids(sentences[start : start + batch_size])
        lengths[start : start + len(batch)] = [len(ids) for ids in batch]
        pieces.extend(np.asarray(ids, np.int32) for ids in batch)
        progress.update(len(batch))
    progress.done()
    flat = np.concatenate(pieces) if pieces else np.zeros([0], np.int32)
    return flat.astype(np.int32), lengths


def tokenize_corpus(
    documents: Sequence[Sequence[str]], tokenizer, progress: bool = True
) -> TokenizedCorpus:
    """Tokenizes every sentence in compiled code; drops empty sentences/documents."""
    sentences = [s for doc in documents for s in doc]
    token_ids, sentence_lengths = tokenize_sentences(sentences, tokenizer, progress=progress)
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
