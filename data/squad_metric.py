"""The official SQuAD v1.1 evaluation metric: exact match and token F1.

Same definitions as the official `evaluate-v1.1.py`: answers are normalized
(lower case, punctuation and the articles a/an/the removed, whitespace
collapsed); a prediction scores the maximum over the gold answers of its
question; scores are averaged over all questions and multiplied by 100.
Questions without a prediction score 0.

Command line, printing `{"exact_match": ..., "f1": ...}` like the official script:

  python -m data.squad_metric DATASET_JSON PREDICTIONS_JSON
"""

import argparse
import collections
import json
import re
import string
import sys
from collections.abc import Callable, Iterable, Mapping

EXPECTED_VERSION = "1.1"

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation, drop articles, collapse whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match_score(prediction: str, ground_truth: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def f1_score(prediction: str, ground_truth: str) -> float:
    """Token F1 of the normalized answers (bag-of-words overlap)."""
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(prediction_tokens)
    recall = num_same / len(ground_truth_tokens)
    return 2 * precision * recall / (precision + recall)


def metric_max_over_ground_truths(
    metric_fn: Callable[[str, str], float], prediction: str, ground_truths: Iterable[str]
) -> float:
    return max(metric_fn(prediction, truth) for truth in ground_truths)


def gold_answers(dataset: list[dict]) -> dict[str, list[str]]:
    """Question id -> gold answer texts, from the `data` list of a SQuAD JSON file."""
    answers = {}
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answers[qa["id"]] = [answer["text"] for answer in qa["answers"]]
    return answers


def evaluate_answers(
    answers: Mapping[str, list[str]], predictions: Mapping[str, str]
) -> dict[str, float]:
    """EM and F1 (in percent) of `predictions` against question id -> gold answers.

    Every question in `answers` counts; a missing prediction scores 0 and the
    number of missing ones is reported on stderr. A question with no gold
    answers (SQuAD v2.0 impossible) is right only for an empty prediction.
    """
    exact_match = f1 = 0.0
    missing = 0
    for qas_id, ground_truths in answers.items():
        if qas_id not in predictions:
            missing += 1
            continue
        prediction = predictions[qas_id]
        if not ground_truths:
            # No gold answer (SQuAD v2.0 is_impossible): only an empty answer is right, as in v2.0.
            correct = float(not normalize_answer(prediction))
            exact_match += correct
            f1 += correct
            continue
        exact_match += metric_max_over_ground_truths(exact_match_score, prediction, ground_truths)
        f1 += metric_max_over_ground_truths(f1_score, prediction, ground_truths)
    if missing:
        print(
            f"Warning: {missing} of {len(answers)} questions have no prediction; "
            "they count as wrong (score 0).",
            file=sys.stderr,
        )
    total = max(len(answers), 1)
    return {"exact_match": 100.0 * exact_match / total, "f1": 100.0 * f1 / total}


def evaluate(dataset: list[dict], predictions: Mapping[str, str]) -> dict[str, float]:
    """Official SQuAD v1.1 EM/F1 of `predictions` (id -> text) on `dataset` (the `data` list)."""
    return evaluate_answers(gold_answers(dataset), predictions)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=f"Evaluation for SQuAD {EXPECTED_VERSION} (official metric)"
    )
    parser.add_argument("dataset_file", help="Dataset file (SQuAD JSON)")
    parser.add_argument("prediction_file", help="Prediction file (JSON: question id -> answer)")
    args = parser.parse_args(argv)
    with open(args.dataset_file, encoding="utf-8") as f:
        dataset_json = json.load(f)
    if dataset_json.get("version") != EXPECTED_VERSION:
        print(
            f"Evaluation expects v-{EXPECTED_VERSION}, but got dataset with "
            f"v-{dataset_json.get('version')}",
            file=sys.stderr,
        )
    with open(args.prediction_file, encoding="utf-8") as f:
        predictions = json.load(f)
    print(json.dumps(evaluate(dataset_json["data"], predictions)))


if __name__ == "__main__":
    main()
