"""SQuAD fine-tuning end to end on the real MiniLM-L6 and real SQuAD / XQuAD questions.

One short fine-tuning run (module fixture, through `bert.tasks.squad.run` with command-line
flags, as `python -m bert.run_squad` runs it) feeds the tests: F1 on real SQuAD dev (XQuAD)
questions against baselines computed here with the same metric, the output files, and the
exported SavedModel answering raw strings like the Python pipeline does.
"""

import dataclasses
import json
import logging
import math
import os
import pathlib
import random
import re
import unicodedata

import numpy as np
import pytest
import tensorflow as tf
from absl import app

import bert
import optimization
from bert import checkpoints
from bert import serving as squad_export
from bert.tasks import squad as squad_task
from bert.training import options
from bert.training import trainer as trainer_lib
from data import length_buckets, squad, squad_metric, tokenization

# The cheapest run found that clearly learns on 2 CPU cores: 96 steps of 8 windows of 128
# tokens. Paragraphs short enough for one window (so that no window lacks its answer),
# small batches (more updates for the same compute: batch 16 x 48 steps reached only F1 11),
# and lr 1e-4 (2e-4 .. 6e-4 were not better). MiniLM was tuned for sentence embeddings, so it
# is a slow QA starter.
SEQ_LENGTH = 128
TRAIN_BATCH = 8
TRAIN_QUESTIONS = 989  # all questions on short paragraphs of the train subset
EPOCHS = 0.7765  # -> int(989 / 8 * 0.7765) = 95 steps
NUM_TRAIN_STEPS = int(TRAIN_QUESTIONS / TRAIN_BATCH * EPOCHS)
EVAL_PARAGRAPHS = 24
FINE_TUNE_FLAGS = [
    f"--max_seq_length={SEQ_LENGTH}",
    "--doc_stride=64",
    "--max_query_length=32",
    f"--train_batch_size={TRAIN_BATCH}",
    "--predict_batch_size=32",
    "--learning_rate=1e-4",
    f"--num_train_epochs={EPOCHS}",
    "--warmup_proportion=0.1",
    "--schedule=warmup_poly",
    "--iterations_per_loop=32",
    "--seed=1",
]


def run_main(argv):
    """Runs `python -m bert.run_squad ARGV` in this process."""
    return squad_task.run(options.parse(squad_task.SquadOptions, ["run_squad", *argv]))


def write_squad(path, articles):
    path.write_text(json.dumps({"version": "1.1", "data": articles}), "utf-8")
    return str(path)


def short_paragraphs(squad_json, tokenizer, limit, count):
    """The first `count` paragraphs whose every question fits one window of `limit` tokens."""
    articles = []
    taken = 0
    for article in squad_json["data"]:
        kept = []
        for paragraph in article["paragraphs"]:
            context_tokens = len(tokenizer.tokenize(paragraph["context"]))
            question_tokens = max(len(tokenizer.tokenize(q["question"])) for q in paragraph["qas"])
            if context_tokens + question_tokens + 3 <= limit and taken < count:
                kept.append(paragraph)
                taken += 1
        if kept:
            articles.append({"title": article["title"], "paragraphs": kept})
    return articles


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory, shared_data, minilm_dir):
    """Fine-tunes MiniLM briefly, predicts short XQuAD paragraphs, exports a SavedModel."""
    out = tmp_path_factory.mktemp("squad")
    tokenizer = tokenization.FullTokenizer(minilm_dir / "vocab.txt", do_lower_case=True)
    train = json.loads((shared_data / "squad" / "train-v1.1-subset.json").read_text("utf-8"))
    articles = short_paragraphs(train, tokenizer, SEQ_LENGTH, count=len(train["data"]) * 100)
    xquad = json.loads((shared_data / "squad" / "xquad-en-v1.1.json").read_text("utf-8"))
    eval_articles = short_paragraphs(xquad, tokenizer, SEQ_LENGTH, EVAL_PARAGRAPHS)
    paths = {
        "train": write_squad(out / "train.json", articles),
        "eval": write_squad(out / "eval.json", eval_articles),
        "output_dir": out / "output",
        "export_dir": out / "export",
    }
    run_main(
        [
            f"--init_checkpoint={minilm_dir}",
            "--do_train",
            "--do_predict",
            f"--train_file={paths['train']}",
            f"--predict_file={paths['eval']}",
            f"--output_dir={paths['output_dir']}",
            f"--export_dir={paths['export_dir']}",
        ]
        + FINE_TUNE_FLAGS
    )
    paths["eval_articles"] = eval_articles
    return paths


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def baseline_predictions(articles, seed=0):
    """Two trivial answerers: the context's first sentence, and a random 1-4 word span."""
    rng = random.Random(seed)
    first_sentence, random_span = {}, {}
    for article in articles:
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            sentence = re.split(r"(?<=[.!?])\s", context, maxsplit=1)[0]
            words = context.split()
            for qa in paragraph["qas"]:
                first_sentence[qa["id"]] = sentence
                length = rng.randint(1, 4)
                start = rng.randrange(0, max(len(words) - length, 1))
                random_span[qa["id"]] = " ".join(words[start : start + length])
    return first_sentence, random_span


@pytest.mark.slow
def test_fine_tuned_f1_beats_baselines(fine_tuned):
    results = read_json(fine_tuned["output_dir"] / "eval_results.json")
    articles = fine_tuned["eval_articles"]
    first_sentence, random_span = baseline_predictions(articles)
    baseline_f1 = max(
        squad_metric.evaluate(articles, first_sentence)["f1"],
        squad_metric.evaluate(articles, random_span)["f1"],
    )
    print(f"fine-tuned {results}, best baseline F1 {baseline_f1:.1f}")
    assert results["num_questions"] == results["num_predictions"] > 100
    assert (
        sum(len(p["qas"]) for a in read_json(fine_tuned["train"])["data"] for p in a["paragraphs"])
        == TRAIN_QUESTIONS
    )
    assert results["f1"] > 1.5 * baseline_f1
    assert results["exact_match"] > 5.0  # Both baselines score 0 exact matches here.


def squashed(text):
    """Lower-case letters and digits without accents: an answer cut from the original context
    and the WordPieces of the same span (joined) squash to the same string."""
    text = unicodedata.normalize("NFD", text.lower())
    return "".join(c for c in text if c.isalnum() and not unicodedata.combining(c))


def candidate_spans(start_logits, end_logits, context, n_best=20, max_answer_length=30):
    """(score, start, end) of one window's answer spans as google-research/bert takes them:
    start among the n_best highest start logits, end among the n_best highest end logits,
    both in the context, start <= end, at most max_answer_length tokens; best first."""
    starts = np.argsort(-start_logits)[:n_best]
    ends = np.argsort(-end_logits)[:n_best]
    spans = [
        (float(start_logits[i] + end_logits[j]), int(i), int(j))
        for i in starts
        for j in ends
        if context[i] and context[j] and i <= j < i + max_answer_length
    ]
    return sorted(spans, reverse=True)


@pytest.mark.slow
def test_output_files_agree_with_the_raw_logits_and_the_metric(fine_tuned, minilm_dir):
    """predictions.json and nbest_predictions.json against spans recomputed here from the
    fine-tuned model's own logits: the answer is the best span's text, every n-best entry is a
    span with its logits, the probabilities are the softmax of those spans' scores, and no
    span scoring above the last entry is missing."""
    output_dir = fine_tuned["output_dir"]
    predictions = read_json(output_dir / "predictions.json")
    nbest = read_json(output_dir / "nbest_predictions.json")
    results = read_json(output_dir / "eval_results.json")
    assert set(predictions) == set(nbest)

    tokenizer = tokenization.FullTokenizer(minilm_dir / "vocab.txt", do_lower_case=True)
    examples = squad.read_examples(fine_tuned["eval"], is_training=False)
    features = squad.convert_examples_to_features(
        examples, tokenizer, max_seq_length=SEQ_LENGTH, doc_stride=64, max_query_length=32
    )
    assert len(features) == len(examples)  # One window each: the whole context.
    model = bert.build_squad_model(checkpoints.resolve_config(str(output_dir)))
    checkpoints.initialize_from_checkpoint(model, str(output_dir))
    arrays = {
        key: np.array([getattr(f, key) for f in features], np.int32)
        for key in squad.MODEL_INPUT_KEYS
    }
    logits = [model(arrays, training=False)[k].numpy() for k in ("start_logits", "end_logits")]
    # Context: the second segment without its closing [SEP].
    real = arrays["input_mask"].sum(axis=1)
    context = (arrays["segment_ids"] == 1) & (np.arange(SEQ_LENGTH) < (real - 1)[:, None])

    tolerance = 1e-3  # the run predicted in batches cut to their longest window
    for n, feature in enumerate(features):
        qas_id = examples[feature.example_index].qas_id
        start_logits, end_logits = logits[0][n], logits[1][n]
        spans = candidate_spans(start_logits, end_logits, context[n])
        text = {
            (i, j): squashed(" ".join(feature.tokens[i : j + 1]).replace(" ##", ""))
            for _, i, j in spans
            if "[UNK]" not in feature.tokens[i : j + 1]
        }
        entries = nbest[qas_id]
        assert spans and 1 <= len(entries) <= 20, qas_id
        # The answer is the text of the best span (or of one within rounding of it).
        best = [(i, j) for score, i, j in spans if score > spans[0][0] - tolerance]
        assert predictions[qas_id], qas_id
        if all(span in text for span in best):
            assert squashed(predictions[qas_id]) in {text[span] for span in best}, qas_id
        # Each entry is a span: its logits are the model's at the span's ends.
        scores = []
        for entry in entries:
            match = [
                score
                for score, i, j in spans
                if abs(start_logits[i] - entry["start_logit"]) < tolerance
                and abs(end_logits[j] - entry["end_logit"]) < tolerance
            ]
            assert match, (qas_id, entry)
            scores.append(match[0])
        assert scores[0] > spans[0][0] - tolerance  # The first entry is the best span.
        expected = np.exp(np.array(scores) - max(scores))
        np.testing.assert_allclose(
            [entry["probability"] for entry in entries], expected / expected.sum(), atol=1e-3
        )
        # A span above the last entry is in the n-best, or shares an entry's text.
        listed = {squashed(entry["text"]) for entry in entries}
        for score, i, j in spans:
            if score > scores[-1] + tolerance and (i, j) in text:
                assert text[i, j] in listed, (qas_id, i, j)

    recomputed = squad_metric.evaluate(fine_tuned["eval_articles"], predictions)
    assert recomputed["f1"] == pytest.approx(results["f1"])
    assert recomputed["exact_match"] == pytest.approx(results["exact_match"])
    assert tf.train.latest_checkpoint(str(output_dir)).endswith(f"ckpt-{NUM_TRAIN_STEPS}")
    assert list((output_dir / "eval").iterdir()) and list((output_dir / "train").iterdir())


@pytest.mark.slow
def test_prediction_without_padding_matches_every_window_padded_to_the_maximum(fine_tuned):
    """Padding is masked: predicting in length buckets (XLA) or in batches cut to their longest
    window (the TF graph, the default off TPU) gives the answers and n-best probabilities of
    predicting every window at max_seq_length, with fewer tokens computed."""
    modes = {
        "full_length": ["--predict_jit_compile", "--bucket_lengths="],
        "bucketed": ["--predict_jit_compile", "--bucket_lengths=64,96"],
        "cut_to_longest": [],
    }
    outputs = {}
    for name, flags in modes.items():
        output_dir = fine_tuned["output_dir"].parent / f"predict_{name}"
        scores = run_main(
            [
                f"--init_checkpoint={fine_tuned['output_dir']}",
                "--do_predict",
                f"--predict_file={fine_tuned['eval']}",
                f"--output_dir={output_dir}",
            ]
            + flags
            + FINE_TUNE_FLAGS
        )
        outputs[name] = (scores, output_dir)
    plain, plain_dir = outputs["full_length"]
    assert plain["bucket_lengths"] == [SEQ_LENGTH] and plain["padded_length"] == SEQ_LENGTH
    # 64 holds fewer windows than a predict batch (32), so it joins 96.
    assert outputs["bucketed"][0]["bucket_lengths"] == [96, SEQ_LENGTH]
    assert outputs["cut_to_longest"][0]["bucket_lengths"] is None
    assert not outputs["cut_to_longest"][0]["xla"] and plain["xla"]
    assert (
        outputs["cut_to_longest"][0]["padded_length"]
        < outputs["bucketed"][0]["padded_length"]
        < SEQ_LENGTH
    )
    # The eval record is sorted by real length (what makes cut batches short).
    lengths = [
        int(np.sum(tf.train.Example.FromString(r).features.feature["input_mask"].int64_list.value))
        for r in tf.data.TFRecordDataset(str(plain_dir / "eval.tf_record")).as_numpy_iterator()
    ]
    assert lengths == sorted(lengths) and len(lengths) == plain["num_features"]
    nbest_plain = read_json(plain_dir / "nbest_predictions.json")
    for name in ("bucketed", "cut_to_longest"):
        scores, output_dir = outputs[name]
        assert read_json(output_dir / "predictions.json") == read_json(
            plain_dir / "predictions.json"
        )
        assert scores["f1"] == plain["f1"] and scores["num_features"] == plain["num_features"]
        nbest = read_json(output_dir / "nbest_predictions.json")
        for qas_id, entries in nbest_plain.items():
            got = [entry["probability"] for entry in nbest[qas_id]]
            np.testing.assert_allclose(got, [entry["probability"] for entry in entries], atol=1e-4)


@pytest.mark.slow
def test_saved_model_answers_raw_strings_like_the_python_pipeline(fine_tuned, capsys):
    predictions = read_json(fine_tuned["output_dir"] / "predictions.json")
    serve = squad_export.load(fine_tuned["export_dir"])
    questions, contexts, ids = [], [], []
    for article in fine_tuned["eval_articles"]:
        for paragraph in article["paragraphs"]:  # Each fits one window: no truncation.
            for qa in paragraph["qas"]:
                questions.append(qa["question"])
                contexts.append(paragraph["context"])
                ids.append(qa["id"])
    out = serve(question=tf.constant(questions), context=tf.constant(contexts))
    answers = [a.decode("utf-8") for a in out["answer"].numpy()]
    starts, ends = out["start_byte"].numpy(), out["end_byte"].numpy()
    for answer, context, start, end in zip(answers, contexts, starts, ends):
        assert answer and answer in context
        assert context.encode("utf-8")[start:end].decode("utf-8") == answer
    same = [a == predictions[i] for a, i in zip(answers, ids)]
    # The Python pipeline keeps the top-20 starts/ends; the export takes the overall best pair.
    assert np.mean(same) > 0.95, [
        (a, predictions[i]) for a, i in zip(answers, ids) if a != predictions[i]
    ]

    # The demo command answers one question about one paragraph.
    run_main(
        [
            f"--export_dir={fine_tuned['export_dir']}",
            "--do_serve_demo",
            f"--question={questions[0]}",
            f"--context={contexts[0]}",
        ]
    )
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["answer"] == answers[0]


def test_offset_tokenizer_matches_reference_wordpieces(shared_data, minilm_vocab):
    reference = read_json(shared_data / "reference" / "wordpiece_reference_visible.json")
    entries = reference["entries"]
    texts = [e["text"] for e in entries]
    tokenizer = squad_export.OffsetWordpieceTokenizer(minilm_vocab, do_lower_case=True)
    full = tokenization.FullTokenizer(minilm_vocab, do_lower_case=True)
    ids, starts, ends = tokenizer.tokenize_with_offsets(tf.constant(texts))
    checked = 0
    for i, entry in enumerate(entries):
        assert ids[i].numpy().tolist() == entry["ids"], entry["text"]
        raw = entry["text"].encode("utf-8")
        tokens = entry["tokens"]
        for j, (start, end) in enumerate(zip(starts[i].numpy(), ends[i].numpy())):
            whole_word = not tokens[j].startswith("##") and (
                j + 1 == len(tokens) or not tokens[j + 1].startswith("##")
            )
            if whole_word and tokens[j] != "[UNK]":
                # The original text under a whole-word piece tokenizes back to that piece.
                assert full.tokenize(raw[start:end].decode("utf-8")) == [tokens[j]]
                checked += 1
    assert checked > 3000


def test_offset_tokenizer_on_context_dependent_and_multi_byte_text(minilm_vocab):
    """Final sigma (depends on neighbours), CJK, accents, dropped control characters."""
    texts = [
        "ΟΔΥΣΣΕΥΣ sailed; Σ alone, ΣΑΣ.",
        "Tōkyō 東京 is big",
        "naïve\u200bcafé\x00 résumé",
    ]
    tokenizer = squad_export.OffsetWordpieceTokenizer(minilm_vocab, do_lower_case=True)
    full = tokenization.FullTokenizer(minilm_vocab, do_lower_case=True)
    ids, starts, ends = tokenizer.tokenize_with_offsets(tf.constant(texts))
    for i, text in enumerate(texts):
        tokens = full.tokenize(text)
        assert ids[i].numpy().tolist() == full.convert_tokens_to_ids(tokens), text
        raw = text.encode("utf-8")
        pieces = [raw[a:b].decode("utf-8") for a, b in zip(starts[i].numpy(), ends[i].numpy())]
        for token, piece in zip(tokens, pieces):
            if token != "[UNK]" and not token.startswith("##"):
                # Each word-initial piece's original bytes normalize to text starting with it.
                assert "".join(full.basic_tokenizer.tokenize(piece)).startswith(token), (
                    text,
                    token,
                    piece,
                )


class _Killed(Exception):
    pass


def _latest_tensors(directory):
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(directory)))
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if name != "_CHECKPOINTABLE_OBJECT_GRAPH"
    }


def train_log(output_dir):
    """The entries of output_dir/train_log.jsonl, one per host call."""
    lines = pathlib.Path(output_dir, "train_log.jsonl").read_text("utf-8").splitlines()
    return [json.loads(line) for line in lines]


def checkpoint_step(path):
    """The optimizer's update count saved in the training-state checkpoint `path`."""
    reader = tf.train.load_checkpoint(path)
    names = [
        name
        for name in reader.get_variable_to_shape_map()
        if name.startswith("optimizer/") and "iterations/" in name
    ]
    assert len(names) == 1, names
    return int(reader.get_tensor(names[0]))


@pytest.mark.slow
def test_killed_fine_tuning_resumes_to_the_same_weights(
    tmp_path, shared_data, minilm_vocab, monkeypatch, caplog
):
    """Stopped right after the step-4 save, rerun: the weights equal an uninterrupted run's."""
    tokenizer = tokenization.FullTokenizer(minilm_vocab, do_lower_case=True)
    train = json.loads((shared_data / "squad" / "train-v1.1-subset.json").read_text("utf-8"))
    articles = short_paragraphs(train, tokenizer, SEQ_LENGTH, count=6)
    num_questions = sum(len(p["qas"]) for a in articles for p in a["paragraphs"])
    config = bert.BertConfig(
        vocab_size=len(tokenizer.vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=SEQ_LENGTH,
    )
    config_file = tmp_path / "bert_config.json"
    config.to_json_file(str(config_file))
    common = [
        f"--bert_config_file={config_file}",
        f"--vocab_file={minilm_vocab}",
        "--do_train",
        f"--train_file={write_squad(tmp_path / 'train.json', articles)}",
        f"--max_seq_length={SEQ_LENGTH}",
        "--train_batch_size=8",
        "--learning_rate=1e-3",
        f"--num_train_epochs={(8 * 8 + 0.5) / num_questions}",  # 8 steps
        "--iterations_per_loop=3",
        "--save_checkpoints_steps=4",
        "--seed=3",
        "--bucket_compile_steps=0",  # Buckets for free: a tiny model would get one.
    ]
    run_main(common + [f"--output_dir={tmp_path / 'straight'}"])

    save = tf.train.CheckpointManager.save

    def save_then_die(manager, checkpoint_number=None, **kwargs):
        path = save(manager, checkpoint_number=checkpoint_number, **kwargs)
        if checkpoint_number == 4:
            raise _Killed(path)
        return path

    resumed = tmp_path / "resumed"
    monkeypatch.setattr(tf.train.CheckpointManager, "save", save_then_die)
    with pytest.raises(_Killed):
        run_main(common + [f"--output_dir={resumed}"])
    monkeypatch.undo()
    state = resumed / squad_task.TRAIN_STATE
    assert tf.train.latest_checkpoint(str(state)).endswith("ckpt-4")
    saved_step = checkpoint_step(tf.train.latest_checkpoint(str(state)))
    assert saved_step == 4
    assert tf.train.latest_checkpoint(str(resumed)) is None  # no fine-tuned model yet
    killed_log = train_log(resumed)
    assert [entry["step"] for entry in killed_log] == [3, 4]
    with caplog.at_level(logging.INFO, logger="absl"):
        run_main(common + [f"--output_dir={resumed}"])
    assert f"at step {saved_step}" in caplog.text and "Resumed from" in caplog.text
    # It went on from the checkpoint: its first host call ended --iterations_per_loop (3)
    # updates after the checkpoint's step (a restart from 0 would log step 3 again, and reach
    # the same weights).
    resumed_log = train_log(resumed)[len(killed_log) :]
    assert resumed_log[0]["step"] == saved_step + 3
    assert [entry["step"] for entry in resumed_log] == [7, 8]

    assert tf.train.latest_checkpoint(str(state)).endswith("ckpt-8")
    # Length buckets (the default) are what resumed: several shapes, each skipping its batches.
    assert len(read_json(resumed / "train_buckets.json")["bucket_lengths"]) > 1
    a, b = _latest_tensors(tmp_path / "straight"), _latest_tensors(resumed)
    assert a.keys() == b.keys() and len(a) > 10
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-6, atol=1e-7, err_msg=name)


# ----------------------------------------------------------------------------------------------
# Bad input


def test_malformed_squad_files_fail_with_the_file_and_field(tmp_path, shared_data, minilm_dir):
    train = json.loads((shared_data / "squad" / "train-v1.1-subset.json").read_text("utf-8"))
    paragraph = train["data"][0]["paragraphs"][0]
    qa = paragraph["qas"][0]
    missing = json.loads(json.dumps(paragraph))
    del missing["qas"][0]["question"]
    misaligned = json.loads(json.dumps(paragraph))
    misaligned["qas"][0]["answers"][0]["answer_start"] += 3
    for name, bad, pattern in (
        (
            "missing.json",
            missing,
            rf"missing\.json: .*question id {qa['id']}: missing field "
            r"'question'",
        ),
        (
            "misaligned.json",
            misaligned,
            r"misaligned\.json: .*'answers\[0\]\.answer_start' = "
            rf"{qa['answers'][0]['answer_start'] + 3} does not point",
        ),
    ):
        path = write_squad(tmp_path / name, [{"title": "t", "paragraphs": [bad]}])
        with pytest.raises(squad.SquadFormatError, match=pattern):
            run_main(
                [
                    f"--init_checkpoint={minilm_dir}",
                    "--do_train",
                    f"--train_file={path}",
                    f"--output_dir={tmp_path / 'out'}",
                ]
            )


def tiny_config(intermediate_size=64):
    return bert.BertConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=intermediate_size,
    )


def test_init_from_pretraining_checkpoint_and_shape_errors(tmp_path, minilm_dir):
    # A checkpoint as bert/pretraining.py writes it: model (with heads) + optimizer.
    pretraining_model = bert.build_pretraining_model(tiny_config())
    optimizer = optimization.create_optimizer("lamb", 1e-3)
    optimizer.build(pretraining_model.trainable_variables)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=pretraining_model, optimizer=optimizer),
        str(tmp_path / "pt"),
        max_to_keep=1,
    )
    manager.save(checkpoint_number=7)
    squad_model = bert.build_squad_model(tiny_config())
    what = checkpoints.initialize_from_checkpoint(squad_model, str(tmp_path / "pt"))
    assert "pretrained encoder" in what and what.endswith("ckpt-7")
    for restored, original in zip(squad_model.encoder.weights, pretraining_model.encoder.weights):
        np.testing.assert_array_equal(restored.numpy(), original.numpy())

    wrong = bert.build_squad_model(tiny_config(intermediate_size=48))
    with pytest.raises(
        ValueError,
        match=r"ckpt-7.*shape \(32, 64\).*shape \(32, 48\).*"
        r"intermediate",
    ):
        checkpoints.initialize_from_checkpoint(wrong, str(tmp_path / "pt"))

    # A Hugging Face directory whose tensors do not fit its config: named by load_pretrained.
    hf_dir = tmp_path / "hf"
    hf_dir.mkdir()
    config = read_json(minilm_dir / "config.json")
    config["intermediate_size"] = 1024
    (hf_dir / "config.json").write_text(json.dumps(config))
    (hf_dir / "model.safetensors").symlink_to(minilm_dir / "model.safetensors")
    model = bert.build_squad_model(bert.BertConfig.from_json_file(hf_dir / "config.json"))
    with pytest.raises(ValueError, match=r"intermediate.*\[384, 1536\].*\[384, 1024\]"):
        checkpoints.initialize_from_checkpoint(model, str(hf_dir))


def test_loss_is_the_global_batch_mean_of_start_and_end_cross_entropy():
    rng = np.random.default_rng(0)
    start, end = rng.normal(size=(2, 4, 10)).astype(np.float32)
    labels_start, labels_end = np.array([0, 3, 9, 2]), np.array([1, 3, 9, 5])

    def ce(logits, labels):
        logits = logits - logits.max(-1, keepdims=True)
        return -(logits[np.arange(4), labels] - np.log(np.exp(logits).sum(-1)))

    expected = (ce(start, labels_start).mean() + ce(end, labels_end).mean()) / 2
    outputs = {"start_logits": tf.constant(start), "end_logits": tf.constant(end)}
    batch = {
        "start_positions": tf.constant(labels_start, tf.int32),
        "end_positions": tf.constant(labels_end, tf.int32),
    }
    # One replica holding the whole batch, or two halves each scaled to the global batch of 4.
    np.testing.assert_allclose(squad_task.squad_loss(outputs, batch, 4), expected, rtol=1e-6)
    halves = [
        squad_task.squad_loss(
            {k: v[i : i + 2] for k, v in outputs.items()},
            {k: v[i : i + 2] for k, v in batch.items()},
            4,
        )
        for i in (0, 2)
    ]
    np.testing.assert_allclose(sum(halves), expected, rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("bucketed", [False, True], ids=["one_shape", "length_buckets"])
def test_mirrored_training_matches_one_device(
    tmp_path, shared_data, minilm_vocab, mirrored_strategy, bucketed
):
    """Per-replica losses scaled to the global batch: 2 replicas take the same steps as 1,
    also in length buckets (both replicas draw the scheduled bucket at every step)."""
    import keras

    train = json.loads((shared_data / "squad" / "train-v1.1-subset.json").read_text("utf-8"))
    path = write_squad(
        tmp_path / "train.json", [{"title": "t", "paragraphs": train["data"][1]["paragraphs"][:3]}]
    )
    tokenizer = tokenization.FullTokenizer(minilm_vocab, do_lower_case=True)
    _, lengths = squad_task.prepare_train_data(
        path,
        tokenizer,
        str(tmp_path),
        seed=0,
        max_seq_length=64,
        doc_stride=32,
        max_query_length=16,
    )
    buckets = length_buckets.merge_small_buckets(lengths, [32, 48, 64], 8) if bucketed else [64]
    assert (len(buckets) > 1) == bucketed
    sizes = np.bincount(length_buckets.assign_buckets(lengths, buckets))
    # A seed whose 4 steps visit several buckets.
    seed = next(
        s
        for s in range(100)
        if len(set(length_buckets.bucket_schedule(sizes, 8, 4, s))) == len(buckets)
    )
    record = str(tmp_path / "train.tf_record")
    train_input = squad_task.training_input(record, 8, 64, seed, buckets, sizes, num_train_steps=4)
    if bucketed:
        assert len(set(train_input.schedule.tolist())) > 1
    config = bert.BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    initial, losses, trained = None, {}, {}
    for name, strategy in (
        ("one_device", tf.distribute.OneDeviceStrategy("/cpu:0")),
        ("mirrored", mirrored_strategy),
    ):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = bert.build_squad_model(config)
            if initial is None:
                initial = [w.numpy() for w in model.weights]
            for weight, value in zip(model.weights, initial):
                weight.assign(value)
            optimizer, schedule = squad_task.create_optimizer_and_schedule(
                "adamw", "original_bert", 1e-3, num_train_steps=4, num_warmup_steps=1
            )
            optimizer.build(squad_task.trainable_variables(model))

        trainer = trainer_lib.Trainer(
            strategy,
            model,
            optimizer,
            schedule,
            squad_task.SquadTask(),
            trainer_lib.TrainerOptions(
                model_dir=str(tmp_path / name),
                num_train_steps=4,
                train_batch_size=8,
                steps_per_loop=2,
                save_checkpoints_steps=0,
            ),
        )
        losses[name] = trainer.train(train_input)["loss"]
        assert int(optimizer.iterations.numpy()) == 4
        trained[name] = [w.numpy() for w in model.trainable_weights]
    assert losses["mirrored"] == pytest.approx(losses["one_device"], rel=1e-4)
    moved = max(np.abs(a - b).max() for a, b in zip(trained["one_device"], initial))
    assert moved > 1e-3
    for one, two in zip(trained["one_device"], trained["mirrored"]):
        np.testing.assert_allclose(two, one, atol=1e-5)


@pytest.mark.slow
def test_mirrored_prediction_matches_one_device(fine_tuned, mirrored_strategy):
    """2 replicas predict what 1 device predicts, in batches cut to their longest window (each
    replica gets half of a cut batch) and in XLA length buckets."""
    output_dir = str(fine_tuned["output_dir"])
    record = os.path.join(output_dir, "eval.tf_record")
    length_of = {}
    for r in tf.data.TFRecordDataset(record).as_numpy_iterator():
        feature = tf.train.Example.FromString(r).features.feature
        length_of[feature["unique_ids"].int64_list.value[0]] = sum(
            feature["input_mask"].int64_list.value
        )
    lengths = list(length_of.values())
    bucket_choice = dict(
        max_seq_length=SEQ_LENGTH, bucket_lengths="96", num_buckets=2, compile_steps=0
    )
    config = checkpoints.resolve_config(output_dir)
    logits = {}
    for compiled in (False, True):
        for name, strategy in (
            ("one_device", tf.distribute.OneDeviceStrategy("/cpu:0")),
            ("mirrored", mirrored_strategy),
        ):
            with strategy.scope():
                model = bert.build_squad_model(config)
            checkpoints.initialize_from_checkpoint(model, output_dir)
            step = squad_task.make_predict_step(strategy, model, compiled)
            buckets = None
            if compiled:
                buckets = squad_task.prediction_buckets(strategy, lengths, 8, config, bucket_choice)
            inputs = squad_task.prediction_inputs(strategy, record, lengths, 8, SEQ_LENGTH, buckets)
            assert (buckets == [96, SEQ_LENGTH]) if compiled else buckets is None
            results = [
                r
                for dataset, n in inputs
                for r in squad_task.predict_results(strategy, step, dataset, n)
            ]
            assert len(results) == len(lengths) == len({r.unique_id for r in results})
            logits[compiled, name] = {r.unique_id: r.start_logits for r in results}
    reference = logits[True, "one_device"]
    for key, by_id in logits.items():
        for uid, values in by_id.items():
            n = length_of[uid]
            assert min(len(values), len(reference[uid])) >= n
            np.testing.assert_allclose(values[:n], reference[uid][:n], atol=1e-4, err_msg=str(key))


# ----------------------------------------------------------------------------------------------
# Vocabularies


def tiny_squad_setup(tmp_path, shared_data, vocab_size, count=4):
    train = json.loads((shared_data / "squad" / "train-v1.1-subset.json").read_text("utf-8"))
    articles = [{"title": "t", "paragraphs": train["data"][1]["paragraphs"][:count]}]
    config = bert.BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=SEQ_LENGTH,
    )
    config_file = tmp_path / "bert_config.json"
    config.to_json_file(str(config_file))
    return write_squad(tmp_path / "train.json", articles), articles, str(config_file)


@pytest.mark.slow
def test_sentencepiece_model_fine_tunes_and_predicts_original_text(tmp_path, shared_data):
    """--spm_model_file (as ALBERT): a model learned by data.learn_vocab, train + predict."""
    from data import vocab_learning as learn_vocab

    lines = (shared_data / "text" / "wiki_squad_contexts.txt").read_text("utf-8").splitlines()
    model_file = learn_vocab.train_sentencepiece(lines, str(tmp_path / "spm.model"), 2000)
    size = tokenization.create_tokenizer(spm_model_file=model_file).vocab_size
    train_file, articles, config_file = tiny_squad_setup(tmp_path, shared_data, size)
    output_dir = tmp_path / "out"
    scores = run_main(
        [
            f"--bert_config_file={config_file}",
            f"--spm_model_file={model_file}",
            "--do_train",
            "--do_predict",
            f"--train_file={train_file}",
            f"--predict_file={train_file}",
            f"--output_dir={output_dir}",
            f"--max_seq_length={SEQ_LENGTH}",
            "--doc_stride=64",
            "--train_batch_size=8",
            "--predict_batch_size=8",
            "--num_train_epochs=0.5",
        ]
    )
    questions = {
        qa["id"]: p["context"] for a in articles for p in a["paragraphs"] for qa in p["qas"]
    }
    assert scores["num_predictions"] == scores["num_questions"] == len(questions)
    predictions = read_json(output_dir / "predictions.json")
    # Answers are cut from the original context, whatever the pieces looked like, and every
    # question gets one (an empty string is in every context).
    for qas_id, context in questions.items():
        assert predictions[qas_id] and predictions[qas_id] in context, qas_id
    assert (output_dir / "spm.model").is_file() and scores["global_step"] > 0


def test_vocabulary_larger_than_the_model_is_refused(tmp_path, shared_data, minilm_vocab):
    train_file, _, config_file = tiny_squad_setup(tmp_path, shared_data, vocab_size=1737)
    with pytest.raises(ValueError, match=r"vocab\.txt has 30522 entries .* vocab_size is 1737"):
        run_main(
            [
                f"--bert_config_file={config_file}",
                f"--vocab_file={minilm_vocab}",
                "--do_train",
                f"--train_file={train_file}",
                f"--output_dir={tmp_path / 'out'}",
                f"--max_seq_length={SEQ_LENGTH}",
            ]
        )


def test_vocabulary_without_bert_special_tokens_is_refused(tmp_path, shared_data, minilm_vocab):
    lines = minilm_vocab.read_text("utf-8").splitlines()
    no_mask = tmp_path / "vocab.txt"
    no_mask.write_text("\n".join(t for t in lines if t != "[MASK]") + "\n", "utf-8")
    train_file, _, config_file = tiny_squad_setup(tmp_path, shared_data, vocab_size=30522)
    with pytest.raises(ValueError, match=r"vocab\.txt: missing required token\(s\) \['\[MASK\]'\]"):
        run_main(
            [
                f"--bert_config_file={config_file}",
                f"--vocab_file={no_mask}",
                "--do_train",
                f"--train_file={train_file}",
                f"--output_dir={tmp_path / 'out'}",
                f"--max_seq_length={SEQ_LENGTH}",
            ]
        )


def test_saved_model_export_refuses_a_vocabulary_larger_than_the_model(tmp_path, minilm_vocab):
    config = bert.BertConfig(
        vocab_size=1737,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=SEQ_LENGTH,
    )
    with pytest.raises(ValueError, match=r"30522 entries but the model's vocab_size is 1737"):
        squad_export.export_saved_model(
            bert.build_squad_model(config), str(minilm_vocab), str(tmp_path / "export")
        )
    assert not (tmp_path / "export").exists()


# ----------------------------------------------------------------------------------------------
# The step of a fine-tuned model, several predict files, the spread over seeds


def first_questions(shared_data, name, tmp_path, count):
    """A SQuAD file of the first `count` questions of shared_data/squad/NAME (one paragraph)."""
    source = read_json(shared_data / "squad" / name)["data"][0]
    paragraph = dict(source["paragraphs"][0], qas=source["paragraphs"][0]["qas"][:count])
    articles = [{"title": source["title"], "paragraphs": [paragraph]}]
    return write_squad(tmp_path / name, articles), articles


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, shared_data, minilm_vocab):
    """A tiny model fine-tuned for 3 steps, and two small predict files (XQuAD, SQuAD dev)."""
    tmp_path = tmp_path_factory.mktemp("tiny_squad")
    train_file, _, config_file = tiny_squad_setup(tmp_path, shared_data, vocab_size=30522)
    common = [
        f"--vocab_file={minilm_vocab}",
        f"--max_seq_length={SEQ_LENGTH}",
        "--doc_stride=64",
        "--train_batch_size=8",
        "--predict_batch_size=8",
    ]
    train = common + [
        f"--bert_config_file={config_file}",
        "--do_train",
        f"--train_file={train_file}",
        "--num_train_epochs=0.5",  # int(57 / 8 * 0.5) = 3 steps
    ]
    run_main(train + [f"--output_dir={tmp_path / 'fine_tuned'}"])
    predict = {
        name: first_questions(shared_data, f"{name}.json", tmp_path, count)
        for name, count in (("xquad-en-v1.1", 4), ("dev-v1.1-answerable-subset", 3))
    }
    return {"dir": tmp_path, "common": common, "train": train, "predict": predict, "steps": 3}


@pytest.mark.slow
def test_predicting_from_a_fine_tuned_model_reports_its_step(tiny_run):
    fine_tuned = tiny_run["dir"] / "fine_tuned"
    predict_file = tiny_run["predict"]["xquad-en-v1.1"][0]
    checkpoint = tf.train.latest_checkpoint(str(fine_tuned))
    for output_dir, init in (
        (fine_tuned, []),  # the fine-tuned output_dir itself
        (tiny_run["dir"] / "from_dir", [f"--init_checkpoint={fine_tuned}"]),
        (tiny_run["dir"] / "from_prefix", [f"--init_checkpoint={checkpoint}"]),
    ):
        scores = run_main(
            tiny_run["common"]
            + init
            + ["--do_predict", f"--predict_file={predict_file}", f"--output_dir={output_dir}"]
        )
        assert scores["global_step"] == tiny_run["steps"], output_dir
        assert read_json(output_dir / "eval_results.json")["global_step"] == tiny_run["steps"]


@pytest.mark.slow
def test_several_predict_files_get_a_directory_each_and_a_combined_json(tiny_run):
    output_dir = tiny_run["dir"] / "two_files"
    files = {name: path for name, (path, _) in tiny_run["predict"].items()}
    results = run_main(
        tiny_run["common"]
        + [
            f"--init_checkpoint={tiny_run['dir'] / 'fine_tuned'}",
            "--do_predict",
            f"--predict_file={','.join(files.values())}",
            f"--output_dir={output_dir}",
        ]
    )
    combined = read_json(output_dir / "eval_results_by_file.json")
    assert set(results) == set(combined) == set(files)
    assert not (output_dir / "eval_results.json").exists()
    for name, (path, articles) in tiny_run["predict"].items():
        directory = output_dir / "predictions" / name
        predictions = read_json(directory / "predictions.json")
        ids = {qa["id"] for a in articles for p in a["paragraphs"] for qa in p["qas"]}
        assert set(predictions) == set(read_json(directory / "nbest_predictions.json")) == ids
        scores = read_json(directory / "eval_results.json")
        recomputed = squad_metric.evaluate(articles, predictions)
        assert scores["f1"] == pytest.approx(recomputed["f1"])
        assert scores["exact_match"] == pytest.approx(recomputed["exact_match"])
        assert (
            combined[name]
            == {"predict_file": path, **scores}
            == {"predict_file": path, **results[name]}
        )
        assert scores["num_questions"] == len(ids) and scores["global_step"] == tiny_run["steps"]
        assert list((directory / "eval").iterdir())


@pytest.mark.slow
def test_seeds_fine_tune_once_each_and_report_the_spread(tiny_run):
    import statistics

    output_dir = tiny_run["dir"] / "seeds"
    files = ",".join(path for path, _ in tiny_run["predict"].values())
    spread = run_main(
        tiny_run["train"]
        + [
            "--do_predict",
            f"--predict_file={files}",
            f"--output_dir={output_dir}",
            "--seeds=1,2",
        ]
    )
    assert read_json(output_dir / "seed_spread.json") == spread
    assert spread["seeds"] == [1, 2] and set(spread["predict_files"]) == set(tiny_run["predict"])
    for name, metrics in spread["predict_files"].items():
        per_seed = [
            read_json(output_dir / f"seed_{seed}" / "predictions" / name / "eval_results.json")
            for seed in (1, 2)
        ]
        assert all(r["global_step"] == tiny_run["steps"] for r in per_seed)
        for metric in ("exact_match", "f1"):
            values = [r[metric] for r in per_seed]
            assert metrics[metric]["values"] == values
            assert metrics[metric]["mean"] == pytest.approx(statistics.mean(values))
            assert metrics[metric]["std"] == pytest.approx(statistics.stdev(values))
            assert metrics[metric]["min"] == min(values) and metrics[metric]["max"] == max(values)
    # Different seeds, different fine-tunings of the same initial encoder.
    one, two = (_latest_tensors(output_dir / f"seed_{seed}") for seed in (1, 2))
    assert one.keys() == two.keys()
    assert any(not np.array_equal(one[k], two[k]) for k in one)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--seeds=1,x"], "comma-separated integers"),
        (["--seeds=1,1"], "repeats a seed"),
        (["--seeds=1,2", "--do_predict=false"], "needs --do_train and --do_predict"),
        (["--predict_file=a/dev.json,b/dev.json"], r"named by file stem"),
    ],
)
def test_seeds_and_predict_files_flags_are_checked(flags, message):
    argv = ["--do_train", "--do_predict", "--train_file=t.json", "--predict_file=p.json"]
    with pytest.raises(app.UsageError, match=message):
        run_main(argv + ["--output_dir=/nonexistent"] + flags)


@pytest.mark.slow
def test_fp16_fine_tuning_skips_overflowed_steps_and_halves_the_loss_scale(tiny_run, monkeypatch):
    """fp16 goes through the trainer's dynamic loss scaling, as in pretraining. Started at a
    scale that overflows fp16 gradients, every overflowed step is skipped (no update: the step
    count stays) and halves the scale, until the gradients fit; then the updates go on at that
    scale and the run ends with its 3 updates."""
    huge = 2.0**32  # x the loss gradient (up to ~1/16 per logit): far beyond fp16's 65504

    @dataclasses.dataclass
    class Overflowing(trainer_lib.TrainerOptions):
        initial_loss_scale: float = huge

    monkeypatch.setattr(trainer_lib, "TrainerOptions", Overflowing)
    output_dir = tiny_run["dir"] / "fp16"
    predict_file = tiny_run["predict"]["xquad-en-v1.1"][0]
    scores = run_main(
        tiny_run["train"]
        + [
            "--mixed_precision=fp16",
            "--iterations_per_loop=1",  # a log entry per step
            "--do_predict",
            f"--predict_file={predict_file}",
            f"--output_dir={output_dir}",
        ]
    )
    log = train_log(output_dir)
    assert all(math.isfinite(entry["loss"]) for entry in log)
    # The first step overflowed: skipped, and the scale halved.
    assert log[0]["step"] == 0 and log[0]["loss_scale"] == huge / 2
    skipped = 0
    for before, after in zip([{"step": 0, "loss_scale": huge}, *log], log):
        if after["step"] == before["step"]:
            assert after["loss_scale"] == before["loss_scale"] / 2, after
            skipped += 1
        else:  # An update at an unchanged scale (growth needs 2000 good steps).
            assert after["step"] == before["step"] + 1, after
            assert after["loss_scale"] == before["loss_scale"], after
    assert log[-1]["step"] == tiny_run["steps"] and len(log) == tiny_run["steps"] + skipped
    assert log[-1]["loss_scale"] == huge / 2**skipped
    state = tf.train.latest_checkpoint(str(output_dir / squad_task.TRAIN_STATE))
    assert checkpoint_step(state) == tiny_run["steps"]
    assert scores["global_step"] == tiny_run["steps"] and 0 <= scores["f1"] <= 100
