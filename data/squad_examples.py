"""SQuAD v1.1 / v2.0 examples: JSON files and Hugging Face datasets -> `SquadExample`.

As google-research/bert `run_squad.py`: the context is split into whitespace words
(`doc_tokens`); the answer's character offset is mapped to a start and end word. A file or
row without the expected content raises `SquadFormatError` naming the file, the question
and the field.
"""

import dataclasses
import json
import os

from absl import logging


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
