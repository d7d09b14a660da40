"""Tunable hyperparameters (optimization.tunable): the constant path's updates, no retrace."""

import numpy as np
import pytest
import tensorflow as tf
from test_optimizers import INITIAL, gradient_sequence, make_variables, numpy_reference
from test_schedules import original_bert_truth, warmup_poly_truth

import optimization
from optimization import tunable

WARMUP_POLY = [
    dict(init_lr=0.0, peak_lr=0.05, final_lr=0.0, warmup_steps=2, total_steps=6),
    dict(init_lr=1e-3, peak_lr=0.2, final_lr=1e-2, warmup_steps=1, total_steps=5),
    dict(init_lr=0.0, peak_lr=0.01, final_lr=0.0, warmup_steps=0, total_steps=4),
]
POWERS = [dict(warmup_power=1, decay_power=1), dict(warmup_power=2, decay_power=2)]
ORIGINAL_BERT = [
    dict(peak_lr=0.05, total_steps=6, warmup_steps=2, power=1.0),
    dict(peak_lr=0.3, total_steps=4, warmup_steps=0, power=2.0),
    dict(peak_lr=0.1, total_steps=9, warmup_steps=3, power=0.5),
]
# Several points of one cell each (the structural fields, e.g. clipnorm, fixed within it).
POINTS = {
    "adamw": [
        dict(beta_1=0.9, beta_2=0.999, epsilon=1e-6, weight_decay=0.01),
        dict(beta_1=0.5, beta_2=0.95, epsilon=1e-3, weight_decay=0.0),  # no decay
        dict(beta_1=0.99, beta_2=0.99, epsilon=1e-11, weight_decay=1.0),
    ],
    "lamb": [
        dict(beta_1=0.9, beta_2=0.999, epsilon=1e-6, weight_decay=0.01),
        dict(beta_1=0.7, beta_2=0.95, epsilon=1e-3, weight_decay=0.0, phi_bounds=[0.5, 1.0]),
        dict(beta_1=0.95, beta_2=0.99, weight_decay=0.1, ratio_bounds=[0.1, 0.5]),
    ],
    "lars": [
        dict(momentum=0.9, weight_decay=0.01),
        dict(momentum=0.5, weight_decay=0.0, phi_bounds=[0.0, 2.0], ratio_bounds=[0.1, 1.0]),
    ],
    "nesterov": [dict(momentum=0.8, weight_decay=0.01), dict(momentum=0.3, weight_decay=0.0)],
}


def schedules(kind):
    if kind == "warmup_poly":
        return [{"kind": kind, **s, **p} for s in WARMUP_POLY for p in POWERS][:4]
    return [{"kind": kind, **s} for s in ORIGINAL_BERT]


def closed_form(schedule, t):
    s = dict(schedule)
    if s.pop("kind") == "warmup_poly":
        if s["warmup_steps"] == 0 and t == 0:
            return s["peak_lr"]
        return warmup_poly_truth(
            s["init_lr"],
            s["peak_lr"],
            s["final_lr"],
            s["warmup_steps"],
            s["total_steps"],
            s["warmup_power"],
            s["decay_power"],
            t,
        )
    return original_bert_truth(s["peak_lr"], s["total_steps"], s["warmup_steps"], s["power"], t)


def train(optimizer, variables, step, grads_seq):
    """Runs the compiled `step` from the initial weights and zero optimizer state."""
    for v, name in zip(variables, INITIAL):
        v.assign(INITIAL[name].astype(np.float32))
    for v in optimizer.variables:
        v.assign(tf.zeros_like(v))
    for g in grads_seq:
        step([tf.constant(g[n], tf.float32) for n in INITIAL])
    return {n: v.numpy() for n, v in zip(INITIAL, variables)}


def compiled_step(optimizer, variables):
    optimizer.build(variables)

    @tf.function(jit_compile=True)
    def step(grads):
        optimizer.apply_gradients(zip(grads, variables))

    return step


@pytest.mark.parametrize("rule", ["adamw", "lamb"])
@pytest.mark.parametrize("kind", ["warmup_poly", "original_bert"])
def test_one_tunable_program_gives_each_points_constant_updates(rule, kind):
    """Trial after trial, re-assigned: the constant optimizer's weights and the papers' equations,
    from one trace."""
    grads = gradient_sequence(seed=11)
    fixed = {"name": rule, "clipnorm": 1.0}
    points = [(h, s) for h in POINTS[rule] for s in schedules(kind)][::2]
    variables = make_variables()
    opt, sched = optimization.create_optimizer_and_schedule(
        {**fixed, **points[0][0]}, points[0][1], tunable=True
    )
    step = compiled_step(opt, variables)
    for h, schedule in points * 2:  # twice: re-assigning an earlier point gives it back
        tunable.assign(opt, sched, {**fixed, **h}, schedule)
        ours = train(opt, variables, step, grads)
        constant_opt, _ = optimization.create_optimizer_and_schedule({**fixed, **h}, schedule)
        constant_variables = make_variables()
        constant_step = compiled_step(constant_opt, constant_variables)
        constant = train(constant_opt, constant_variables, constant_step, grads)
        lrs = [closed_form(schedule, t) for t in range(len(grads))]
        reference = numpy_reference(rule, grads, lrs, {**h, "clipnorm": 1.0})
        for n in INITIAL:
            np.testing.assert_allclose(ours[n], constant[n], rtol=1e-6, atol=1e-7, err_msg=n)
            np.testing.assert_allclose(ours[n], reference[n], rtol=2e-5, atol=1e-6, err_msg=n)
        for t in range(12):
            assert float(sched(t)) == pytest.approx(closed_form(schedule, t), rel=1e-6, abs=1e-9)
    assert step.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("rule", ["lars", "nesterov"])
def test_tunable_momentum_rules(rule):
    grads = gradient_sequence(seed=5)
    schedule = {"kind": "constant", "peak_lr": 0.1}
    variables = make_variables()
    opt, sched = optimization.create_optimizer_and_schedule(
        {"name": rule, **POINTS[rule][0]}, schedule, tunable=True
    )
    step = compiled_step(opt, variables)
    for h in POINTS[rule]:
        tunable.assign(opt, sched, {"name": rule, **h}, schedule)
        ours = train(opt, variables, step, grads)
        reference = numpy_reference(rule, grads, [0.1] * len(grads), h)
        for n in INITIAL:
            np.testing.assert_allclose(ours[n], reference[n], rtol=2e-5, atol=1e-6, err_msg=n)
    assert step.experimental_get_tracing_count() == 1


def test_structure_is_not_tunable_and_checkpoints_keep_their_keys(tmp_path):
    schedule = {"kind": "warmup_poly", **WARMUP_POLY[0], **POWERS[0]}
    h = {"name": "lamb", "weight_decay": 0.01}
    opt, sched = optimization.create_optimizer_and_schedule(h, schedule, tunable=True)
    with pytest.raises(ValueError, match="bias_correction"):
        tunable.assign(opt, sched, {**h, "bias_correction": False}, schedule)
    with pytest.raises(ValueError, match="original_bert"):
        tunable.assign(opt, sched, h, {"kind": "original_bert", **ORIGINAL_BERT[0]})
    with pytest.raises(ValueError, match="adamw"):
        tunable.assign(opt, sched, {"name": "adamw"}, schedule)
    with pytest.raises(ValueError, match="beta_1"):  # validated as for a new optimizer
        tunable.assign(opt, sched, {**h, "beta_1": 1.5}, schedule)
    constant, _ = optimization.create_optimizer_and_schedule(h, schedule)
    keys = []
    for i, optimizer in enumerate((opt, constant)):
        optimizer.build(make_variables())
        path = tf.train.Checkpoint(optimizer=optimizer).write(str(tmp_path / f"ckpt{i}"))
        keys.append(sorted(name for name, _ in tf.train.list_variables(path)))
    assert keys[0] == keys[1]
