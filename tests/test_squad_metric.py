"""The official SQuAD v1.1 metric against hand-computed values and real gold answers."""

import json
import subprocess
import sys

import pytest

from data import squad_metric
from data.squad_metric import evaluate, exact_match_score, f1_score, normalize_answer


def test_normalize_answer_rules():
    # Lower case, punctuation removed, whole-word articles removed, whitespace collapsed.
    assert normalize_answer("The  Quick, brown fox!") == "quick brown fox"
    assert normalize_answer("an apple a day") == "apple day"
    assert normalize_answer("Theatre of the absurd") == "theatre of absurd"  # not "atre"
    assert normalize_answer("U.S.\tArmy") == "us army"


def test_f1_hand_computed():
    # "the cat sat" -> [cat, sat]; "a cat sat down" -> [cat, sat, down].
    # overlap 2, precision 2/2 = 1, recall 2/3, F1 = 2 * 1 * 2/3 / (1 + 2/3) = 0.8.
    assert f1_score("the cat sat", "a cat sat down") == pytest.approx(0.8)
    # Counter overlap counts repeated tokens at most min(count) times:
    # [cat, cat, dog] vs [cat, dog, dog]: overlap cat 1 + dog 1 = 2, P = R = 2/3, F1 = 2/3.
    assert f1_score("cat cat dog", "cat dog dog") == pytest.approx(2 / 3)
    assert f1_score("cat", "dog") == 0.0
    assert f1_score("", "dog") == 0.0
    assert exact_match_score("The Cat.", "cat")
    assert not exact_match_score("cats", "cat")


def _dataset(questions):
    """A one-paragraph SQuAD `data` list: questions is [(id, [gold texts])]."""
    return [
        {
            "title": "t",
            "paragraphs": [
                {
                    "context": "c",
                    "qas": [
                        {
                            "id": qid,
                            "question": "q?",
                            "answers": [{"text": t, "answer_start": 0} for t in golds],
                        }
                        for qid, golds in questions
                    ],
                }
            ],
        }
    ]


def test_evaluate_max_over_gold_and_missing_predictions(capsys):
    dataset = _dataset(
        [("q1", ["London", "paris, France"]), ("q2", ["the cat sat"]), ("q3", ["blue"])]
    )
    # q1: EM 0; F1 max(0, "paris" vs "paris france": P 1, R 1/2 -> 2/3) = 2/3.
    # q2: exact after normalization: EM 1, F1 1.  q3: missing -> 0, 0.
    scores = evaluate(dataset, {"q1": "Paris", "q2": "A cat sat."})
    assert scores["exact_match"] == pytest.approx(100 * 1 / 3)
    assert scores["f1"] == pytest.approx(100 * (2 / 3 + 1) / 3)
    err = capsys.readouterr().err
    assert "1 of 3 questions have no prediction" in err


def test_question_without_gold_answers_expects_empty():
    # SQuAD v2.0 is_impossible questions have no gold answers: only "" is right.
    answers = {"q1": [], "q2": []}
    assert squad_metric.evaluate_answers(answers, {"q1": "", "q2": "Paris"}) == {
        "exact_match": 50.0,
        "f1": 50.0,
    }


def test_perfect_predictions_on_dev_subset(shared_data):
    data = json.loads((shared_data / "squad/dev-v1.1-answerable-subset.json").read_text())["data"]
    gold = squad_metric.gold_answers(data)
    assert len(gold) == 705
    for pick in (0, -1):  # any gold answer is a perfect prediction
        scores = evaluate(data, {qid: answers[pick] for qid, answers in gold.items()})
        assert scores == {"exact_match": 100.0, "f1": 100.0}
    # Answering the wrong question's gold text must score far lower.
    ids = list(gold)
    shifted = {qid: gold[ids[(i + 1) % len(ids)]][0] for i, qid in enumerate(ids)}
    assert evaluate(data, shifted)["exact_match"] < 10.0


@pytest.mark.slow
def test_command_line_matches_evaluate(shared_data, tmp_path):
    dataset_file = shared_data / "squad/dev-v1.1-answerable-subset.json"
    data = json.loads(dataset_file.read_text())["data"]
    gold = squad_metric.gold_answers(data)
    # Every other question answered with its first gold answer truncated to one word.
    predictions = {
        qid: answers[0].split()[0] for i, (qid, answers) in enumerate(gold.items()) if i % 2 == 0
    }
    prediction_file = tmp_path / "predictions.json"
    prediction_file.write_text(json.dumps(predictions))
    run = subprocess.run(
        [sys.executable, "-m", "data.squad_metric", str(dataset_file), str(prediction_file)],
        capture_output=True,
        text=True,
        check=True,
    )
    printed = json.loads(run.stdout)
    assert set(printed) == {"exact_match", "f1"}
    assert printed["exact_match"] == pytest.approx(evaluate(data, predictions)["exact_match"])
    assert printed["f1"] == pytest.approx(evaluate(data, predictions)["f1"])
    assert 0 < printed["exact_match"] < printed["f1"] < 50  # half the questions are missing
    assert f"{len(gold) - len(predictions)} of {len(gold)}" in run.stderr
