"""The two-phase pretraining trainer on a tiny BERT, on real text and under real strategies."""

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import PRED1, PRED2, REPO_ROOT, SEQ1, SEQ2, tiny_config

import bert
import optimization
from bert.tasks import pretraining
from bert.training import trainer as trainer_lib
from data import pretraining_instances, pretraining_records, tokenization


def write_experiment(path, phase1_steps=40, phase2_steps=6, dropout=0.0):
    """A tiny two-phase experiment in the configs/ format."""

    def phase(name, batch, seq, pred, steps, lr, warmup):
        return {
            "name": name,
            "train_batch_size": batch,
            "max_seq_length": seq,
            "max_predictions_per_seq": pred,
            "num_train_steps": steps,
            "optimizer": {"name": "lamb", "weight_decay": 0.01, "clipnorm": 1.0},
            "schedule": {
                "kind": "warmup_poly",
                "init_lr": 0.0,
                "peak_lr": lr,
                "final_lr": 0.0,
                "warmup_steps": warmup,
                "total_steps": steps,
                "warmup_power": 1,
                "decay_power": 1,
            },
        }

    cfg_file = os.path.join(os.path.dirname(path), "bert_config.json")
    tiny_config(dropout=dropout).to_json_file(cfg_file)
    experiment = {
        "description": "test",
        "model": cfg_file,
        "phases": [
            phase("phase1", 16, SEQ1, PRED1, phase1_steps, 2e-2, min(8, phase1_steps // 2)),
            phase("phase2", 8, SEQ2, PRED2, phase2_steps, 1e-2, 4),
        ],
    }
    with open(path, "w") as f:
        json.dump(experiment, f)
    return path


def run_cli(*args, env=None, wait=True):
    cmd = [sys.executable, "-m", "bert.run_pretraining", *args]
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_DETERMINISTIC_OPS="1", **(env or {}))
    proc = subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if not wait:
        return proc
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-4000:]
    return out


def read_log(model_dir):
    with open(os.path.join(model_dir, "train_log.jsonl")) as f:
        return [json.loads(line) for line in f]


def checkpoint_values(model_dir):
    """Every saved tensor (weights, optimizer moments, step) of the latest checkpoint."""
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(model_dir))
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if name != "_CHECKPOINTABLE_OBJECT_GRAPH"
    }


# -----------------------------------------------------------------------------------------
# Command line: phase 1 on real text, phase 2 from phase 1 with re-warmup, kill + resume.


@pytest.fixture(scope="module")
def two_phase_run(tmp_path_factory, corpus_records):
    root = tmp_path_factory.mktemp("run")
    experiment = write_experiment(str(root / "experiment.json"))
    common = [f"--experiment={experiment}", "--steps_per_loop=5", "--max_eval_steps=4"]
    run_cli(
        *common,
        "--phase=1",
        f"--input_file={corpus_records['p1']}",
        f"--model_dir={root / 'phase1'}",
        "--save_checkpoints_steps=20",
    )
    run_cli(
        *common,
        "--phase=2",
        f"--input_file={corpus_records['p2']}",
        f"--model_dir={root / 'phase2'}",
        f"--init_checkpoint={root / 'phase1'}",
        "--steps_per_loop=1",
    )
    return root, experiment


@pytest.mark.parametrize("jit_compile", [False, True])
def test_pretraining_losses_match_numpy(jit_compile):
    """Losses and accuracy numerators against NumPy, written from the definitions."""
    rng = np.random.default_rng(3)
    b, p, v = 4, 5, 50
    logits = rng.normal(size=(b, p, v)).astype(np.float32)
    labels = rng.integers(0, v, (b, p)).astype(np.int32)
    labels[0, :3] = logits[0, :3].argmax(-1)  # some predictions are right
    weights = (rng.random((b, p)) < 0.7).astype(np.float32)
    weights[0, :3] = 1.0
    nsp_logits = rng.normal(size=(b, 2)).astype(np.float32)
    nsp_labels = rng.integers(0, 2, b).astype(np.int32)
    batch = {
        "masked_lm_ids": labels,
        "masked_lm_weights": weights,
        "next_sentence_labels": nsp_labels,
    }
    global_weight = weights.sum() * 2.0  # another replica holds as many positions

    fn = tf.function(pretraining.pretraining_losses, jit_compile=jit_compile)
    out = fn({"mlm_logits": logits, "nsp_logits": nsp_logits}, batch, global_weight, 2 * b)

    def cross_entropy(z, y):
        z = z.astype(np.float64)
        log_z = np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1)) + z.max(-1)
        return log_z - np.take_along_axis(z, y[..., None], -1)[..., 0]

    mlm = (cross_entropy(logits, labels) * weights).sum() / global_weight
    nsp = cross_entropy(nsp_logits, nsp_labels).sum() / (2 * b)
    np.testing.assert_allclose(out["mlm_loss"], mlm, rtol=1e-5)
    np.testing.assert_allclose(out["nsp_loss"], nsp, rtol=1e-5)
    np.testing.assert_allclose(out["loss"], mlm + nsp, rtol=1e-5)
    assert float(out["mlm_correct"]) == ((logits.argmax(-1) == labels) * weights).sum() >= 1
    assert float(out["mlm_weight"]) == weights.sum()
    assert float(out["nsp_correct"]) == (nsp_logits.argmax(-1) == nsp_labels).sum()
    assert float(out["examples"]) == b


@pytest.mark.slow
def test_phase1_lowers_loss_on_real_text(two_phase_run):
    root, _ = two_phase_run
    log = read_log(root / "phase1")
    assert [entry["step"] for entry in log] == list(range(5, 41, 5))
    first, last = log[0]["loss"], np.mean([e["loss"] for e in log[-2:]])
    # Untrained, the masked-LM loss is about ln(30522) = 10.3 (+ ln 2 for next-sentence).
    assert first > 9.0
    assert last < first - 0.5, (first, last)
    results = json.loads((root / "phase1" / "eval_results.json").read_text())
    assert results["step"] == 40 and 0.0 <= results["mlm_accuracy"] <= 1.0


def test_phase2_rewarms_learning_rate_from_zero(two_phase_run):
    root, experiment = two_phase_run
    schedule_cfg = dict(json.loads(pathlib.Path(experiment).read_text())["phases"][1]["schedule"])
    log = read_log(root / "phase2")
    assert [entry["step"] for entry in log] == [1, 2, 3, 4, 5, 6]
    peak, warmup, total = (
        schedule_cfg["peak_lr"],
        schedule_cfg["warmup_steps"],
        schedule_cfg["total_steps"],
    )
    for entry in log:
        t = entry["step"] - 1  # the update that produced this entry used step t of phase 2
        expected = peak * t / warmup if t <= warmup else peak * (total - t) / (total - warmup)
        assert entry["learning_rate"] == pytest.approx(expected, rel=1e-6, abs=1e-12)
    assert log[0]["learning_rate"] == 0.0
    phase_config = json.loads((root / "phase2" / "phase_config.json").read_text())
    assert phase_config["phase_config"]["max_seq_length"] == SEQ2


@pytest.mark.slow
def test_resume_after_kill_gives_same_weights(tmp_path, corpus_records):
    # With dropout: its generators' state must be in the checkpoint to resume exactly.
    experiment = write_experiment(str(tmp_path / "experiment.json"), phase1_steps=12, dropout=0.1)
    common = [
        f"--experiment={experiment}",
        "--phase=1",
        f"--input_file={corpus_records['p1']}",
        "--steps_per_loop=2",
        "--save_checkpoints_steps=4",
        "--do_eval=false",
    ]
    straight = tmp_path / "straight"
    run_cli(*common, f"--model_dir={straight}")

    killed = tmp_path / "killed"
    proc = run_cli(*common, f"--model_dir={killed}", wait=False)
    deadline = time.time() + 300
    while tf.train.latest_checkpoint(str(killed)) is None:
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.time() < deadline
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    interrupted_at = int(tf.train.latest_checkpoint(str(killed)).rsplit("-", 1)[1])
    assert proc.returncode == -signal.SIGKILL and interrupted_at < 12
    logged_before = len(read_log(killed))
    out = run_cli(*common, f"--model_dir={killed}")
    assert f"ckpt-{interrupted_at} at step {interrupted_at}" in out
    # The resumed run's host calls (2 updates each) go on from the checkpoint; a restart from
    # step 0 would log 2, 4, ... again.
    resumed_steps = [entry["step"] for entry in read_log(killed)[logged_before:]]
    assert resumed_steps == list(range(interrupted_at + 2, 13, 2))
    a, b = checkpoint_values(straight), checkpoint_values(killed)
    assert a.keys() == b.keys() and len(a) > 10
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-6, atol=1e-7, err_msg=name)


# -----------------------------------------------------------------------------------------
# In process: accumulation, replicas, phase-2 initialization, NaN stop.


def random_batches(num_examples, seq=32, pred=5, vocab=512, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(seq // 2, seq + 1, num_examples)
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int32)
    return {
        "input_ids": (rng.integers(1, vocab, (num_examples, seq)) * mask).astype(np.int32),
        "input_mask": mask,
        "segment_ids": ((np.arange(seq)[None, :] > lengths[:, None] // 2) * mask).astype(np.int32),
        "masked_lm_positions": np.sort(rng.integers(1, seq // 2, (num_examples, pred)), 1).astype(
            np.int32
        ),
        "masked_lm_ids": rng.integers(1, vocab, (num_examples, pred)).astype(np.int32),
        "masked_lm_weights": np.ones((num_examples, pred), np.float32),
        "next_sentence_labels": rng.integers(0, 2, num_examples).astype(np.int32),
    }


def train_in_process(
    strategy,
    model_dir,
    global_batch,
    accumulation,
    steps,
    initial_weights,
    optimizer_name="lamb",
    learning_rate=1e-2,
    examples=None,
    **trainer_kw,
):
    examples = random_batches(64) if examples is None else examples
    with strategy.scope():
        model = bert.build_pretraining_model(tiny_config(dropout=0.0, vocab_size=512))
        model.set_weights(initial_weights)
        schedule = optimization.create_schedule(
            "warmup_poly",
            init_lr=0.0,
            peak_lr=learning_rate,
            final_lr=0.0,
            warmup_steps=2,
            total_steps=steps,
            warmup_power=1,
            decay_power=1,
        )
        kwargs = {"gradient_accumulation_steps": accumulation} if accumulation > 1 else {}
        if trainer_kw.get("mixed_precision") == "fp16":
            kwargs["skip_nonfinite"] = True
        optimizer = optimization.create_optimizer(
            optimizer_name, schedule, weight_decay=0.01, clipnorm=1.0, **kwargs
        )
    micro = global_batch // accumulation

    def dataset_fn(ctx):
        ds = tf.data.Dataset.from_tensor_slices(examples).repeat()
        return ds.batch(ctx.get_per_replica_batch_size(micro), drop_remainder=True)

    options = trainer_lib.TrainerOptions(
        model_dir=str(model_dir),
        num_train_steps=steps,
        train_batch_size=global_batch,
        gradient_accumulation_steps=accumulation,
        steps_per_loop=trainer_kw.pop("steps_per_loop", 2),
        save_checkpoints_steps=trainer_kw.pop("save_checkpoints_steps", 100),
        jit_compile=True,
        mixed_precision=trainer_kw.pop("mixed_precision", "none"),
        initial_loss_scale=trainer_kw.pop("initial_loss_scale", 2.0**15),
    )
    trainer = trainer_lib.Trainer(
        strategy, model, optimizer, schedule, pretraining.PretrainingTask(), options
    )
    trainer.train(dataset_fn)
    return [w.numpy() for w in model.weights], trainer


@pytest.fixture(scope="module")
def initial_weights():
    keras.utils.set_random_seed(3)
    return [w.numpy() for w in bert.build_pretraining_model(tiny_config(0.0, 512)).weights]


def test_gradient_accumulation_equals_bigger_batch(tmp_path, initial_weights):
    one = tf.distribute.OneDeviceStrategy("/cpu:0")
    big, _ = train_in_process(one, tmp_path / "a", 16, 1, 4, initial_weights)
    accumulated, trainer = train_in_process(one, tmp_path / "b", 16, 4, 4, initial_weights)
    assert int(trainer.optimizer.iterations) == 4
    moved = max(np.abs(b - w).max() for b, w in zip(big, initial_weights))
    assert moved > 1e-3
    for x, y in zip(big, accumulated):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=2e-6)


@pytest.mark.slow
def test_mirrored_two_devices_equals_one_device(tmp_path, initial_weights, mirrored_strategy):
    one = tf.distribute.OneDeviceStrategy("/cpu:0")
    mirrored = mirrored_strategy
    assert mirrored.num_replicas_in_sync == 2
    single, _ = train_in_process(one, tmp_path / "a", 16, 1, 4, initial_weights)
    replicated, _ = train_in_process(mirrored, tmp_path / "b", 16, 1, 4, initial_weights)
    for x, y in zip(single, replicated):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=2e-6)


def test_phase2_starts_from_phase1_encoder_and_heads(tmp_path, initial_weights):
    one = tf.distribute.OneDeviceStrategy("/cpu:0")
    phase1, _ = train_in_process(one, tmp_path / "p1", 16, 1, 4, initial_weights)
    keras.utils.set_random_seed(99)
    fresh = [w.numpy() for w in bert.build_pretraining_model(tiny_config(0.0, 512)).weights]
    with one.scope():
        model = bert.build_pretraining_model(tiny_config(dropout=0.0, vocab_size=512))
        model.set_weights(fresh)
        optimizer = optimization.create_optimizer("adamw", 1e-3)
    options = trainer_lib.TrainerOptions(
        model_dir=str(tmp_path / "p2"), num_train_steps=1, train_batch_size=8
    )
    trainer = trainer_lib.Trainer(
        one, model, optimizer, 1e-3, pretraining.PretrainingTask(), options
    )
    assert trainer.initialize_from(str(tmp_path / "p1")).endswith("ckpt-4")
    assert int(optimizer.iterations) == 0  # moments and step start fresh
    names = [w.path for w in model.weights]
    assert any("mlm" in n or "predictions" in n for n in names), names
    for name, restored, trained, before in zip(names, model.weights, phase1, fresh):
        np.testing.assert_array_equal(restored.numpy(), trained, err_msg=name)
        if trained.size > 1:
            assert not np.array_equal(trained, before), name


def test_non_finite_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path, initial_weights):
    one = tf.distribute.OneDeviceStrategy("/cpu:0")
    examples = random_batches(64)
    examples["input_ids"][40:] = 0
    with pytest.raises(FloatingPointError, match=r"step \d+") as info:
        train_in_process(
            one,
            tmp_path,
            8,
            1,
            20,
            initial_weights,
            optimizer_name="adamw",
            learning_rate=1e30,
            steps_per_loop=1,
            save_checkpoints_steps=1,
            examples=examples,
        )
    latest = tf.train.latest_checkpoint(str(tmp_path))
    assert latest is not None and latest in str(info.value)
    values = checkpoint_values(str(tmp_path))
    assert all(np.isfinite(v).all() for v in values.values() if v.dtype.kind == "f")


def test_fp16_dynamic_loss_scaling_skips_overflowed_steps(tmp_path, initial_weights):
    """An absurd initial scale overflows fp16: those updates are skipped and the scale halves."""
    one = tf.distribute.OneDeviceStrategy("/cpu:0")
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        weights, trainer = train_in_process(
            one,
            tmp_path,
            8,
            1,
            6,
            initial_weights,
            mixed_precision="fp16",
            initial_loss_scale=2.0**80,
            steps_per_loop=1,
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    log = read_log(tmp_path)
    scales = [entry["loss_scale"] for entry in log]
    # fp16 overflows past 65504, so 2^80 and its halvings down to about 2^60 always overflow
    # and are skipped; each skip halves the scale and leaves the update count unchanged.
    assert scales[0] == 2.0**79
    skipped = sum(1 for a, b in zip([2.0**80] + scales, scales) if b == a / 2)
    assert skipped >= 15
    assert trainer.current_step() == 6
    assert all(np.isfinite(w).all() for w in weights)
    assert any(not np.array_equal(w, w0) for w, w0 in zip(weights, initial_weights))
    assert trainer.model.encoder.compute_dtype == "float16"


# -----------------------------------------------------------------------------------------
# MultiWorkerMirroredStrategy: two worker processes on localhost.


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_two_workers(experiment, input_file, model_dir, *flags):
    """Two run_pretraining processes of one MultiWorkerMirroredStrategy cluster on localhost."""
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        procs.append(
            run_cli(
                f"--experiment={experiment}",
                "--phase=1",
                "--strategy=multi_worker",
                f"--input_file={input_file}",
                f"--model_dir={model_dir}",
                "--do_eval=false",
                *flags,
                env={"TF_CONFIG": json.dumps(tf_config)},
                wait=False,
            )
        )
    return procs


@pytest.mark.slow
def test_multi_worker_two_processes_train_and_agree(tmp_path, corpus_records):
    experiment = write_experiment(str(tmp_path / "experiment.json"), phase1_steps=6)
    model_dir = tmp_path / "mw"
    procs = start_two_workers(
        experiment,
        corpus_records["p1"],
        model_dir,
        "--steps_per_loop=3",
        "--save_checkpoints_steps=6",
    )
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-4000:]
    chief = checkpoint_values(str(model_dir))
    other = checkpoint_values(str(model_dir / "worker_tmp_1"))
    for name in chief:
        np.testing.assert_array_equal(chief[name], other[name], err_msg=name)
    log = read_log(model_dir)
    assert log[-1]["step"] == 6 and np.isfinite(log[-1]["loss"])


# -----------------------------------------------------------------------------------------
# Preemption: SIGTERM saves at the current step, the same command resumes there.


def _wait_for_log_lines(model_dir, count, proc, timeout=300):
    deadline = time.time() + timeout
    path = os.path.join(model_dir, "train_log.jsonl")
    while not (os.path.exists(path) and len(pathlib.Path(path).read_text().splitlines()) >= count):
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.time() < deadline
        time.sleep(0.1)


@pytest.mark.slow
def test_sigterm_saves_the_current_step_and_the_same_command_resumes(tmp_path, corpus_records):
    experiment = write_experiment(str(tmp_path / "experiment.json"), phase1_steps=16, dropout=0.1)
    common = [
        f"--experiment={experiment}",
        "--phase=1",
        f"--input_file={corpus_records['p1']}",
        "--steps_per_loop=1",
        "--save_checkpoints_steps=1000",  # no periodic checkpoint before the end
        "--do_eval=false",
    ]
    straight = tmp_path / "straight"
    run_cli(*common, f"--model_dir={straight}")

    model_dir = tmp_path / "preempted"
    proc = run_cli(*common, f"--model_dir={model_dir}", wait=False)
    _wait_for_log_lines(str(model_dir), 3, proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 143, out[-3000:]
    stopped = int(re.search(r"Stopped by SIGTERM at step (\d+)", out).group(1))
    assert 3 <= stopped < 16
    assert tf.train.latest_checkpoint(str(model_dir)).endswith(f"ckpt-{stopped}")
    logged_before = read_log(str(model_dir))
    assert logged_before[-1]["step"] == stopped

    out = run_cli(*common, f"--model_dir={model_dir}")
    assert f"ckpt-{stopped} at step {stopped}" in out
    # The resumed run's first update is the one after the SIGTERM save (one per host call).
    resumed_steps = [entry["step"] for entry in read_log(str(model_dir))[len(logged_before) :]]
    assert resumed_steps == list(range(stopped + 1, 17))
    a, b = checkpoint_values(str(straight)), checkpoint_values(str(model_dir))
    assert a.keys() == b.keys() and len(a) > 10
    assert b.pop("save_counter/.ATTRIBUTES/VARIABLE_VALUE") == 2  # the SIGTERM save + the last
    for name in b:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.slow
def test_multi_worker_sigterm_to_one_worker_stops_both_at_one_step(tmp_path, corpus_records):
    experiment = write_experiment(str(tmp_path / "experiment.json"), phase1_steps=40)
    model_dir = tmp_path / "mw"
    procs = start_two_workers(
        experiment,
        corpus_records["p1"],
        model_dir,
        "--steps_per_loop=1",
        "--save_checkpoints_steps=1000",
    )
    _wait_for_log_lines(str(model_dir), 2, procs[0])
    procs[1].send_signal(signal.SIGTERM)  # only the second worker is told
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    steps = []
    for p, out in zip(procs, outputs):
        assert p.returncode == 143, out[-3000:]
        steps.append(int(re.search(r"Stopped by SIGTERM at step (\d+)", out).group(1)))
    assert steps[0] == steps[1] < 40
    chief = tf.train.latest_checkpoint(str(model_dir))
    other = tf.train.latest_checkpoint(str(model_dir / "worker_tmp_1"))
    assert chief.endswith(f"ckpt-{steps[0]}") and other.endswith(f"ckpt-{steps[0]}")


def test_records_of_another_vocabulary_are_refused(tmp_path, shared_data, minilm_vocab):
    """Unmasked records carry their vocabulary size in .info.json; a model of another size
    is refused before training, naming the file and both sizes."""
    from bert.tasks import pretraining_phase
    from bert.training import options as opts

    lines = (shared_data / "text" / "wiki_squad_contexts.txt").read_text("utf-8").split("\n")
    text = tmp_path / "wiki.txt"
    text.write_text("\n".join(lines[:200]), "utf-8")
    records = str(tmp_path / "unmasked.tfrecord")
    pretraining_records.create_pretraining_data(
        [str(text)],
        [records],
        tokenization.FullTokenizer(str(minilm_vocab), do_lower_case=True),
        pretraining_instances.InstanceOptions(
            max_seq_length=SEQ1, max_predictions_per_seq=PRED1, masking=False
        ),
    )
    experiment = write_experiment(str(tmp_path / "experiment.json"))
    small = tmp_path / "small_vocab_config.json"
    tiny_config(vocab_size=1737).to_json_file(str(small))
    options = opts.parse(
        pretraining_phase.PretrainingOptions,
        [
            "prog",
            f"--experiment={experiment}",
            f"--input_file={records}",
            f"--model_dir={tmp_path / 'run'}",
            f"--bert_config_file={small}",
            "--dynamic_masking",
        ],
    )
    with pytest.raises(
        ValueError, match=r"unmasked\.tfrecord\.info\.json: .* 30522 entries, .* 1737"
    ):
        pretraining_phase.run_phase(options)
    assert not (tmp_path / "run" / "train_log.jsonl").exists()
