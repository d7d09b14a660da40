# Copyright 2026 The bert-large-batch Authors. Apache-2.0.
"""A small invented world: the demo's pretraining corpus and SQuAD data.

Everything is generated here, so the demo needs no download. The world has a
few countries ("regions"); each region has people, cities, companies and
rivers with invented but pronounceable names (built from syllables, so that
WordPiece has to learn sub-words) and facts that refer to one another inside
the region: a city was founded in some year by a person of the region, whose
own article says that he or she founded it; a river flows through cities whose
articles name it; a company has its headquarters in a city; and so on.

The words are data, the logic is code. `synthetic_world.json` (beside this
module) holds the word lists, the name parts and, per kind of entity, the
document plan: its statements in order, a few sentence templates each, and the
questions a statement answers. `data.synthetic_entities` invents the entities
and their links (`make_region`); `data.synthetic_documents` gives each entity
its values and walks the plan; `data.synthetic_dataset` writes the files. A masked LM can learn
co-reference, numbers and the same fact seen in several documents;
next-sentence prediction is learnable because sentences are coherent and
ordered.

Every stated fact remembers where its answer is in the document, which gives
SQuAD v1.1 questions whose answers are exact spans of the paragraph. Train and
dev use the documents of different regions, which share no entity, so a
fine-tuned model must read the paragraph rather than remember the answer.

Dev questions have up to three gold answers where natural ("1873" and
"in 1873", "Vessa River" and "Vessa"); train questions have one.

Everything depends only on the seed (one `random.Random`, no global state).

Example (writes corpus.txt, squad_train.json and squad_dev.json):
  python -m data.synthetic --output_dir=/tmp/synthetic --seed=0
"""

import dataclasses
import sys
import time

from absl import app, flags

from data import cli

# Re-exported: the library's names under this module's old paths.
from data.synthetic_dataset import (  # noqa: F401
    corpus_text,
    dataset_statistics,
    generate_default_dataset,
    squad_json,
    write_pretraining_corpus,
    write_squad,
)
from data.synthetic_documents import (  # noqa: F401
    Document,
    Fact,
    World,
    generate_world,
    split_train_dev,
)
from data.synthetic_entities import (  # noqa: F401
    DEFAULT_DEV_FRACTION,
    DEFAULT_MAX_QUESTIONS,
    DEFAULT_NUM_ENTITIES,
    SPEC_FILE,
    City,
    Company,
    Person,
    Region,
    River,
    load_spec,
)

option = cli.option


@dataclasses.dataclass(frozen=True)
class SyntheticOptions:
    """The program's flags."""

    output_dir: str | None = option(
        None, "Directory for corpus.txt, squad_train.json and squad_dev.json."
    )
    seed: int = option(0, "Random seed; the output depends only on it and the sizes.")
    num_entities: int = option(DEFAULT_NUM_ENTITIES, "Number of entities (documents).")
    dev_fraction: float = option(DEFAULT_DEV_FRACTION, "Fraction of regions used for dev.")
    max_questions: int = option(DEFAULT_MAX_QUESTIONS, "Questions per paragraph (at most).")


def main(argv):
    del argv
    options = cli.from_flags(SyntheticOptions)
    start = time.perf_counter()
    paths = generate_default_dataset(
        options.output_dir,
        options.seed,
        options.num_entities,
        options.dev_fraction,
        options.max_questions,
    )
    seconds = time.perf_counter() - start
    for name, path in paths.items():
        print(f"{name}: {path}")
    stats = ", ".join(f"{k}={v}" for k, v in dataset_statistics(paths).items())
    print(f"{stats} ({seconds:.2f} s)")


if __name__ == "__main__":
    cli.define_flags(SyntheticOptions, module_name=sys.argv[0])
    flags.mark_flag_as_required("output_dir")
    app.run(main)
