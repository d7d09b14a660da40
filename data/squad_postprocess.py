# Copyright 2026 The bert-large-batch Authors. Apache-2.0.
"""SQuAD postprocessing: start/end logits -> answer texts (predictions.json).

The algorithm of google-research/bert `run_squad.py` `write_predictions`: per
feature, the n-best start and end positions; valid spans lie in the document,
start at a token whose window is its max-context window, end after they start
and are at most `max_answer_length` tokens long. Spans of all windows of an
example are ranked by start + end logit, mapped back to the original words and
then to the original text, de-duplicated, and given softmax probabilities
over the n-best.

Mapping a token span back to the original text (`prediction_text`): for
WordPiece, as the reference, by aligning the detokenized span with the
basic-tokenized original words (`get_final_text`, which assumes "##"
continuations and BERT's BasicTokenizer); for SentencePiece features, which
carry each token's character span in its word (`token_to_orig_chars`), by
cutting the original text at those spans, so no tokenizer is needed here.
"""

import collections
import dataclasses
import math
from collections.abc import Iterable, Sequence

import numpy as np
from absl import logging

from data import fileio, tokenization
from data.squad_examples import SquadExample
from data.squad_features import InputFeatures, orig_text_of_span
from data.squad_records import PADDING_UNIQUE_ID

N_BEST_SIZE = 20
MAX_ANSWER_LENGTH = 30


@dataclasses.dataclass
class RawResult:
    """The model output for one feature."""

    unique_id: int
    start_logits: Sequence[float]
    end_logits: Sequence[float]


def raw_results_from_arrays(unique_ids, start_logits, end_logits) -> list[RawResult]:
    """RawResults from batched arrays, without the padding features (unique id -1)."""
    unique_ids = np.asarray(unique_ids).reshape(-1)
    start_logits = np.asarray(start_logits, np.float32)
    end_logits = np.asarray(end_logits, np.float32)
    return [
        RawResult(int(uid), start_logits[i], end_logits[i])
        for i, uid in enumerate(unique_ids)
        if uid != PADDING_UNIQUE_ID
    ]


def _strip_spaces(text: str) -> tuple[str, dict[int, int]]:
    """`text` without spaces, and the map from its positions to those in `text`."""
    chars = []
    ns_to_s_map = {}
    for i, char in enumerate(text):
        if char == " ":
            continue
        ns_to_s_map[len(chars)] = i
        chars.append(char)
    return "".join(chars), ns_to_s_map


def get_final_text(pred_text: str, orig_text: str, do_lower_case: bool) -> str:
    """Projects the detokenized prediction onto the original text.

    `pred_text` is normalized ("steve smith") while `orig_text` is the original
    words ("Steve Smith's"). The original text is basic-tokenized, the
    prediction located in it, and the two aligned character by character after
    removing spaces (they have the same length unless normalization changed the
    character count, e.g. stripped accents). If anything does not line up, the
    whole original text is returned, as in the reference.
    """
    tok_text = " ".join(
        tokenization.BasicTokenizer(do_lower_case=do_lower_case).tokenize(orig_text)
    )
    start_position = tok_text.find(pred_text)
    if start_position == -1:
        return orig_text
    end_position = start_position + len(pred_text) - 1

    orig_ns_text, orig_ns_to_s_map = _strip_spaces(orig_text)
    tok_ns_text, tok_ns_to_s_map = _strip_spaces(tok_text)
    if len(orig_ns_text) != len(tok_ns_text):
        return orig_text
    tok_s_to_ns_map = {s: ns for ns, s in tok_ns_to_s_map.items()}

    def to_orig(tok_position: int) -> int | None:
        ns_position = tok_s_to_ns_map.get(tok_position)
        return None if ns_position is None else orig_ns_to_s_map.get(ns_position)

    orig_start, orig_end = to_orig(start_position), to_orig(end_position)
    if orig_start is None or orig_end is None:
        return orig_text
    return orig_text[orig_start : orig_end + 1]


def _best_indexes(logits, n_best_size: int) -> list[int]:
    """Indices of the n largest logits, ties in index order."""
    return np.argsort(-np.asarray(logits), kind="stable")[:n_best_size].tolist()


def _softmax(scores: Sequence[float]) -> list[float]:
    if not scores:
        return []
    max_score = max(scores)
    exps = [math.exp(s - max_score) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def _detokenize(tokens: Sequence[str]) -> str:
    text = " ".join(tokens).replace(" ##", "").replace("##", "")
    return " ".join(text.split())


def prediction_text(
    example: SquadExample, feature: InputFeatures, start: int, end: int, do_lower_case: bool
) -> str:
    """The original text of the token span start..end (positions in `feature.tokens`).

    The one path from a predicted span to answer text, for any tokenizer:
    SentencePiece features are cut out of the original words at their character
    spans; WordPiece ones go through the reference's `get_final_text`
    (`do_lower_case` must then match the tokenizer's).
    """
    if feature.token_to_orig_chars is not None:
        return orig_text_of_span(
            example.doc_tokens,
            feature.token_to_orig_map,
            feature.token_to_orig_chars,
            start,
            end,
        )
    orig_start = feature.token_to_orig_map[start]
    orig_end = feature.token_to_orig_map[end]
    return get_final_text(
        _detokenize(feature.tokens[start : end + 1]),
        " ".join(example.doc_tokens[orig_start : orig_end + 1]),
        do_lower_case,
    )


def compute_predictions(
    examples: Sequence[SquadExample],
    features: Sequence[InputFeatures],
    results: Iterable[RawResult],
    n_best_size: int = N_BEST_SIZE,
    max_answer_length: int = MAX_ANSWER_LENGTH,
    do_lower_case: bool = True,
    version_2_with_negative: bool = False,
    null_score_diff_threshold: float = 0.0,
):
    """Returns (predictions, nbest, null_score_diffs).

    predictions: question id -> answer text ("" when no valid span, or when
    version_2_with_negative and the null score wins by more than the threshold).
    nbest: question id -> list of {"text", "probability", "start_logit", "end_logit"}.
    null_score_diffs: question id -> null score minus best span score (v2 only).
    """
    result_by_id = {r.unique_id: r for r in results if r.unique_id != PADDING_UNIQUE_ID}
    missing = [f.unique_id for f in features if f.unique_id not in result_by_id]
    if missing:
        raise ValueError(
            f"{len(missing)} of {len(features)} features have no model result "
            f"(e.g. unique id {missing[0]}); was the last batch dropped?"
        )
    features_by_example = collections.defaultdict(list)
    for feature in features:
        features_by_example[feature.example_index].append(feature)

    predictions, all_nbest, null_score_diffs = {}, {}, {}
    for example_index, example in enumerate(examples):
        example_features = features_by_example[example_index]
        prelim = []  # (score, start_logit, end_logit, feature, start, end)
        null_score, null_start_logit, null_end_logit = None, 0.0, 0.0
        for feature in example_features:
            result = result_by_id[feature.unique_id]
            start_logits = np.asarray(result.start_logits, np.float64)
            end_logits = np.asarray(result.end_logits, np.float64)
            if version_2_with_negative:
                feature_null = start_logits[0] + end_logits[0]
                if null_score is None or feature_null < null_score:
                    null_score, null_start_logit, null_end_logit = (
                        feature_null,
                        start_logits[0],
                        end_logits[0],
                    )
            for start in _best_indexes(start_logits, n_best_size):
                if start not in feature.token_to_orig_map:
                    continue
                if not feature.token_is_max_context.get(start, False):
                    continue
                for end in _best_indexes(end_logits, n_best_size):
                    if end not in feature.token_to_orig_map:
                        continue
                    if end < start or end - start + 1 > max_answer_length:
                        continue
                    prelim.append(
                        (
                            start_logits[start] + end_logits[end],
                            start_logits[start],
                            end_logits[end],
                            feature,
                            start,
                            end,
                        )
                    )
        if version_2_with_negative and null_score is not None:
            prelim.append((null_score, null_start_logit, null_end_logit, None, 0, 0))
        # Stable sort by score, as the reference's sorted(..., reverse=True).
        prelim.sort(key=lambda p: p[0], reverse=True)

        nbest, seen = [], set()
        for _, start_logit, end_logit, feature, start, end in prelim:
            if len(nbest) >= n_best_size:
                break
            if feature is None:  # The null answer of SQuAD v2.0.
                text = ""
            else:
                text = prediction_text(example, feature, start, end, do_lower_case)
            if text in seen:
                continue
            seen.add(text)
            nbest.append((text, float(start_logit), float(end_logit)))
        if version_2_with_negative and "" not in seen and null_score is not None:
            nbest.append(("", float(null_start_logit), float(null_end_logit)))
        if not nbest:
            nbest.append(("", 0.0, 0.0))

        probabilities = _softmax([s + e for _, s, e in nbest])
        all_nbest[example.qas_id] = [
            {"text": text, "probability": p, "start_logit": s, "end_logit": e}
            for (text, s, e), p in zip(nbest, probabilities)
        ]
        if not version_2_with_negative:
            predictions[example.qas_id] = nbest[0][0]
        else:
            best_non_null = next(((t, s, e) for t, s, e in nbest if t), None)
            if best_non_null is None:
                predictions[example.qas_id] = ""
                continue
            score_diff = float(null_score) - best_non_null[1] - best_non_null[2]
            null_score_diffs[example.qas_id] = score_diff
            predictions[example.qas_id] = (
                "" if score_diff > null_score_diff_threshold else best_non_null[0]
            )
    return predictions, all_nbest, null_score_diffs


JSON_INDENT = 4  # predictions.json and nbest_predictions.json, as the reference writes them.


def write_predictions(
    examples: Sequence[SquadExample],
    features: Sequence[InputFeatures],
    results: Iterable[RawResult],
    output_prediction_file,
    output_nbest_file=None,
    output_null_log_odds_file=None,
    n_best_size: int = N_BEST_SIZE,
    max_answer_length: int = MAX_ANSWER_LENGTH,
    do_lower_case: bool = True,
    version_2_with_negative: bool = False,
    null_score_diff_threshold: float = 0.0,
) -> dict[str, str]:
    """Postprocesses `results` and writes predictions.json (+ nbest, null odds).

    Returns the predictions (question id -> answer text).
    """
    predictions, nbest, null_score_diffs = compute_predictions(
        examples,
        features,
        results,
        n_best_size=n_best_size,
        max_answer_length=max_answer_length,
        do_lower_case=do_lower_case,
        version_2_with_negative=version_2_with_negative,
        null_score_diff_threshold=null_score_diff_threshold,
    )
    logging.info("Writing %d predictions to %s", len(predictions), output_prediction_file)
    fileio.write_json_atomic(output_prediction_file, predictions, indent=JSON_INDENT)
    if output_nbest_file:
        fileio.write_json_atomic(output_nbest_file, nbest, indent=JSON_INDENT)
    if version_2_with_negative and output_null_log_odds_file:
        fileio.write_json_atomic(output_null_log_odds_file, null_score_diffs, indent=JSON_INDENT)
    return predictions
