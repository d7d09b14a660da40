"""The demo's default data set from the invented world: a pretraining corpus and SQuAD files.

Train and dev use the documents of different regions, which share no entity, so a
fine-tuned model must read the paragraph rather than remember the answer. Dev questions have
up to three gold answers where natural ("1873" and "in 1873"); train questions have one.
"""

import json
import os
import random
from collections.abc import Sequence

from data import fileio
from data.synthetic_documents import Document, generate_world, split_train_dev
from data.synthetic_entities import (
    DEFAULT_DEV_FRACTION,
    DEFAULT_MAX_QUESTIONS,
    DEFAULT_NUM_ENTITIES,
    load_spec,
)


# ---------------------------------------------------------------------------
# Writing files.
# ---------------------------------------------------------------------------
def corpus_text(documents: Sequence[Document], seed: int = 0) -> str:
    """BERT's text format: one sentence a line, a blank line between documents.

    Documents are shuffled (by `seed`) so that regions are interleaved.
    """
    order = list(range(len(documents)))
    random.Random(seed).shuffle(order)
    return "\n\n".join("\n".join(documents[i].sentences) for i in order) + "\n"


def write_pretraining_corpus(
    path: str, num_documents: int = DEFAULT_NUM_ENTITIES, seed: int = 0
) -> str:
    """Writes the documents of `generate_world(num_documents, seed)`; returns `path`."""
    fileio.write_atomic(path, corpus_text(generate_world(num_documents, seed).documents, seed))
    return path


def _answer_variants(context: str, start: int, text: str) -> list[tuple[str, int]]:
    """The answer and up to two natural variants ("1873" / "in 1873", "Vessa River" / "Vessa")."""
    spec = load_spec()
    kind_words = spec["answer_variants"]["trailing_words"]
    kind_words = kind_words + spec["words"]["landmarks"] + spec["words"]["newspaper_words"]
    variants = [(text, start)]
    words_before = context[:start].split()
    if words_before and words_before[-1].lower() in spec["answer_variants"]["leading_words"]:
        word_start = start - 1 - len(words_before[-1])
        variants.append((context[word_start : start + len(text)], word_start))
    for word in kind_words:
        if text.endswith(" " + word) and len(text) > len(word) + 1:
            variants.append((text[: -len(word) - 1], start))
            break
    return variants


def squad_json(
    documents: Sequence[Document],
    multiple_answers: bool = False,
    id_prefix: str = "synthetic",
    max_questions: int | None = None,
    seed: int = 0,
) -> dict:
    """SQuAD v1.1 data: one article and one paragraph per document.

    Args:
      documents: the documents; each fact can become a question.
      multiple_answers: give up to three gold answers (for a dev set), else one.
      id_prefix: prefix of the question ids.
      max_questions: ask at most this many questions per paragraph (a random
        subset, in document order); None asks about every fact.
      seed: seed of that random subset.

    Raises:
      ValueError: an answer is not the span at its answer_start (a generator bug).
    """
    rng = random.Random(seed)
    data = []
    for doc_index, doc in enumerate(documents):
        context = doc.text
        facts = doc.facts
        if max_questions is not None and len(facts) > max_questions:
            facts = [facts[i] for i in sorted(rng.sample(range(len(facts)), max_questions))]
        qas = []
        for fact_index, fact in enumerate(facts):
            answers = (
                _answer_variants(context, fact.answer_start, fact.answer)
                if multiple_answers
                else [(fact.answer, fact.answer_start)]
            )
            for text, start in answers:
                if not text or context[start : start + len(text)] != text:
                    raise ValueError(
                        f"Document {doc.title!r}: answer {text!r} is not at "
                        f"answer_start {start} of its context."
                    )
            qas.append(
                {
                    "id": f"{id_prefix}-{doc_index:05d}-{fact_index:02d}",
                    "question": fact.question,
                    "answers": [{"text": t, "answer_start": s} for t, s in answers],
                }
            )
        data.append({"title": doc.title, "paragraphs": [{"context": context, "qas": qas}]})
    return {"version": "1.1", "data": data}


def write_squad(
    path: str,
    documents: Sequence[Document],
    multiple_answers: bool = False,
    id_prefix: str = "synthetic",
    max_questions: int | None = None,
    seed: int = 0,
) -> str:
    """Writes `squad_json(documents, ...)` to `path` atomically; returns `path`."""
    dataset = squad_json(documents, multiple_answers, id_prefix, max_questions, seed)
    fileio.write_json_atomic(path, dataset, indent=1)
    return path


def generate_default_dataset(
    out_dir: str,
    seed: int = 0,
    num_entities: int = DEFAULT_NUM_ENTITIES,
    dev_fraction: float = DEFAULT_DEV_FRACTION,
    max_questions: int = DEFAULT_MAX_QUESTIONS,
) -> dict[str, str]:
    """Writes the demo data: corpus.txt, squad_train.json, squad_dev.json.

    The corpus holds every document (as Wikipedia holds SQuAD's articles); the
    SQuAD train and dev files use the documents of different regions. The
    defaults give about 480 documents, 5k sentences, 3.4k train and 480 dev
    questions: a demo of minutes on two CPU cores.

    Args:
      out_dir: output directory (created if missing).
      seed: the only source of randomness.
      num_entities: number of entities, i.e. documents (at least 12).
      dev_fraction: fraction of the regions whose documents form the dev set.
      max_questions: questions per paragraph (at most).

    Returns:
      {"corpus": path, "squad_train": path, "squad_dev": path}.
    """
    world = generate_world(num_entities, seed)
    train, dev = split_train_dev(world, dev_fraction)
    paths = {
        "corpus": os.path.join(out_dir, "corpus.txt"),
        "squad_train": os.path.join(out_dir, "squad_train.json"),
        "squad_dev": os.path.join(out_dir, "squad_dev.json"),
    }
    fileio.write_atomic(paths["corpus"], corpus_text(world.documents, seed))
    write_squad(
        paths["squad_train"],
        train,
        multiple_answers=False,
        id_prefix="train",
        max_questions=max_questions,
        seed=seed,
    )
    write_squad(
        paths["squad_dev"],
        dev,
        multiple_answers=True,
        id_prefix="dev",
        max_questions=max_questions,
        seed=seed + 1,
    )
    return paths


def dataset_statistics(paths: dict[str, str]) -> dict[str, int]:
    """Counts documents, sentences, words and questions of written files."""
    with open(paths["corpus"], encoding="utf-8") as f:
        documents = [block.split("\n") for block in f.read().strip().split("\n\n")]
    stats = {
        "documents": len(documents),
        "sentences": sum(len(d) for d in documents),
        "words": sum(len(s.split()) for d in documents for s in d),
    }
    for split in ("squad_train", "squad_dev"):
        with open(paths[split], encoding="utf-8") as f:
            data = json.load(f)["data"]
        stats[f"{split}_paragraphs"] = sum(len(a["paragraphs"]) for a in data)
        stats[f"{split}_questions"] = sum(len(p["qas"]) for a in data for p in a["paragraphs"])
    return stats
