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
"""

import dataclasses
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

MAX_SEQ_LENGTH = 384
DOC_STRIDE = 128
MAX_QUERY_LENGTH = 64
FIRST_UNIQUE_ID = 1000000000
PADDING_UNIQUE_ID = -1  # unique id of the dummy features that pad the last predict batch.

MODEL_INPUT_KEYS = ("input_ids", "input_mask", "segment_ids")
LABEL_KEYS = ("start_positions", "end_positions")


class SquadFormatError(ValueError):
    """A SQuAD JSON file or dataset row does not have the expected content."""


@dataclasses.dataclass
class SquadExample:
    """One question about one context, in whitespace words.

    start_position / end_position are word indices into `doc_tokens` of the
    first gold answer (None when the answer cannot be located, -1 when the
    question is impossible). `answers` holds all gold answer texts.
    """

    qas_id: str
    question_text: str
    doc_tokens: list[str]
    orig_answer_text: str = ""
    start_position: int | None = None
    end_position: int | None = None
    is_impossible: bool = False
    answers: list[str] = dataclasses.field(default_factory=list)


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
# Reading: JSON files and Hugging Face datasets -> SquadExample.
# -----------------------------------------------------------------------------


def _is_whitespace(char: str) -> bool:
    # U+202F (narrow no-break space) separates words in SQuAD, as in the reference.
    return char in " \t\r\n" or ord(char) == 0x202F


def split_context(context: str):
    """Whitespace words of `context` and, for every character, its word index."""
    doc_tokens = []
    char_to_word_offset = []
    previous_is_whitespace = True
    for char in context:
        if _is_whitespace(char):
            previous_is_whitespace = True
        else:
            if previous_is_whitespace:
                doc_tokens.append(char)
            else:
                doc_tokens[-1] += char
            previous_is_whitespace = False
        char_to_word_offset.append(len(doc_tokens) - 1)
    return doc_tokens, char_to_word_offset


def _field(record: dict, name: str, source: str, where: str, expected_type=None):
    """record[name], or a SquadFormatError naming the file, the item and the field."""
    if not isinstance(record, dict) or name not in record:
        raise SquadFormatError(f"{source}: {where}: missing field '{name}'.")
    value = record[name]
    if expected_type is not None and not isinstance(value, expected_type):
        raise SquadFormatError(
            f"{source}: {where}: field '{name}' should be {expected_type.__name__}, "
            f"got {type(value).__name__} ({value!r:.80})."
        )
    return value


class _ExampleBuilder:
    """Turns (context, question, answers) records into SquadExamples.

    Shared by the JSON and the Hugging Face readers, so that both apply the same
    checks. Questions on the same context share one `doc_tokens` list.
    """

    def __init__(self, source: str, is_training: bool):
        self.source = source
        self.is_training = is_training
        self.examples: list[SquadExample] = []
        self.num_misaligned = 0

    def add(
        self,
        context,
        char_to_word_offset,
        doc_tokens,
        qas_id,
        question,
        answers,
        is_impossible,
        where,
    ):
        answer_texts = [a[0] for a in answers]
        example = SquadExample(
            qas_id=qas_id,
            question_text=question,
            doc_tokens=doc_tokens,
            is_impossible=is_impossible,
            answers=answer_texts,
        )
        if is_impossible:
            example.start_position = example.end_position = -1
        elif answers:
            text, answer_start = answers[0]
            matches = context[answer_start : answer_start + len(text)] == text and text
            if not matches:
                if self.is_training:
                    raise SquadFormatError(
                        f"{self.source}: {where}: field 'answers[0].answer_start' = "
                        f"{answer_start} does not point at the answer text {text!r}; the context "
                        f"there reads "
                        f"{context[answer_start : answer_start + len(text)]!r}."
                    )
                self.examples.append(example)  # Evaluation only needs the gold texts.
                return
            start = char_to_word_offset[answer_start]
            end = char_to_word_offset[answer_start + len(text) - 1]
            # The answer must be a substring of its words; an answer that is not (e.g.
            # whitespace differences) cannot be labelled and is skipped in training.
            actual_text = " ".join(doc_tokens[start : end + 1])
            cleaned_answer_text = " ".join(text.split())
            if actual_text.find(cleaned_answer_text) == -1:
                self.num_misaligned += 1
                logging.warning(
                    "%s: question id %s: could not find answer %r in %r.",
                    self.source,
                    qas_id,
                    cleaned_answer_text,
                    actual_text,
                )
                if self.is_training:
                    return
            else:
                example.orig_answer_text = text
                example.start_position, example.end_position = start, end
        elif self.is_training:
            raise SquadFormatError(
                f"{self.source}: {where}: field 'answers' is empty; a training question "
                "that is not is_impossible needs an answer."
            )
        self.examples.append(example)

    def finish(self) -> list[SquadExample]:
        if self.num_misaligned:
            logging.warning(
                "%s: %d answers do not align with the whitespace words of their context%s.",
                self.source,
                self.num_misaligned,
                "; these questions were skipped" if self.is_training else "",
            )
        return self.examples


def _read_answers(qa: dict, source: str, where: str, is_training: bool):
    if "answers" not in qa and not is_training:
        return []  # Unlabelled evaluation data (e.g. a test set).
    answers = []
    for i, answer in enumerate(_field(qa, "answers", source, where, list)):
        text = _field(answer, "text", source, f"{where}: answers[{i}]", str)
        start = _field(answer, "answer_start", source, f"{where}: answers[{i}]", int)
        answers.append((text, start))
    return answers


def read_squad_examples(input_file, is_training: bool) -> list[SquadExample]:
    """Reads a SQuAD v1.1 or v2.0 JSON file into SquadExamples.

    `is_impossible` is read when present (v2.0) and False otherwise. For
    training, the first answer is labelled and must sit at its `answer_start`
    (else SquadFormatError); answers that do not align with the whitespace words
    are skipped with a warning, as in the reference implementation.
    """
    source = os.fspath(input_file)
    with open(source, encoding="utf-8") as f:
        try:
            dataset = json.load(f)
        except json.JSONDecodeError as e:
            raise SquadFormatError(f"{source}: not valid JSON ({e}).") from e
    builder = _ExampleBuilder(source, is_training)
    for article_index, article in enumerate(_field(dataset, "data", source, "top level", list)):
        title = article.get("title", "") if isinstance(article, dict) else ""
        article_where = f"article {article_index} ({title!r})"
        paragraphs = _field(article, "paragraphs", source, article_where, list)
        for paragraph_index, paragraph in enumerate(paragraphs):
            where = f"{article_where}, paragraph {paragraph_index}"
            context = _field(paragraph, "context", source, where, str)
            doc_tokens, char_to_word_offset = split_context(context)
            for qa_index, qa in enumerate(_field(paragraph, "qas", source, where, list)):
                qas_id = _field(qa, "id", source, f"{where}, question {qa_index}")
                qa_where = f"{article_where}, question id {qas_id}"
                question = _field(qa, "question", source, qa_where, str)
                is_impossible = bool(qa.get("is_impossible", False))
                answers = _read_answers(qa, source, qa_where, is_training)
                builder.add(
                    context,
                    char_to_word_offset,
                    doc_tokens,
                    str(qas_id),
                    question,
                    answers,
                    is_impossible,
                    qa_where,
                )
    return builder.finish()


def read_squad_hf_examples(
    name: str, split: str, is_training: bool, **load_kwargs
) -> list[SquadExample]:
    """Reads a Hugging Face SQuAD-style dataset (e.g. "squad", "squad_v2").

    Rows have `id`, `context`, `question` and `answers` {"text": [...],
    "answer_start": [...]}; a row with no answers is impossible (SQuAD v2.0).
    """
    import datasets  # Imported here: only this code path needs it.

    rows = datasets.load_dataset(name, split=split, **load_kwargs)
    source = f"datasets:{name}[{split}]"
    builder = _ExampleBuilder(source, is_training)
    previous_context, doc_tokens, char_to_word_offset = None, None, None
    for row_index, row in enumerate(rows):
        qas_id = _field(row, "id", source, f"row {row_index}")
        where = f"row {row_index}, question id {qas_id}"
        context = _field(row, "context", source, where, str)
        question = _field(row, "question", source, where, str)
        answer_field = _field(row, "answers", source, where, dict)
        texts = _field(answer_field, "text", source, f"{where}: answers", list)
        starts = _field(answer_field, "answer_start", source, f"{where}: answers", list)
        if context != previous_context:  # Rows come grouped by paragraph.
            doc_tokens, char_to_word_offset = split_context(context)
            previous_context = context
        builder.add(
            context,
            char_to_word_offset,
            doc_tokens,
            str(qas_id),
            question,
            list(zip(texts, starts)),
            not texts,
            where,
        )
    return builder.finish()


def read_examples(
    input_file_or_dataset: str, is_training: bool, split: str = "validation"
) -> list[SquadExample]:
    """A JSON file when the path exists or ends in .json; else a datasets name."""
    path = os.fspath(input_file_or_dataset)
    if os.path.exists(path) or path.endswith(".json"):
        return read_squad_examples(path, is_training)
    return read_squad_hf_examples(path, split, is_training)


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


# -----------------------------------------------------------------------------
# Features -> TFRecords / arrays, and the tf.data reader.
# -----------------------------------------------------------------------------


def _int64_feature(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def feature_to_tf_example(feature: InputFeatures, is_training: bool) -> tf.train.Example:
    """The reference TFRecord layout; training adds start/end positions."""
    fields = {
        "unique_ids": _int64_feature([feature.unique_id]),
        "input_ids": _int64_feature(feature.input_ids),
        "input_mask": _int64_feature(feature.input_mask),
        "segment_ids": _int64_feature(feature.segment_ids),
    }
    if is_training:
        if feature.start_position is None:
            raise ValueError(
                f"Feature {feature.unique_id} (example {feature.example_index}) has "
                "no answer position; training features need one."
            )
        fields["start_positions"] = _int64_feature([feature.start_position])
        fields["end_positions"] = _int64_feature([feature.end_position])
    return tf.train.Example(features=tf.train.Features(feature=fields))


class FeatureWriter:
    """Writes InputFeatures to a TFRecord file atomically (temp name, then rename).

    with FeatureWriter(path, is_training=True) as writer:
      convert_examples_to_features(..., output_fn=writer.process_feature)
    """

    def __init__(self, filename, is_training: bool):
        self.filename = os.fspath(filename)
        self.is_training = is_training
        self.num_features = 0
        directory = os.path.dirname(self.filename)
        if directory:
            tf.io.gfile.makedirs(directory)
        # Streamed, so not data.fileio.write_atomic; the temporary name is the same kind.
        self._temp_name = f"{self.filename}.tmp-{uuid.uuid4().hex[:12]}"
        self._writer = tf.io.TFRecordWriter(self._temp_name)

    def process_feature(self, feature: InputFeatures) -> None:
        self._writer.write(feature_to_tf_example(feature, self.is_training).SerializeToString())
        self.num_features += 1

    def close(self) -> None:
        self._writer.close()
        tf.io.gfile.rename(self._temp_name, self.filename, overwrite=True)

    def abort(self) -> None:
        self._writer.close()
        tf.io.gfile.remove(self._temp_name)

    def __enter__(self) -> "FeatureWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_features(features: Iterable[InputFeatures], filename, is_training: bool) -> int:
    """Writes all `features` to `filename`; returns how many were written."""
    with FeatureWriter(filename, is_training) as writer:
        for feature in features:
            writer.process_feature(feature)
    return writer.num_features


def _padding_feature(seq_length: int) -> dict[str, np.ndarray]:
    # One unmasked position keeps the attention softmax well defined for dummies.
    input_mask = np.zeros([seq_length], np.int32)
    input_mask[0] = 1
    return {
        "unique_ids": np.int32(PADDING_UNIQUE_ID),
        "input_ids": np.zeros([seq_length], np.int32),
        "input_mask": input_mask,
        "segment_ids": np.zeros([seq_length], np.int32),
    }


def _cut_to_longest(batch):
    # The masks are prefixes of ones: only padding is cut.
    longest = tf.reduce_max(tf.reduce_sum(batch["input_mask"], axis=1))
    return {k: v[:, :longest] if v.shape.rank == 2 else v for k, v in batch.items()}


def features_to_arrays(
    features: Sequence[InputFeatures], is_training: bool = False, pad_to_multiple_of: int = 1
) -> dict[str, np.ndarray]:
    """In-memory int32 arrays of `features`.

    For prediction, `pad_to_multiple_of=batch_size` appends dummy features
    (unique id -1, ignored by postprocessing) so every batch is full.
    """
    if not features:
        raise ValueError("features_to_arrays needs at least one feature.")
    seq_length = len(features[0].input_ids)
    arrays = {
        "unique_ids": np.array([f.unique_id for f in features], np.int32),
        "input_ids": np.array([f.input_ids for f in features], np.int32),
        "input_mask": np.array([f.input_mask for f in features], np.int32),
        "segment_ids": np.array([f.segment_ids for f in features], np.int32),
    }
    if is_training:
        arrays["start_positions"] = np.array([f.start_position for f in features], np.int32)
        arrays["end_positions"] = np.array([f.end_position for f in features], np.int32)
        return arrays
    num_padding = -len(features) % pad_to_multiple_of
    if num_padding:
        pad = _padding_feature(seq_length)
        arrays = {
            k: np.concatenate([v, np.stack([pad[k]] * num_padding)]) for k, v in arrays.items()
        }
    return arrays


def build_squad_dataset(
    file_pattern,
    batch_size: int,
    seq_length: int,
    is_training: bool,
    input_context: tf.distribute.InputContext | None = None,
    seed: int | None = None,
    shuffle_buffer_size: int = 10000,
    length_bucket: tuple[int, int] | None = None,
    static_length: bool = True,
    cut_to_longest: bool = False,
) -> tf.data.Dataset:
    """tf.data pipeline over SQuAD TFRecords: batches of int32 dicts, of static shapes unless
    `static_length=False` or `cut_to_longest`.

    `batch_size` is the per-input-pipeline batch. Training: the features are
    sharded by `input_context`, repeated, shuffled and batched with
    drop_remainder. Prediction: every feature once, in file order, the last
    batch filled up with dummy features (unique_ids == -1), so that no feature
    is dropped and shapes stay static. Keys: input_ids, input_mask, segment_ids
    ([B, seq_length]), and start_positions, end_positions ([B]) for training or
    unique_ids ([B]) for prediction.

    `length_bucket=(shorter, length)` keeps only the windows of more than `shorter` and at
    most `length` real tokens (`data.length_buckets`), cut to `length` tokens: the batches
    are [B, length]; for training, the bucket's windows are read once and kept in memory. The
    records stay padded to `seq_length`. With `static_length=False` the
    batches' spec is [B, None] (their values still [B, length]): every bucket's dataset then
    has the same spec, so one traced step serves them all and XLA compiles each length when it
    first runs (CPU/GPU); a TPU needs the static lengths.

    `cut_to_longest` (prediction without XLA): each batch is cut to its longest window, spec
    [B, None]. With the record sorted by length, as `bert.run_squad` writes eval.tf_record,
    a batch holds windows of nearly one length and little padding is left.
    """
    if cut_to_longest and is_training:
        raise ValueError("cut_to_longest is for prediction (is_training=False)")
    patterns = [file_pattern] if isinstance(file_pattern, (str, os.PathLike)) else file_pattern
    files = sorted(f for p in patterns for f in tf.io.gfile.glob(os.fspath(p)))
    if not files:
        raise FileNotFoundError(f"No SQuAD TFRecord files match {file_pattern!r}.")

    name_to_features = {
        "unique_ids": tf.io.FixedLenFeature([], tf.int64),
        "input_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
        "input_mask": tf.io.FixedLenFeature([seq_length], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
    }
    if is_training:
        name_to_features["start_positions"] = tf.io.FixedLenFeature([], tf.int64)
        name_to_features["end_positions"] = tf.io.FixedLenFeature([], tf.int64)
    shorter, length = length_bucket or (0, seq_length)
    if not 0 <= shorter < length <= seq_length:
        raise ValueError(
            f"length_bucket {length_bucket} must be (shorter, length) with "
            f"0 <= shorter < length <= {seq_length}"
        )

    def parse(record):
        parsed = tf.io.parse_single_example(record, name_to_features)
        parsed = {k: tf.cast(v, tf.int32) for k, v in parsed.items()}
        if is_training:
            parsed.pop("unique_ids")
        return parsed

    def in_bucket(features):
        real = tf.reduce_sum(features["input_mask"])
        return tf.logical_and(real > shorter, real <= length)

    def cut(features):  # The mask is a prefix of ones: only padding is cut.
        # A value that shape inference cannot see leaves the length out of the spec.
        end = length if static_length else tf.compat.v1.placeholder_with_default(length, [])
        return {k: v[:end] if v.shape.rank == 1 else v for k, v in features.items()}

    dataset = tf.data.TFRecordDataset(files)
    if input_context is not None and input_context.num_input_pipelines > 1:
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    if length_bucket:  # Before repeat and shuffle: every epoch of a bucket holds its windows.
        dataset = dataset.filter(in_bucket).map(cut)
        if is_training:
            # The bucket's windows in memory: repeating would otherwise read and parse the
            # whole file for each pass over a bucket, which for a small bucket is thousands of
            # passes to fill the shuffle buffer (57 s before the first batch of a 72-window
            # bucket of 3,360) and many records read per window kept.
            dataset = dataset.cache()
    if is_training:
        dataset = dataset.repeat()
        dataset = dataset.shuffle(shuffle_buffer_size, seed=seed)
    if not is_training and batch_size > 1:
        padding = tf.data.Dataset.from_tensors(_padding_feature(length))
        # batch_size - 1 dummies fill the last partial batch; a full last batch
        # leaves them all in a remainder that drop_remainder discards.
        dataset = dataset.concatenate(padding.repeat(batch_size - 1))
    dataset = dataset.batch(batch_size, drop_remainder=True)
    if cut_to_longest:
        dataset = dataset.map(_cut_to_longest)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    # No autotuning thread: it sleeps up to a minute between tunings, and deleting an iterator
    # waits for it, which stalled the end of fine-tuning by up to 45 s. Parsing is cheap.
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)
