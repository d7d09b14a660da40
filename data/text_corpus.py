"""Reading pretraining text: BERT-format text files and Hugging Face datasets.

A corpus is a list of documents; a document is a list of sentences (str).

BERT's text format (google-research/bert `create_pretraining_data.py`): UTF-8,
one sentence per line, a blank line between documents.
"""

import glob
import os
import re
from collections.abc import Iterator, Sequence

Document = list[str]

# A sentence ends after . ? ! (and any closing quotes/brackets) when whitespace
# and an uppercase letter or digit (optionally after an opening quote) follow.
_SENTENCE_BREAK = re.compile(r"""(?<=[.?!])(?:["'”’)\]]*)\s+(?=["'“‘(\[]?[A-Z0-9])""")
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "st",
        "sr",
        "jr",
        "mt",
        "gen",
        "col",
        "lt",
        "capt",
        "sgt",
        "maj",
        "rev",
        "gov",
        "sen",
        "rep",
        "inc",
        "co",
        "corp",
        "ltd",
        "vs",
        "no",
        "vol",
        "pp",
        "cf",
        "ca",
        "approx",
        "fig",
        "al",
        "e.g",
        "i.e",
        "u.s",
    ]
)


def is_remote(path: str) -> bool:
    """A path TensorFlow's file systems read (gs://, s3://, hdfs://...), not a local one."""
    return "://" in path


def _open_binary(path: str):
    if is_remote(path):
        import tensorflow as tf

        return tf.io.gfile.GFile(path, "rb")
    return open(path, "rb")


def file_size(path: str) -> int:
    """Bytes of a local or remote file; FileNotFoundError naming it if it does not exist."""
    if is_remote(path):
        import tensorflow as tf

        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(f"Input file {path} does not exist.")
        return tf.io.gfile.stat(path).length
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Input file {path} does not exist.")
    return os.path.getsize(path)


def expand_file_patterns(patterns: str) -> list[str]:
    """Expands a comma-separated list of globs (local or gs://...); raises if a pattern
    matches nothing."""
    files = []
    for pattern in patterns.split(","):
        pattern = pattern.strip()
        if not pattern:
            continue
        if is_remote(pattern):
            import tensorflow as tf

            matched = sorted(tf.io.gfile.glob(pattern))
        else:
            matched = sorted(glob.glob(pattern))
        if not matched:
            raise FileNotFoundError(f"No input file matches {pattern!r}.")
        files.extend(matched)
    return files


def split_sentences(text: str) -> list[str]:
    """Splits running text into sentences with a simple punctuation heuristic."""
    sentences = []
    start = 0
    for match in _SENTENCE_BREAK.finditer(text):
        candidate = text[start : match.start()].strip()
        last_word = candidate.rsplit(None, 1)[-1].rstrip(".").lower() if candidate else ""
        # Do not split after an abbreviation or a single initial ("J. K. Rowling").
        if last_word in _ABBREVIATIONS or (len(last_word) == 1 and last_word.isalpha()):
            continue
        sentences.append(text[start : match.end()].strip())
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return [s for s in sentences if s]


def read_text_file(path: str) -> Iterator[Document]:
    """Yields the documents of one BERT-format text file (local, or gs://... and other file
    systems TensorFlow reads).

    Raises:
      FileNotFoundError: the file does not exist.
      ValueError: a line is not valid UTF-8 (message names the file and line).
    """
    file_size(path)  # FileNotFoundError naming it
    document: Document = []
    with _open_binary(path) as f:
        for line_number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(
                    f"{path}:{line_number}: not valid UTF-8 ({e.reason} at byte "
                    f"{e.start} of the line); expected UTF-8 text, one sentence per line."
                ) from None
            line = line.strip()
            if not line:
                if document:
                    yield document
                document = []
            else:
                document.append(line)
    if document:
        yield document


def read_hf_dataset(
    spec: str, text_field: str = "text", split: str = "train", max_documents: int = 0
) -> Iterator[Document]:
    """Yields documents of a Hugging Face dataset, e.g. "wikipedia:20220301.en".

    `spec` is "name" or "name:config". Each record's `text_field` is one
    document; it is split into paragraphs on newlines and into sentences with
    `split_sentences`. Needs network access (or a local datasets cache).
    """
    import datasets  # Imported lazily: only needed for this source.

    name, _, config = spec.partition(":")
    dataset = datasets.load_dataset(name, config or None, split=split, streaming=True)
    for count, record in enumerate(dataset):
        if max_documents and count >= max_documents:
            break
        text = record.get(text_field)
        if text is None:
            raise KeyError(
                f"Dataset {spec!r} record {count} has no field {text_field!r}; "
                f"fields are {sorted(record)}."
            )
        document = [s for paragraph in text.split("\n") for s in split_sentences(paragraph)]
        if document:
            yield document


def iter_documents(
    input_files: Sequence[str] = (),
    hf_datasets: Sequence[str] = (),
    hf_text_field: str = "text",
    hf_max_documents: int = 0,
) -> Iterator[Document]:
    """Yields the documents of the text files, then of the Hugging Face datasets (streamed)."""
    for path in input_files:
        yield from read_text_file(path)
    for spec in hf_datasets:
        yield from read_hf_dataset(spec, hf_text_field, max_documents=hf_max_documents)


def read_documents(
    input_files: Sequence[str] = (),
    hf_datasets: Sequence[str] = (),
    hf_text_field: str = "text",
    hf_max_documents: int = 0,
) -> list[Document]:
    """Reads all documents from text files, then from Hugging Face datasets."""
    return list(iter_documents(input_files, hf_datasets, hf_text_field, hf_max_documents))
