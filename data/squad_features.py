"""SQuAD examples -> `InputFeatures`: WordPiece, answer spans and sliding windows.

As google-research/bert `run_squad.py`: every word is WordPiece-tokenized
(`tok_to_orig_index`, `orig_to_tok_index`); the answer's token span is tightened by searching
the tokenized answer inside the word span; long documents are cut into sliding windows
(`doc_stride`), each `[CLS] question [SEP] window [SEP]` with segment ids 0/1;
`token_is_max_context` marks, for every document token, the one window where it has the most
context on both sides. A training window that does not contain the answer (and every window
of an impossible question) is labelled start = end = 0, i.e. `[CLS]`.
"""

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence

from absl import logging

from data.squad_examples import SquadExample, SquadFormatError

MAX_SEQ_LENGTH = 384
DOC_STRIDE = 128
MAX_QUERY_LENGTH = 64
FIRST_UNIQUE_ID = 1000000000


@dataclasses.dataclass
class InputFeatures:
    """One window of one example, ready for the model.

    `token_to_orig_map` and `token_is_max_context` are keyed by the position in
    `tokens` (document tokens only). start/end positions are None when the
    example has no located answer. `token_to_orig_chars` (SentencePiece
    tokenizers only, else None) gives each document token's character span
    [start, end) inside its original word `doc_tokens[token_to_orig_map[i]]`;
    postprocessing cuts answers out of the original text with it.
    """

    unique_id: int
    example_index: int
    doc_span_index: int
    tokens: list[str]
    token_to_orig_map: dict[int, int]
    token_is_max_context: dict[int, bool]
    input_ids: list[int]
    input_mask: list[int]
    segment_ids: list[int]
    start_position: int | None = None
    end_position: int | None = None
    is_impossible: bool = False
    token_to_orig_chars: dict[int, tuple[int, int]] | None = None


# -----------------------------------------------------------------------------
# Examples -> features.
# -----------------------------------------------------------------------------


def _improve_answer_span(
    doc_tokens: Sequence[str], input_start: int, input_end: int, tok_answer_text: str
):
    """The tightest token span inside the word span that spells the tokenized answer.

    E.g. the answer "1895" in the word "(1895-1943)." becomes the single token
    "1895" rather than the whole word's tokens.
    """
    for new_start in range(input_start, input_end + 1):
        for new_end in range(input_end, new_start - 1, -1):
            if " ".join(doc_tokens[new_start : new_end + 1]) == tok_answer_text:
                return new_start, new_end
    return input_start, input_end


def _doc_spans(num_tokens: int, max_tokens_for_doc: int, doc_stride: int):
    """(start, length) windows over the document tokens, `doc_stride` apart."""
    spans = []
    start = 0
    while start < num_tokens:
        length = min(num_tokens - start, max_tokens_for_doc)
        spans.append((start, length))
        if start + length == num_tokens:
            break
        start += min(length, doc_stride)
    return spans


def _max_context_span(doc_spans, position: int) -> int:
    """Index of the window where `position` has the most context on both sides.

    Score = min(left context, right context) + 0.01 * window length; the first
    window wins ties.
    """
    best_score, best_index = None, None
    for span_index, (start, length) in enumerate(doc_spans):
        end = start + length - 1
        if position < start or position > end:
            continue
        score = min(position - start, end - position) + 0.01 * length
        if best_score is None or score > best_score:
            best_score, best_index = score, span_index
    return best_index


def orig_text_of_span(
    doc_tokens: Sequence[str],
    token_to_orig: Mapping[int, int],
    token_chars: Mapping[int, tuple[int, int]],
    start: int,
    end: int,
) -> str:
    """The original text of tokens start..end (inclusive), cut at their character spans.

    `token_to_orig` maps a token to its word in `doc_tokens`, `token_chars` to its
    [start, end) characters inside that word; words are joined by one space.
    """
    first_word, last_word = token_to_orig[start], token_to_orig[end]
    first_char, end_char = token_chars[start][0], token_chars[end][1]
    if first_word == last_word:
        return doc_tokens[first_word][first_char:end_char]
    words = [doc_tokens[first_word][first_char:]]
    words.extend(doc_tokens[first_word + 1 : last_word])
    words.append(doc_tokens[last_word][:end_char])
    return " ".join(words).strip()


def _improve_answer_span_by_text(
    doc_tokens: Sequence[str],
    tok_to_orig_index: Sequence[int],
    tok_chars: Sequence[tuple[int, int]],
    input_start: int,
    input_end: int,
    orig_answer_text: str,
):
    """The tightest token span inside the word span whose original text is the answer.

    For tokenizers with character spans (SentencePiece), whose pieces neither split
    at punctuation nor survive normalization unchanged, so that the reference's
    comparison of token strings rarely finds "1895" inside "(1895-1943).". If no
    span spells the answer exactly (it starts or ends inside a piece), the tightest
    span containing it.
    """
    answer = " ".join(orig_answer_text.split())

    def text(start, end):
        return orig_text_of_span(doc_tokens, tok_to_orig_index, tok_chars, start, end)

    containing = None
    for new_start in range(input_start, input_end + 1):
        for new_end in range(input_end, new_start - 1, -1):
            span_text = text(new_start, new_end)
            if span_text == answer:
                return new_start, new_end
            if answer not in span_text:
                break  # Shorter spans from this start cannot contain it either.
            if containing is None or new_end - new_start < containing[1] - containing[0]:
                containing = (new_start, new_end)
    return containing or (input_start, input_end)


class _TokenizationCache:
    """Memoizes tokenization per word and per context (contexts repeat per question).

    Words are tokenized one at a time, so every piece belongs to one whitespace
    word. With a tokenizer that has `tokenize_with_offsets` (SentencePiece), each
    piece's character span inside its word is kept too.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.with_offsets = getattr(tokenizer, "tokenize_with_offsets", None)
        self.words: dict[str, tuple] = {}
        self.docs: dict[int, tuple] = {}

    def tokenize_word(self, word: str):
        """(pieces, character spans or None) of one word."""
        cached = self.words.get(word)
        if cached is None:
            if self.with_offsets is not None:
                cached = self.words[word] = self.with_offsets(word)
            else:
                cached = self.words[word] = (self.tokenizer.tokenize(word), None)
        return cached

    def tokenize_doc(self, doc_tokens: list[str]):
        cached = self.docs.get(id(doc_tokens))
        if cached is not None and cached[0] is doc_tokens:
            return cached[1:]
        tok_to_orig_index, orig_to_tok_index, all_doc_tokens = [], [], []
        tok_chars = [] if self.with_offsets is not None else None
        for i, word in enumerate(doc_tokens):
            orig_to_tok_index.append(len(all_doc_tokens))
            pieces, spans = self.tokenize_word(word)
            for piece in pieces:
                tok_to_orig_index.append(i)
                all_doc_tokens.append(piece)
            if tok_chars is not None:
                tok_chars.extend(spans)
        doc_ids = self.tokenizer.convert_tokens_to_ids(all_doc_tokens)
        # Keeping doc_tokens in the value keeps its id() from being reused.
        self.docs[id(doc_tokens)] = (
            doc_tokens,
            tok_to_orig_index,
            orig_to_tok_index,
            all_doc_tokens,
            doc_ids,
            tok_chars,
        )
        return tok_to_orig_index, orig_to_tok_index, all_doc_tokens, doc_ids, tok_chars


def convert_examples_to_features(
    examples: Sequence[SquadExample],
    tokenizer,
    max_seq_length: int = MAX_SEQ_LENGTH,
    doc_stride: int = DOC_STRIDE,
    max_query_length: int = MAX_QUERY_LENGTH,
    is_training: bool = False,
    output_fn: Callable[[InputFeatures], None] | None = None,
    log_every: int = 10000,
) -> list[InputFeatures]:
    """Converts examples to windowed features (the reference algorithm).

    `tokenizer` is a WordPiece `FullTokenizer` or a `SentencePieceTokenizer`
    (`data.tokenization.create_tokenizer`). Answer positions are labelled whenever
    an example has a located answer (or is impossible), also for prediction, where
    they serve oracle checks; prediction features of examples without a located
    answer get None. With `is_training` every feature must be labelled: an example
    without a located answer is an error (naming its question id) rather than an
    unlabelled training feature. Returns the features (and also passes each to
    `output_fn` if given).
    """
    cache = _TokenizationCache(tokenizer)
    cls_id, sep_id = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
    features = []
    unique_id = FIRST_UNIQUE_ID
    start_time = time.time()
    for example_index, example in enumerate(examples):
        query_tokens = tokenizer.tokenize(example.question_text)[:max_query_length]
        query_ids = tokenizer.convert_tokens_to_ids(query_tokens)
        tok_to_orig_index, orig_to_tok_index, all_doc_tokens, doc_ids, tok_chars = (
            cache.tokenize_doc(example.doc_tokens)
        )

        tok_start = tok_end = None
        if example.is_impossible:
            tok_start = tok_end = -1
        elif example.start_position is not None:
            tok_start = orig_to_tok_index[example.start_position]
            if example.end_position < len(example.doc_tokens) - 1:
                tok_end = orig_to_tok_index[example.end_position + 1] - 1
            else:
                tok_end = len(all_doc_tokens) - 1
            if tok_chars is None:
                tok_answer_text = " ".join(tokenizer.tokenize(example.orig_answer_text))
                tok_start, tok_end = _improve_answer_span(
                    all_doc_tokens, tok_start, tok_end, tok_answer_text
                )
            else:
                tok_start, tok_end = _improve_answer_span_by_text(
                    example.doc_tokens,
                    tok_to_orig_index,
                    tok_chars,
                    tok_start,
                    tok_end,
                    example.orig_answer_text,
                )
        elif is_training:
            raise SquadFormatError(
                f"Question {example.qas_id!r} has no located answer, but training features "
                "need one (read_squad_examples(..., is_training=True) skips such questions)."
            )

        max_tokens_for_doc = max_seq_length - len(query_tokens) - 3  # [CLS], [SEP], [SEP]
        doc_spans = _doc_spans(len(all_doc_tokens), max_tokens_for_doc, doc_stride)
        doc_offset = len(query_tokens) + 2
        for doc_span_index, (span_start, span_length) in enumerate(doc_spans):
            span_end = span_start + span_length  # exclusive
            tokens = [
                "[CLS]",
                *query_tokens,
                "[SEP]",
                *all_doc_tokens[span_start:span_end],
                "[SEP]",
            ]
            input_ids = [cls_id, *query_ids, sep_id, *doc_ids[span_start:span_end], sep_id]
            segment_ids = [0] * doc_offset + [1] * (span_length + 1)
            token_to_orig_map = {}
            token_is_max_context = {}
            token_to_orig_chars = None if tok_chars is None else {}
            for i in range(span_length):
                token_to_orig_map[doc_offset + i] = tok_to_orig_index[span_start + i]
                if token_to_orig_chars is not None:
                    token_to_orig_chars[doc_offset + i] = tok_chars[span_start + i]
                token_is_max_context[doc_offset + i] = (
                    _max_context_span(doc_spans, span_start + i) == doc_span_index
                )
            input_mask = [1] * len(input_ids)
            padding = [0] * (max_seq_length - len(input_ids))
            input_ids += padding
            input_mask += padding
            segment_ids += padding

            start_position = end_position = None
            if example.is_impossible:
                start_position = end_position = 0
            elif tok_start is not None:
                if span_start <= tok_start and tok_end < span_end:
                    start_position = tok_start - span_start + doc_offset
                    end_position = tok_end - span_start + doc_offset
                else:  # The answer is not (entirely) in this window: point at [CLS].
                    start_position = end_position = 0

            feature = InputFeatures(
                unique_id=unique_id,
                example_index=example_index,
                doc_span_index=doc_span_index,
                tokens=tokens,
                token_to_orig_map=token_to_orig_map,
                token_is_max_context=token_is_max_context,
                input_ids=input_ids,
                input_mask=input_mask,
                segment_ids=segment_ids,
                start_position=start_position,
                end_position=end_position,
                is_impossible=example.is_impossible,
                token_to_orig_chars=token_to_orig_chars,
            )
            features.append(feature)
            if output_fn is not None:
                output_fn(feature)
            unique_id += 1
        if log_every and (example_index + 1) % log_every == 0:
            rate = (example_index + 1) / (time.time() - start_time)
            eta = (len(examples) - example_index - 1) / rate
            logging.info(
                "Converted %d/%d examples (%.0f examples/s, ETA %.0f s), %d features.",
                example_index + 1,
                len(examples),
                rate,
                eta,
                len(features),
            )
    return features
