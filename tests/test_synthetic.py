# Copyright 2026 The bert-large-batch Authors. Apache-2.0.
"""Tests of the generated demo data (data/synthetic.py).

The properties checked are the ones the demo relies on: determinism, BERT's
text format, SQuAD answers that are exact spans, train/dev splits that share
no entity, and questions that need reading (cheap guesses score low while
reading the right sentence finds the answer). The words and templates live in
data/synthetic_world.json: every template there is used, and the file is
packaged with the module.
"""

import collections
import configparser
import json
import os
import re
import subprocess
import sys
import time

import pytest

from data import (
    squad_examples,
    squad_metric,
    synthetic_dataset,
    synthetic_documents,
    synthetic_entities,
    text_corpus,
)

_FILES = ("corpus", "squad_train", "squad_dev")
_WORDS = synthetic_entities.load_spec()["words"]
_PRONOUNS = ("He ", "She ", "It ", "Its ", "His ", "Her ")


@pytest.fixture(scope="module")
def default_paths(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("synthetic")
    start = time.perf_counter()
    paths = synthetic_dataset.generate_default_dataset(str(out_dir), seed=0)
    paths["seconds"] = time.perf_counter() - start
    return paths


def _load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _qas(dataset):
    for article in dataset["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                yield article["title"], paragraph["context"], qa


def test_generation_is_fast_and_writes_the_three_files(default_paths):
    assert default_paths["seconds"] < 2.0
    for name in _FILES:
        assert os.path.isfile(default_paths[name])
    # Written atomically: no temporary file is left behind.
    assert sorted(os.listdir(os.path.dirname(default_paths["corpus"]))) == [
        "corpus.txt",
        "squad_dev.json",
        "squad_train.json",
    ]


def test_default_sizes_fit_a_demo_on_two_cores(default_paths):
    stats = synthetic_dataset.dataset_statistics(default_paths)
    assert 300 <= stats["documents"] <= 600
    assert 3000 <= stats["sentences"] <= 6000
    assert 2000 <= stats["squad_train_questions"] <= 4000
    assert 300 <= stats["squad_dev_questions"] <= 500


def test_same_seed_same_bytes_other_seed_differs(default_paths, tmp_path):
    same = synthetic_dataset.generate_default_dataset(str(tmp_path / "same"), seed=0)
    other = synthetic_dataset.generate_default_dataset(str(tmp_path / "other"), seed=1)
    for name in _FILES:
        with open(default_paths[name], "rb") as f:
            reference = f.read()
        with open(same[name], "rb") as f:
            assert f.read() == reference, name
        with open(other[name], "rb") as f:
            assert f.read() != reference, name


def test_pretraining_corpus_is_in_bert_text_format(tmp_path):
    path = synthetic_dataset.write_pretraining_corpus(
        str(tmp_path / "c.txt"), num_documents=50, seed=3
    )
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert "\n\n\n" not in text and "\r" not in text
    blocks = text[:-1].split("\n\n")
    assert len(blocks) == 50  # exactly the documents asked for, none empty
    for block in blocks:
        for line in block.split("\n"):
            assert line and line == line.strip(), repr(line)
            assert 5 <= len(line.split()) <= 25, line
            assert line[0].isupper() and line[-1] == ".", line
    # The project's reader sees the same documents.
    assert list(text_corpus.read_text_file(path)) == [b.split("\n") for b in blocks]


def test_bad_size_is_rejected_and_existing_file_kept(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("old\n", encoding="utf-8")
    with pytest.raises(ValueError, match="num_entities"):
        synthetic_dataset.write_pretraining_corpus(str(path), num_documents=5)
    assert path.read_text(encoding="utf-8") == "old\n"
    assert os.listdir(tmp_path) == ["c.txt"]


def test_documents_are_ordered_and_coherent():
    world = synthetic_documents.generate_world(120, seed=5)
    assert len(world.documents) == 120
    for doc in world.documents:
        assert len(doc.sentences) >= 4
        # The introduction names the subject; pronouns only refer back.
        assert doc.title in doc.sentences[0]
        assert not doc.sentences[0].startswith(_PRONOUNS)
        # Every sentence is about this subject: it names it (a person also by
        # first or last name) or refers to it by a pronoun or its kind.
        references = {w.lower() for w in doc.title.split()} | {
            "he",
            "she",
            "his",
            "her",
            "it",
            "its",
            "company",
            "city",
            "river",
            "country",
        }
        for sentence in doc.sentences:
            words = set(re.findall(r"\w+", sentence.lower()))
            assert words & references, (doc.title, sentence)


def test_shared_facts_appear_in_every_document_that_involves_them():
    world = synthetic_documents.generate_world(240, seed=7)
    text = {doc.title: doc.text for doc in world.documents}
    num_checked = 0
    for region in world.regions:
        for city in region.cities:
            if city.founder:
                for title in (city.name, city.founder.name):
                    assert city.name in text[title] and str(city.founded_year) in text[title]
                num_checked += 1
            if city.river:
                assert city.river.name in text[city.name]
                assert city.name in text[city.river.name]
        for company in region.companies:
            for title in (company.name, company.founder.name):
                assert company.name in text[title] and str(company.founded_year) in text[title]
            num_checked += 1
        assert region.cities[0].name in text[region.name]
        assert f"capital of {region.name}" in text[region.cities[0].name]
    assert num_checked >= 40


def test_every_answer_is_the_span_at_answer_start(default_paths):
    for name, answers_per_question in (("squad_train", (1, 1)), ("squad_dev", (1, 3))):
        dataset = _load(default_paths[name])
        assert dataset["version"] == "1.1"
        ids, num_answers = set(), collections.Counter()
        for article in dataset["data"]:
            assert set(article) == {"title", "paragraphs"}
            for paragraph in article["paragraphs"]:
                assert len(paragraph["qas"]) >= 3
        for _, context, qa in _qas(dataset):
            assert qa["id"] not in ids
            ids.add(qa["id"])
            assert qa["question"].endswith("?")
            low, high = answers_per_question
            assert low <= len(qa["answers"]) <= high
            num_answers[len(qa["answers"])] += 1
            for answer in qa["answers"]:
                start, text = answer["answer_start"], answer["text"]
                assert text and text == text.strip()
                assert context[start : start + len(text)] == text, (qa["id"], answer)
        if name == "squad_dev":
            assert num_answers[2] + num_answers[3] > 0.2 * sum(num_answers.values())


def test_project_reader_labels_every_training_question(default_paths):
    examples = squad_examples.read_squad_examples(default_paths["squad_train"], is_training=True)
    num_questions = sum(1 for _ in _qas(_load(default_paths["squad_train"])))
    assert len(examples) == num_questions  # none skipped as misaligned
    for example in examples:
        words = " ".join(example.doc_tokens[example.start_position : example.end_position + 1])
        assert example.orig_answer_text in words


def test_train_and_dev_share_no_entity(default_paths):
    train = _load(default_paths["squad_train"])
    dev = _load(default_paths["squad_dev"])
    train_text = "\n".join(p["context"] for a in train["data"] for p in a["paragraphs"])
    dev_titles = [a["title"] for a in dev["data"]]
    assert dev_titles
    for title in dev_titles:
        assert not re.search(rf"\b{re.escape(title)}\b", train_text), title
    # No name used in a dev question (subject, founder, company, ...) occurs
    # anywhere in the training paragraphs.
    kind_words = {
        "River",
        "Sea",
        "Mount",
        "Street",
        "Bridge",
        *_WORDS["landmarks"],
        *_WORDS["company_words"],
    }
    train_words = set(re.findall(r"\w+", train_text))
    num_names = 0
    for _, _, qa in _qas(dev):
        names = set(re.findall(r"\b[A-Z][a-z]+\b", qa["question"].split(" ", 1)[1])) - kind_words
        assert not names & train_words, (qa["question"], names & train_words)
        num_names += len(names)
    assert num_names >= len(dev_titles)


_STOP_WORDS = frozenset(
    [
        "what",
        "which",
        "who",
        "whom",
        "when",
        "where",
        "how",
        "is",
        "was",
        "are",
        "were",
        "does",
        "did",
        "do",
        "the",
        "a",
        "an",
        "of",
        "in",
        "on",
        "to",
        "for",
        "by",
        "from",
        "and",
        "his",
        "her",
        "its",
        "it",
        "he",
        "she",
        "be",
    ]
)


def _keywords(text):
    """Content words, cut to 4 letters as a crude stemmer ("played" ~ "play")."""
    return {w[:4] for w in re.findall(r"\w+", text.lower()) if w not in _STOP_WORDS}


def test_questions_need_reading(default_paths):
    train = _load(default_paths["squad_train"])
    dev = _load(default_paths["squad_dev"])

    def template(title, question):
        return question.replace(title, "X")

    train_answers = collections.Counter(qa["answers"][0]["text"] for _, _, qa in _qas(train))
    by_template = collections.defaultdict(collections.Counter)
    for title, _, qa in _qas(train):
        by_template[template(title, qa["question"])][qa["answers"][0]["text"]] += 1
    most_common = train_answers.most_common(1)[0][0]

    majority, prior = {}, {}
    num_found = 0
    for title, context, qa in _qas(dev):
        # Guesses from the training set: the most frequent answer overall, and
        # the most frequent answer to the same question template.
        majority[qa["id"]] = most_common
        answers = by_template.get(template(title, qa["question"]))
        prior[qa["id"]] = answers.most_common(1)[0][0] if answers else most_common
        # A keyword reader: the sentence sharing most question words, other than
        # the subject's name, holds the answer.
        keywords = _keywords(qa["question"]) - _keywords(title)
        sentences = text_corpus.split_sentences(context)
        best = max(sentences, key=lambda s: len(keywords & _keywords(s)))
        num_found += any(a["text"] in best for a in qa["answers"])
        # The answer is in the paragraph, not in the question.
        assert all(a["text"] not in qa["question"] for a in qa["answers"])

    num_dev = len(majority)
    majority_em = squad_metric.evaluate(dev["data"], majority)["exact_match"]
    prior_em = squad_metric.evaluate(dev["data"], prior)["exact_match"]
    # Guessing from the training answers fails: the dev answers must be read.
    assert majority_em < 5.0
    assert prior_em < 20.0
    # Yet the answers can be found by reading: even word overlap finds the
    # right sentence most of the time (paraphrases are left for the model).
    assert num_found / num_dev > 0.6
    # Answers are diverse: no answer text is a large share of the dev set.
    dev_answers = collections.Counter(qa["answers"][0]["text"] for _, _, qa in _qas(dev))
    assert dev_answers.most_common(1)[0][1] < 0.05 * num_dev


@pytest.mark.slow
def test_command_line_writes_the_default_dataset(default_paths, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "data.synthetic", f"--output_dir={tmp_path}", "--seed=0"],
        capture_output=True,
        text=True,
        timeout=180,  # the write imports TensorFlow (data.fileio): ~25 s on a loaded machine
        check=False,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(synthetic_entities.__file__))),
    )
    assert result.returncode == 0, result.stderr
    assert "squad_dev_questions=" in result.stdout
    for name in _FILES:
        with (
            open(default_paths[name], "rb") as expected,
            open(tmp_path / os.path.basename(default_paths[name]), "rb") as written,
        ):
            assert written.read() == expected.read(), name


def test_names_are_invented_words_that_need_sub_words():
    world = synthetic_documents.generate_world(240, seed=11)
    words = collections.Counter(re.findall(r"\w+", " ".join(d.text for d in world.documents)))
    kind_words = {"River", *_WORDS["company_words"]}
    names = {w for d in world.documents for w in d.title.split()} - kind_words
    # Many different names, each built from syllables.
    assert len(names) > 300
    assert len(words) > 1000
    assert all(re.fullmatch(r"[A-Z][a-z]{3,11}", name) for name in names), sorted(names)[:20]
    # A long tail: many words occur only once, so a small vocabulary must split them.
    assert sum(1 for count in words.values() if count == 1) > 0.2 * len(words)


def _statements(plan):
    """The `say` statements of a document plan, through its `each` and `chance` blocks."""
    for item in plan:
        if "say" in item:
            yield item
        for key in ("do", "then", "else"):
            yield from _statements(item.get(key, []))


def _pattern(template):
    """A regex for the sentences or questions `template` gives (any text in each field)."""
    parts = re.split(r"\{\w+\}", template[0].lower() + template[1:])
    return re.compile("(.+)".join(re.escape(part) for part in parts))


def test_every_template_of_the_data_file_is_used():
    # The plans drive the documents: every sentence template and question
    # paraphrase of the data file shows up in a default-size world (a typo in a
    # `when` or a dropped value would leave one unused, or fail generation).
    world = synthetic_documents.generate_world(seed=0)
    plans = synthetic_entities.load_spec()["documents"]
    assert set(plans) == {doc.kind for doc in world.documents}
    for kind, plan in plans.items():
        docs = [doc for doc in world.documents if doc.kind == kind]
        sentences = {s[0].lower() + s[1:] for doc in docs for s in doc.sentences}
        questions = {f.question[0].lower() + f.question[1:] for doc in docs for f in doc.facts}
        for statement in _statements(plan):
            for template in statement["say"]:
                pattern = _pattern(template)
                assert any(pattern.fullmatch(s) for s in sentences), (kind, template)
            for field, paraphrases in statement.get("ask", {}).items():
                assert f"{{{field}}}" in " ".join(statement["say"]), (kind, field)
                for paraphrase in paraphrases:
                    pattern = _pattern(paraphrase)
                    assert any(pattern.fullmatch(q) for q in questions), (kind, paraphrase)


def test_word_lists_are_distinct_words():
    # A repeated word would silently weigh a choice (the syllables repeat on purpose).
    for name, words in _WORDS.items():
        assert len(words) >= 5, name
        assert len(set(words)) == len(words), name
        assert all(w and w == w.strip() for w in words), name


def test_data_file_is_installed_with_the_package():
    assert os.path.isfile(synthetic_entities.SPEC_FILE)
    assert os.path.dirname(synthetic_entities.SPEC_FILE) == os.path.dirname(
        synthetic_entities.__file__
    )
    setup_cfg = os.path.join(
        os.path.dirname(os.path.dirname(synthetic_entities.__file__)), "setup.cfg"
    )
    config = configparser.ConfigParser()
    config.read(setup_cfg)
    package_data = config["options.package_data"]["data"].split()
    assert os.path.basename(synthetic_entities.SPEC_FILE) in package_data
