"""The gradient noise scale B_simple = tr(Sigma) / |G|^2 that training logs.

The estimator is checked against the closed form of linear least squares with Gaussian
inputs, where the mean gradient and its per-example covariance are known exactly; the
training runs check that the estimate reaches train_log.jsonl when a step has two batch sizes
(two replicas, or accumulation) and that nothing is logged when it has one.
"""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import PRED1, SEQ1, tiny_config

import bert
import optimization
from bert.tasks import pretraining, pretraining_phase
from bert.training import options as opts
from bert.training import step as step_lib
from bert.training import trainer as trainer_lib
from data import pretraining_input


def test_estimator_is_exact_on_expected_norms():
    """E|G_B|^2 = |G|^2 + tr(Sigma) / B at both batch sizes gives back both parts exactly."""
    grad_sq, trace = 0.3, 12.0
    expected = {b: grad_sq + trace / b for b in (8, 32)}
    got = step_lib.estimate_noise_scale(expected[8], expected[32], 8, 32)
    assert got == pytest.approx((grad_sq, trace), rel=1e-12)


# Linear least squares: x ~ N(0, I_d), y = x.w* + eps, eps ~ N(0, s^2), loss (x.w - y)^2 / 2.
# At w = w* + delta the per-example gradient is x (x.delta - eps), so G = delta and
# Sigma = (|delta|^2 + s^2) I + delta delta^T (Isserlis): tr(Sigma) = d (|delta|^2 + s^2) +
# |delta|^2, |G|^2 = |delta|^2.
D, NOISE_STD = 10, 1.0


def true_noise_scale(delta):
    grad_sq = float(delta @ delta)
    return (D * (grad_sq + NOISE_STD**2) + grad_sq) / grad_sq


def simulated_totals(rng, delta, steps, replicas, accumulation, replica_batch):
    """What `TrainStep.run` sums over `steps` updates of `replicas` x `accumulation`
    micro-batches: each replica's gradient of its local loss sum over the GLOBAL micro-batch
    (the tasks' convention), the all-reduced gradient averaged over the micro-batches."""
    micro = replicas * replica_batch
    x = rng.standard_normal((steps, accumulation, replicas, replica_batch, D))
    residual = x @ delta - NOISE_STD * rng.standard_normal(
        (steps, accumulation, replicas, replica_batch)
    )
    local = np.einsum("sarbd,sarb->sard", x, residual) / micro  # [steps, k, r, d]
    local_sq = np.sum(local**2, -1)
    big = local.sum(axis=2).mean(axis=1)  # the update's gradient: reduced, then averaged
    big_sq = np.sum(big**2, -1)
    noise = step_lib.GradientNoiseScale(micro, replicas, accumulation)
    # The big norm counts on the last micro-step of each update only.
    is_update = np.zeros((steps, accumulation, replicas), bool)
    is_update[:, -1] = True
    values = noise.step_values(
        tf.constant(local_sq, tf.float32),
        tf.constant(np.broadcast_to(big_sq[:, None, None], local_sq.shape), tf.float32),
        tf.constant(is_update),
    )
    per_step = {
        k: v.numpy().reshape(steps, -1).sum(1).astype(np.float64) for k, v in values.items()
    }
    return noise, per_step


@pytest.mark.parametrize("replicas, accumulation", [(4, 1), (1, 4), (2, 2)])
def test_estimate_converges_to_the_closed_form_of_least_squares(replicas, accumulation):
    rng = np.random.default_rng(0)
    delta = rng.standard_normal(D) * 0.4
    truth = true_noise_scale(delta)  # about 12 examples
    steps, blocks = 6000, 30
    noise, per_step = simulated_totals(rng, delta, steps, replicas, accumulation, 4)
    assert (noise.small_batch, noise.big_batch) == (4, 4 * replicas * accumulation)

    def estimate(rows):
        return noise.metrics({k: v[rows].sum() for k, v in per_step.items()})

    whole = estimate(slice(None))
    # Spread: the estimate of independent blocks of steps; the whole run's error is about
    # their standard deviation over sqrt(blocks).
    block = [estimate(rows)["gradient_noise_scale"] for rows in np.split(np.arange(steps), blocks)]
    standard_error = np.std(block) / math.sqrt(blocks)
    assert standard_error < 0.05 * truth  # the check below is a sharp one
    assert abs(whole["gradient_noise_scale"] - truth) < 4 * standard_error
    grad_sq = float(delta @ delta)
    assert whole["grad_sq_true"] == pytest.approx(grad_sq, rel=0.1)
    assert whole["noise_trace"] == pytest.approx(truth * grad_sq, rel=0.1)


def test_one_replica_without_accumulation_has_nothing_to_compare():
    assert not step_lib.GradientNoiseScale.measurable(1, 1)
    assert step_lib.GradientNoiseScale.measurable(2, 1)
    assert step_lib.GradientNoiseScale.measurable(1, 2)


def test_non_finite_norms_are_left_out():
    noise = step_lib.GradientNoiseScale(16, 2, 1)
    values = noise.step_values(
        tf.constant([1.0, np.inf]), tf.constant([0.5, np.nan]), tf.constant([True, True])
    )
    assert {k: v.numpy().tolist() for k, v in values.items()} == {
        "noise_small_sq": [2.0, 0.0],
        "noise_small_weight": [0.5, 0.0],
        "noise_big_sq": [0.25, 0.0],
        "noise_big_weight": [0.5, 0.0],
    }


# -----------------------------------------------------------------------------------------
# Training runs.


def read_log(model_dir):
    with open(model_dir / "train_log.jsonl") as f:
        return [json.loads(line) for line in f]


def train_tiny(strategy, model_dir, records, accumulation, steps=6, batch=32):
    """The tiny model trained on real text (the task, optimizer and trainer of every
    pretraining run), with the noise scale asked for; returns train_log.jsonl."""
    keras.utils.set_random_seed(1)
    with strategy.scope():
        model = bert.build_pretraining_model(tiny_config(0.0))
        optimizer, schedule = optimization.create_optimizer_and_schedule(
            {"name": "lamb", "weight_decay": 0.01, "clipnorm": 1.0},
            {"kind": "constant", "learning_rate": 1e-3},
            gradient_accumulation_steps=accumulation,
        )
    micro = batch // accumulation

    def dataset_fn(ctx):
        return pretraining_input.build_dataset(
            records, ctx.get_per_replica_batch_size(micro), SEQ1, PRED1, True, ctx, seed=1
        )

    trainer = trainer_lib.Trainer(
        strategy,
        model,
        optimizer,
        schedule,
        pretraining.PretrainingTask(),
        trainer_lib.TrainerOptions(
            model_dir=str(model_dir),
            num_train_steps=steps,
            train_batch_size=batch,
            gradient_accumulation_steps=accumulation,
            steps_per_loop=steps,
            save_checkpoints_steps=0,
            log_gradient_noise_scale=True,
        ),
    )
    trainer.train(dataset_fn)
    return read_log(model_dir)


def test_two_replicas_measure_what_accumulation_measures(
    tmp_path, corpus_records, mirrored_strategy
):
    """Two replicas of 16 and two accumulated micro-batches of 16 on one device see the same
    examples at the same weights (one input pipeline hands out consecutive batches), so the
    replica path (gradient times replicas, norm from the optimizer's all-reduce) must give the
    estimate of the accumulation path, where the micro-batch gradient is a plain mean."""
    [replicas] = train_tiny(mirrored_strategy, tmp_path / "mirrored", corpus_records["p1"], 1)
    one = tf.distribute.OneDeviceStrategy("/cpu:0")
    [accumulated] = train_tiny(one, tmp_path / "accumulated", corpus_records["p1"], 2)
    noise_scale = replicas["gradient_noise_scale"]
    assert noise_scale > 0 and math.isfinite(noise_scale)
    assert noise_scale == pytest.approx(replicas["noise_trace"] / replicas["grad_sq_true"])
    for name in ("gradient_noise_scale", "noise_trace", "grad_sq_true"):
        assert replicas[name] == pytest.approx(accumulated[name], rel=1e-3)


def run_phase(tmp_path, records, name, *flags):
    options = opts.parse(
        pretraining_phase.PretrainingOptions,
        [
            "prog",
            f"--experiment={tmp_path / 'experiment.json'}",
            f"--input_file={records}",
            f"--model_dir={tmp_path / name}",
            "--steps_per_loop=8",
            "--save_checkpoints_steps=0",
            "--nodo_eval",
            *flags,
        ],
    )
    pretraining_phase.run_phase(options)
    return read_log(tmp_path / name)


@pytest.fixture
def experiment(tmp_path):
    cfg = tmp_path / "bert_config.json"
    tiny_config(dropout=0.0).to_json_file(str(cfg))
    phase = {
        "name": "phase1",
        "train_batch_size": 16,
        "max_seq_length": SEQ1,
        "max_predictions_per_seq": PRED1,
        "num_train_steps": 8,
        "optimizer": {"name": "lamb", "weight_decay": 0.01, "clipnorm": 1.0},
        "schedule": {"kind": "constant", "learning_rate": 1e-3},
    }
    (tmp_path / "experiment.json").write_text(
        json.dumps({"description": "test", "model": str(cfg), "phases": [phase]})
    )


def test_pretraining_with_accumulation_logs_it_and_without_logs_none(
    tmp_path, corpus_records, experiment
):
    [accumulated] = run_phase(
        tmp_path, corpus_records["p1"], "accumulated", "--gradient_accumulation_steps=2"
    )
    noise_scale = accumulated["gradient_noise_scale"]
    assert noise_scale > 0 and math.isfinite(noise_scale)
    assert accumulated["grad_sq_true"] > 0 and accumulated["noise_trace"] > 0

    [single] = run_phase(tmp_path, corpus_records["p1"], "single")
    assert single["step"] == 8
    assert not {"gradient_noise_scale", "noise_trace", "grad_sq_true"} & set(single)
