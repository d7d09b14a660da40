"""SQuAD reading, feature conversion, TFRecords / tf.data and postprocessing on real data."""

import collections
import json
import logging

import numpy as np
import pytest
import tensorflow as tf

from data import squad, squad_metric, tokenization
from data.squad_metric import normalize_answer


@pytest.fixture(scope="module")
def tokenizer(minilm_vocab):
    return tokenization.FullTokenizer(minilm_vocab, do_lower_case=True)


@pytest.fixture(scope="module")
def xquad(shared_data, tokenizer):
    path = shared_data / "squad/xquad-en-v1.1.json"
    examples = squad.read_squad_examples(path, is_training=False)
    features = squad.convert_examples_to_features(examples, tokenizer, is_training=False)
    return path, examples, features


def _detokenize(tokens):
    return " ".join(tokens).replace(" ##", "")


def _write_json(path, data):
    path.write_text(json.dumps({"version": "1.1", "data": data}))
    return path


# -----------------------------------------------------------------------------
# Reading.
# -----------------------------------------------------------------------------


def test_split_context_words_and_offsets():
    words, offsets = squad.split_context(" Hi  there,\tworld\u202fok")
    assert words == ["Hi", "there,", "world", "ok"]
    # Every character maps to the word it is in (whitespace: the previous word).
    assert offsets == [-1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 3, 3]


def test_read_train_subset_positions(shared_data):
    path = shared_data / "squad/train-v1.1-subset.json"
    examples = squad.read_squad_examples(path, is_training=True)
    assert len(examples) == 3807  # every answer of this file aligns (see shared/data/README.md)
    raw = json.loads(path.read_text())["data"]
    raw_qas = {
        qa["id"]: (p["context"], qa) for a in raw for p in a["paragraphs"] for qa in p["qas"]
    }
    for example in examples:
        context, qa = raw_qas[example.qas_id]
        answer = qa["answers"][0]
        assert example.orig_answer_text == answer["text"]
        assert example.question_text == qa["question"]
        assert example.doc_tokens == context.split()
        # The labelled words contain the answer, and the answer's first character is in the first
        # word.
        words = " ".join(example.doc_tokens[example.start_position : example.end_position + 1])
        assert " ".join(answer["text"].split()) in words
        assert (
            len(" ".join(context[: answer["answer_start"] + 1].split()).split())
            == example.start_position + 1
        )


def test_read_v2_is_impossible(shared_data):
    examples = squad.read_squad_examples(
        shared_data / "squad/dev-v2.0-subset.json", is_training=False
    )
    assert len(examples) == 1407
    impossible = [e for e in examples if e.is_impossible]
    assert len(impossible) == 702
    assert all(e.start_position == e.end_position == -1 and e.answers == [] for e in impossible)
    answerable = [e for e in examples if not e.is_impossible]
    assert sum(len(e.answers) for e in answerable) == 2106
    assert all(e.start_position is not None for e in answerable)


def test_v2_training_features_point_at_cls(shared_data, tokenizer):
    examples = squad.read_squad_examples(
        shared_data / "squad/dev-v2.0-subset.json", is_training=True
    )[:80]
    features = squad.convert_examples_to_features(examples, tokenizer, is_training=True)
    impossible = [f for f in features if examples[f.example_index].is_impossible]
    assert impossible and all(f.start_position == f.end_position == 0 for f in impossible)
    assert all(
        f.start_position > 0
        for f in features
        if not f.is_impossible and len(examples[f.example_index].doc_tokens) < 150
    )


def test_bad_input_names_file_question_and_field(tmp_path):
    qa = {"id": "q-42", "question": "Who?", "answers": [{"text": "Bob", "answer_start": 0}]}
    good = [{"title": "T", "paragraphs": [{"context": "Bob ran.", "qas": [qa]}]}]
    assert len(squad.read_squad_examples(_write_json(tmp_path / "good.json", good), True)) == 1

    no_question = json.loads(json.dumps(good))
    del no_question[0]["paragraphs"][0]["qas"][0]["question"]
    path = _write_json(tmp_path / "no_question.json", no_question)
    with pytest.raises(squad.SquadFormatError) as e:
        squad.read_squad_examples(path, is_training=True)
    assert str(path) in str(e.value) and "q-42" in str(e.value) and "'question'" in str(e.value)

    no_context = json.loads(json.dumps(good))
    del no_context[0]["paragraphs"][0]["context"]
    path = _write_json(tmp_path / "no_context.json", no_context)
    with pytest.raises(squad.SquadFormatError, match="no_context.json.*paragraph 0.*'context'"):
        squad.read_squad_examples(path, is_training=False)

    shifted = json.loads(json.dumps(good))
    shifted[0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = 1
    path = _write_json(tmp_path / "shifted.json", shifted)
    with pytest.raises(squad.SquadFormatError) as e:
        squad.read_squad_examples(path, is_training=True)
    message = str(e.value)
    assert str(path) in message and "q-42" in message and "answer_start" in message
    assert "'ob '" in message  # what the context holds at that offset
    # For evaluation only the gold texts matter: the question is kept, unlabelled.
    (example,) = squad.read_squad_examples(path, is_training=False)
    assert example.answers == ["Bob"] and example.start_position is None


def test_misaligned_training_answer_is_skipped_with_warning(tmp_path, caplog):
    # A no-break space is not a word separator for the reader, but str.split() splits on it,
    # so the cleaned answer "New York" is not in the word "New\xa0York": unlabellable.
    context = "In New\xa0York today. Bob ran."
    data = [
        {
            "title": "T",
            "paragraphs": [
                {
                    "context": context,
                    "qas": [
                        {
                            "id": "bad",
                            "question": "Where?",
                            "answers": [{"text": "New\xa0York", "answer_start": 3}],
                        },
                        {
                            "id": "good",
                            "question": "Who?",
                            "answers": [{"text": "Bob", "answer_start": 19}],
                        },
                    ],
                }
            ],
        }
    ]
    path = _write_json(tmp_path / "misaligned.json", data)
    with caplog.at_level(logging.WARNING):
        examples = squad.read_squad_examples(path, is_training=True)
    assert [e.qas_id for e in examples] == ["good"]
    assert "1 answers do not align" in caplog.text
    assert len(squad.read_squad_examples(path, is_training=False)) == 2


def test_hugging_face_rows_match_json_reader(shared_data, monkeypatch):
    import datasets

    path = shared_data / "squad/xquad-en-v1.1.json"
    raw = json.loads(path.read_text())["data"][:2]
    rows = [
        {
            "id": qa["id"],
            "title": a["title"],
            "context": p["context"],
            "question": qa["question"],
            "answers": {
                "text": [x["text"] for x in qa["answers"]],
                "answer_start": [x["answer_start"] for x in qa["answers"]],
            },
        }
        for a in raw
        for p in a["paragraphs"]
        for qa in p["qas"]
    ]
    calls = []
    monkeypatch.setattr(
        datasets, "load_dataset", lambda name, split, **kw: calls.append((name, split)) or rows
    )
    from_hf = squad.read_examples("squad", is_training=True, split="validation")
    assert calls == [("squad", "validation")]
    from_json = [
        e
        for e in squad.read_squad_examples(path, is_training=True)
        if e.qas_id in {r["id"] for r in rows}
    ]
    assert len(from_hf) == len(rows) == len(from_json) > 20
    assert from_hf == from_json


# -----------------------------------------------------------------------------
# Features.
# -----------------------------------------------------------------------------


def test_labelled_spans_match_gold_answers_on_train_subset(shared_data, tokenizer):
    examples = squad.read_squad_examples(
        shared_data / "squad/train-v1.1-subset.json", is_training=True
    )
    features = squad.convert_examples_to_features(examples, tokenizer, is_training=True)
    matched = total = 0
    examples_with_answer = set()
    for f in features:
        if f.start_position == 0:
            continue
        examples_with_answer.add(f.example_index)
        assert f.segment_ids[f.start_position] == f.segment_ids[f.end_position] == 1
        assert f.input_mask[f.end_position] == 1 and f.start_position <= f.end_position
        gold = examples[f.example_index].orig_answer_text
        # Compare ignoring spaces: WordPiece splits punctuation ("U.S." -> "u . s .").
        labelled = _detokenize(f.tokens[f.start_position : f.end_position + 1])
        span = "".join(normalize_answer(labelled).split())
        truth = "".join(normalize_answer(" ".join(tokenizer.basic_tokenize(gold))).split())
        matched += span == truth
        total += 1
    rate = matched / total
    print(f"labelled span == gold answer: {matched}/{total} = {100 * rate:.2f}%")
    assert len(examples_with_answer) == len(examples)  # every answer is in some window
    assert rate >= 0.99


def test_window_layout_and_max_context(xquad, tokenizer):
    _, examples, _ = xquad
    examples = examples[:40]
    features = squad.convert_examples_to_features(
        examples, tokenizer, max_seq_length=64, doc_stride=16, max_query_length=12
    )
    by_example = collections.defaultdict(list)
    for f in features:
        by_example[f.example_index].append(f)
    assert [f.unique_id for f in features] == list(range(1000000000, 1000000000 + len(features)))
    for index, example in enumerate(examples):
        query = tokenizer.tokenize(example.question_text)[:12]
        doc = [p for w in example.doc_tokens for p in tokenizer.tokenize(w)]
        windows = by_example[index]
        assert len(windows) > 1
        max_context_count = collections.Counter()
        starts = []
        for span_index, f in enumerate(windows):
            assert f.doc_span_index == span_index and len(f.input_ids) == 64
            n = sum(f.input_mask)
            assert (
                f.tokens[: len(query) + 2] == ["[CLS]", *query, "[SEP]"] and f.tokens[-1] == "[SEP]"
            )
            assert f.input_ids[:n] == tokenizer.convert_tokens_to_ids(f.tokens) and n == len(
                f.tokens
            )
            assert f.segment_ids[:n] == [0] * (len(query) + 2) + [1] * (n - len(query) - 2)
            assert set(f.input_mask[n:]) <= {0} and set(f.input_ids[n:]) <= {0}
            window = f.tokens[len(query) + 2 : -1]
            start = starts[-1] + 16 if starts else 0
            starts.append(start)
            assert window == doc[start : start + len(window)]
            for pos, orig in f.token_to_orig_map.items():
                assert f.tokens[pos] in tokenizer.tokenize(example.doc_tokens[orig])
                if f.token_is_max_context[pos]:
                    max_context_count[pos - len(query) - 2 + start] += 1
        # The windows cover the document and every token has exactly one max-context window.
        assert starts[-1] + len(windows[-1].tokens) - len(query) - 3 == len(doc)
        assert sorted(max_context_count) == list(range(len(doc)))
        assert set(max_context_count.values()) == {1}
        # Training labels: the answer's window(s) point at it, the others at [CLS].
        if example.start_position is not None:
            assert any(f.start_position > 0 for f in windows)


def test_improved_answer_span_and_out_of_span(tokenizer):
    context = "The founder (1895-1943) of the long company was here for many years."
    example = squad.SquadExample(
        qas_id="x",
        question_text="When born?",
        doc_tokens=context.split(),
        orig_answer_text="1895",
        start_position=2,
        end_position=2,
    )
    (f,) = squad.convert_examples_to_features([example], tokenizer)
    assert f.tokens[f.start_position : f.end_position + 1] == ["1895"]  # not "( 1895 - 1943 ) ."
    # Short windows: only those containing the whole answer are labelled, the rest get 0.
    late = squad.SquadExample(
        qas_id="y",
        question_text="How long?",
        doc_tokens=context.split(),
        orig_answer_text="many years.",
        start_position=10,
        end_position=11,
    )
    features = squad.convert_examples_to_features(
        [late], tokenizer, max_seq_length=16, doc_stride=4
    )
    labelled = [f for f in features if f.start_position > 0]
    assert labelled and len(labelled) < len(features)
    assert all(f.start_position == f.end_position == 0 for f in features if f not in labelled)
    for f in labelled:
        assert f.tokens[f.start_position : f.end_position + 1] == ["many", "years", "."]


# -----------------------------------------------------------------------------
# TFRecords and tf.data.
# -----------------------------------------------------------------------------


def test_tfrecords_round_trip_and_padded_predict_batches(xquad, tmp_path):
    _, _, features = xquad
    features = features[:10]
    train_file, eval_file = tmp_path / "train.tf_record", tmp_path / "eval.tf_record"
    assert squad.write_features(features, train_file, is_training=True) == 10
    assert squad.write_features(features, eval_file, is_training=False) == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.tf_record", "train.tf_record"]

    train = squad.build_squad_dataset(str(train_file), 4, 384, is_training=True, seed=1)
    assert set(train.element_spec) == {
        "input_ids",
        "input_mask",
        "segment_ids",
        "start_positions",
        "end_positions",
    }
    assert train.element_spec["input_ids"].shape == (4, 384)
    assert train.element_spec["start_positions"].shape == (4,)
    assert all(s.dtype == tf.int32 for s in train.element_spec.values())
    by_ids = {tuple(f.input_ids): f for f in features}
    for batch in train.take(5):  # repeats past the 10 features
        for i in range(4):
            f = by_ids[tuple(batch["input_ids"][i].numpy())]
            assert batch["start_positions"][i] == f.start_position
            assert batch["end_positions"][i] == f.end_position
            assert list(batch["segment_ids"][i].numpy()) == f.segment_ids

    predict = squad.build_squad_dataset(str(eval_file), 4, 384, is_training=False)
    assert predict.element_spec["unique_ids"].shape == (4,)
    unique_ids = np.concatenate([b["unique_ids"].numpy() for b in predict])
    assert len(unique_ids) == 12  # 10 features + 2 dummies fill the third batch
    assert list(unique_ids[:10]) == [f.unique_id for f in features]
    assert list(unique_ids[10:]) == [-1, -1]
    full = squad.build_squad_dataset(str(eval_file), 5, 384, is_training=False)
    assert sum(1 for _ in full) == 2  # a full last batch gets no dummies

    shards = [
        squad.build_squad_dataset(
            str(eval_file),
            2,
            384,
            is_training=False,
            input_context=tf.distribute.InputContext(2, i, 4),
        )
        for i in range(2)
    ]
    ids = [u for s in shards for b in s for u in b["unique_ids"].numpy() if u != -1]
    assert sorted(ids) == sorted(f.unique_id for f in features)

    arrays = squad.features_to_arrays(features, pad_to_multiple_of=4)
    assert arrays["input_ids"].shape == (12, 384) and list(arrays["unique_ids"][10:]) == [-1, -1]


def test_failed_write_leaves_no_file(xquad, tmp_path):
    _, _, features = xquad
    target = tmp_path / "out.tf_record"
    with pytest.raises(RuntimeError), squad.FeatureWriter(target, is_training=True) as writer:
        writer.process_feature(features[0])
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


# -----------------------------------------------------------------------------
# Postprocessing.
# -----------------------------------------------------------------------------


def _oracle_logits(arrays, features, seq_length=384):
    """Batched logits pointing at each feature's labelled span (dummy rows: at [CLS])."""
    position = {f.unique_id: (f.start_position, f.end_position) for f in features}
    start = np.zeros([len(arrays["unique_ids"]), seq_length], np.float32)
    end = np.zeros_like(start)
    for row, unique_id in enumerate(arrays["unique_ids"]):
        s, e = position.get(int(unique_id), (0, 0))
        start[row, s] = end[row, e] = 10.0
    return start, end


def test_get_final_text_recovers_original_case_and_punctuation():
    assert squad.get_final_text("steve smith", "Steve Smith's", True) == "Steve Smith"
    assert squad.get_final_text("1895", "(1895-1943).", True) == "1895"
    assert squad.get_final_text("jose", "José's", True) == "José"
    # Not found in the original: fall back to the whole original text.
    assert squad.get_final_text("bob", "Steve Smith's", True) == "Steve Smith's"


def test_oracle_logits_round_trip_on_xquad(xquad, tmp_path):
    path, examples, features = xquad
    assert len(examples) == 1190 and all(f.start_position is not None for f in features)
    # The prediction flow: padded arrays -> batched logits -> RawResults without the dummies.
    arrays = squad.features_to_arrays(features, pad_to_multiple_of=64)
    assert len(arrays["unique_ids"]) % 64 == 0 and arrays["unique_ids"][-1] == -1
    start_logits, end_logits = _oracle_logits(arrays, features)
    results = squad.raw_results_from_arrays(arrays["unique_ids"], start_logits, end_logits)
    assert [r.unique_id for r in results] == [f.unique_id for f in features]
    results = results[::-1]  # the order of results does not matter
    prediction_file, nbest_file = tmp_path / "predictions.json", tmp_path / "nbest.json"
    predictions = squad.write_predictions(examples, features, results, prediction_file, nbest_file)
    assert json.loads(prediction_file.read_text()) == predictions
    nbest = json.loads(nbest_file.read_text())
    assert set(nbest) == set(predictions) and len(predictions) == 1190
    for qid, entries in nbest.items():
        assert 1 <= len(entries) <= 20 and entries[0]["text"] == predictions[qid]
        # Probabilities recomputed from the oracle logits: each entry's logits are ones we
        # set (10 on the labelled span, 0 elsewhere), softmaxed over the n-best scores.
        assert {e["start_logit"] for e in entries} <= {0.0, 10.0}
        assert {e["end_logit"] for e in entries} <= {0.0, 10.0}
        scores = np.array([e["start_logit"] + e["end_logit"] for e in entries])
        expected = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
        assert [e["probability"] for e in entries] == pytest.approx(expected, rel=1e-6)
        assert len({e["text"] for e in entries}) == len(entries)
    scores = squad_metric.evaluate(json.loads(path.read_text())["data"], predictions)
    print(f"oracle round trip on XQuAD: {scores}")
    assert scores["exact_match"] >= 99.5 and scores["f1"] >= 99.8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nbest.json", "predictions.json"]


def test_postprocessing_rules(xquad):
    _, examples, features = xquad
    example, feature = examples[0], features[0]
    assert feature.example_index == 0
    # All mass on [CLS] (no valid span among the n-best of either side): empty answer.
    cls_only = squad.RawResult(feature.unique_id, np.eye(384)[0] * 10, np.eye(384)[0] * 10)
    predictions, nbest, _ = squad.compute_predictions(
        [example], [feature], [cls_only], n_best_size=1
    )
    assert predictions == {example.qas_id: ""}
    # The two best pairs are invalid (end before start; 36 and 41 tokens > 30 long), so
    # the answer is the best valid span (s, s + 1). Other positions are at -10.
    s = feature.tokens.index("[SEP]") + 1
    start, end = np.full(384, -10.0), np.full(384, -10.0)
    start[s + 5], start[s] = 10, 5
    end[s + 40], end[s + 1] = 9, 5
    predictions, nbest, _ = squad.compute_predictions(
        [example], [feature], [squad.RawResult(feature.unique_id, start, end)]
    )
    assert (
        nbest[example.qas_id][0]["start_logit"] == 5 and nbest[example.qas_id][0]["end_logit"] == 5
    )
    words = example.doc_tokens[feature.token_to_orig_map[s] : feature.token_to_orig_map[s + 1] + 1]
    assert normalize_answer(predictions[example.qas_id]) == normalize_answer(" ".join(words))
    with pytest.raises(ValueError, match="no model result"):
        squad.compute_predictions([example], [feature], [])


def test_v2_null_answer_round_trip(shared_data, tokenizer):
    examples = squad.read_squad_examples(
        shared_data / "squad/dev-v2.0-subset.json", is_training=False
    )[:150]
    features = squad.convert_examples_to_features(examples, tokenizer)
    arrays = squad.features_to_arrays(features)
    results = squad.raw_results_from_arrays(arrays["unique_ids"], *_oracle_logits(arrays, features))
    gold = {e.qas_id: e.answers for e in examples}
    num_impossible = sum(e.is_impossible for e in examples)
    assert 0 < num_impossible < len(examples)
    # Impossible questions point at [CLS] everywhere: the null answer wins.
    predictions, _, null_diffs = squad.compute_predictions(
        examples, features, results, version_2_with_negative=True
    )
    assert all(null_diffs[e.qas_id] < 0 for e in examples if not e.is_impossible)
    assert all(predictions[e.qas_id] == "" for e in examples if e.is_impossible)
    assert all(null_diffs[e.qas_id] > 0 for e in examples if e.is_impossible)
    assert squad_metric.evaluate_answers(gold, predictions)["exact_match"] >= 99
    # Without the null answer (v1.1 rules), every impossible question gets some span: wrong.
    v1_predictions, _, _ = squad.compute_predictions(examples, features, results)
    assert all(v1_predictions[e.qas_id] != "" for e in examples if e.is_impossible)
    assert all(
        v1_predictions[e.qas_id] == predictions[e.qas_id] for e in examples if not e.is_impossible
    )


def test_benchmark_runs_on_a_few_questions(shared_data, minilm_vocab):
    from benchmarks import squad as squad_benchmark

    rows = squad_benchmark.run_benchmark(
        shared_data / "squad/xquad-en-v1.1.json", minilm_vocab, num_questions=20
    )
    assert [r["questions"] for r in rows] == [20, 20, 20]
    assert rows[-1]["oracle_exact_match"] >= 90
    assert "| metric (EM/F1) |" in squad_benchmark.to_markdown(rows)


# -----------------------------------------------------------------------------
# Prediction features without answers; SentencePiece tokenizers.
# -----------------------------------------------------------------------------


def test_prediction_features_without_answers(tokenizer, tmp_path):
    context = "The Normans gave their name to Normandy, a region in France."
    words, _ = squad.split_context(context)
    examples = [squad.SquadExample("q1", "What did the Normans name?", words)]
    assert examples[0].start_position is None
    features = squad.convert_examples_to_features(examples, tokenizer, is_training=False)
    assert len(features) == 1 and features[0].start_position is None
    assert features[0].end_position is None
    path = tmp_path / "eval.tf_record"
    assert squad.write_features(features, path, is_training=False) == 1
    (batch,) = squad.build_squad_dataset(str(path), 2, 384, is_training=False)
    assert batch["unique_ids"].numpy().tolist() == [features[0].unique_id, -1]
    # Logits at "normandy": the prediction is cut from the original text.
    start = features[0].tokens.index("normandy")
    logits = np.zeros([384], np.float32)
    logits[start] = 10.0
    results = [squad.RawResult(features[0].unique_id, logits, logits)]
    predictions, _, _ = squad.compute_predictions(examples, features, results)
    assert predictions == {"q1": "Normandy"}
    # Training features must all be labelled: the question is named.
    with pytest.raises(squad.SquadFormatError, match="q1"):
        squad.convert_examples_to_features(examples, tokenizer, is_training=True)


@pytest.fixture(scope="module")
def spm_tokenizer(shared_data, tmp_path_factory):
    from data import vocab_learning as learn_vocab

    text = (shared_data / "text/wiki_squad_contexts.txt").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip()]
    model = tmp_path_factory.mktemp("spm") / "spm.model"
    learn_vocab.train_sentencepiece(lines, str(model), vocab_size=4000, do_lower_case=True)
    return tokenization.create_tokenizer(spm_model_file=str(model), do_lower_case=True)


def test_sentencepiece_labelled_spans_recover_gold_answers(shared_data, spm_tokenizer):
    examples = squad.read_squad_examples(
        shared_data / "squad/train-v1.1-subset.json", is_training=True
    )
    # Short windows: many answers fall outside some windows and are labelled [CLS].
    features = squad.convert_examples_to_features(
        examples, spm_tokenizer, max_seq_length=128, doc_stride=64, is_training=True
    )
    assert all(f.tokens[0] == "[CLS]" and f.input_ids[0] == spm_tokenizer.cls_id for f in features)
    matched = total = outside = 0
    for f in features:
        assert f.token_to_orig_chars is not None
        if f.start_position == 0:
            outside += 1
            continue
        assert f.segment_ids[f.start_position] == f.segment_ids[f.end_position] == 1
        example = examples[f.example_index]
        # The prediction path: the labelled span as if the model had predicted it.
        text = squad.prediction_text(example, f, f.start_position, f.end_position, True)
        matched += normalize_answer(text) == normalize_answer(example.orig_answer_text)
        total += 1
    rate = matched / total
    print(f"SentencePiece labelled span == gold answer: {matched}/{total} = {100 * rate:.2f}%")
    assert outside > 1000 and total > 3800
    assert rate >= 0.98


def test_sentencepiece_oracle_predictions_score_on_xquad(shared_data, spm_tokenizer, tmp_path):
    path = shared_data / "squad/xquad-en-v1.1.json"
    examples = squad.read_squad_examples(path, is_training=False)[:300]
    features = squad.convert_examples_to_features(examples, spm_tokenizer, is_training=False)
    arrays = squad.features_to_arrays(features, pad_to_multiple_of=32)
    start_logits, end_logits = _oracle_logits(arrays, features)
    results = squad.raw_results_from_arrays(arrays["unique_ids"], start_logits, end_logits)
    predictions = squad.write_predictions(examples, features, results, tmp_path / "p.json")
    answers = {e.qas_id: e.answers for e in examples}
    scores = squad_metric.evaluate_answers(answers, predictions)
    print(f"SentencePiece oracle round trip on XQuAD[:300]: {scores}")
    assert scores["exact_match"] >= 97.0 and scores["f1"] >= 99.0


def test_sentencepiece_spans_cut_original_text(spm_tokenizer):
    # NFKC folds the full-width letters and case; the answer keeps them.
    context = "Born in Ｔｏｋｙｏ (1895-1943), Mr. Ōno wrote."
    words, char_to_word = squad.split_context(context)
    answer_start = context.index("Ｔｏｋｙｏ")
    example = squad.SquadExample(
        "q",
        "Where?",
        words,
        orig_answer_text="Ｔｏｋｙｏ",
        start_position=char_to_word[answer_start],
        end_position=char_to_word[answer_start],
        answers=["Ｔｏｋｙｏ"],
    )
    (feature,) = squad.convert_examples_to_features([example], spm_tokenizer)
    text = squad.prediction_text(
        example, feature, feature.start_position, feature.end_position, True
    )
    assert text == "Ｔｏｋｙｏ"
    # Every document token maps to characters of its word; together they cover it.
    for position, word in feature.token_to_orig_map.items():
        start, end = feature.token_to_orig_chars[position]
        assert 0 <= start <= end <= len(words[word])
    doc = sorted(feature.token_to_orig_map)
    whole = squad.prediction_text(example, feature, doc[0], doc[-1], True)
    assert whole == " ".join(words)
