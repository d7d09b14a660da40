"""Learning-rate schedules against closed-form values of the BERT-Large recipes."""

import inspect
import json
import math
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import optimization
from bert.training import experiment

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"


def lr_at(schedule, step):
    return float(schedule(tf.constant(step, tf.int64)))


def original_bert_truth(init_lr, total, warmup, power, t):
    """google-research/bert create_optimizer, written out for one integer step."""
    if t < warmup:
        return init_lr * t / warmup
    return init_lr * (1.0 - min(t, total) / total) ** power


def warmup_poly_truth(init, peak, final, t_w, total, p_w, p_d, t):
    if t <= t_w:
        return init + (peak - init) * (t / t_w) ** p_w
    t = min(t, total)
    return final + (peak - final) * ((total - t) / (total - t_w)) ** p_d


# (init_lr, num_train_steps, num_warmup_steps): LAMB 32k phase 1 and 2, 64k/32k phase 1.
LAMB_RECIPES = [(5e-3, 14063, 3125), (4e-3, 1562, 781), (6e-3, 7037, 2000), (6e-3, 7038, 2000)]


@pytest.mark.parametrize("init_lr,total,warmup", LAMB_RECIPES)
@pytest.mark.parametrize("power", [1.0, 0.5])
def test_original_bert_at_warmup_boundaries(init_lr, total, warmup, power):
    schedule = optimization.create_schedule(
        "original_bert",
        init_lr=init_lr,
        num_train_steps=total,
        num_warmup_steps=warmup,
        power=power,
    )
    for t in [0, 1, warmup - 1, warmup, warmup + 1, total - 1, total, total + 5]:
        expected = original_bert_truth(init_lr, total, warmup, power, t)
        assert lr_at(schedule, t) == pytest.approx(expected, rel=1e-5, abs=1e-12), t
    assert lr_at(schedule, 0) == 0.0
    # The jump: the rate falls from ~init_lr to init_lr * (1 - W/T)^p when warmup ends.
    assert lr_at(schedule, warmup) / init_lr == pytest.approx((1 - warmup / total) ** power, 1e-5)


def test_original_bert_drop_sizes():
    """The size of the drop at the end of warmup for the LAMB recipes (power 1)."""

    def drop(total, warmup):
        s = optimization.create_schedule(
            "original_bert", init_lr=1.0, num_train_steps=total, num_warmup_steps=warmup
        )
        return 1.0 - lr_at(s, warmup)

    assert drop(7038, 2000) == pytest.approx(0.2842, abs=1e-4)  # rate falls to 71.6%
    assert drop(14063, 3125) == pytest.approx(0.2222, abs=1e-4)  # rate falls to 77.8%
    assert drop(1562, 781) == pytest.approx(0.5, abs=1e-6)  # phase 2: halved


def test_original_bert_equals_keras_polynomial_decay_with_warmup():
    """Independent truth: Keras PolynomialDecay (= tf.train.polynomial_decay) + BERT's warmup
    override."""
    init_lr, total, warmup = 1e-4, 1000, 100
    decay = keras.optimizers.schedules.PolynomialDecay(
        init_lr, total, end_learning_rate=0.0, power=1.0
    )
    ours = optimization.create_schedule(
        "original_bert", init_lr=init_lr, num_train_steps=total, num_warmup_steps=warmup
    )
    for t in range(0, 1100, 7):
        expected = init_lr * t / warmup if t < warmup else float(decay(t))
        assert lr_at(ours, t) == pytest.approx(expected, rel=1e-5, abs=1e-12)


# (peak, warmup, total, power): tuned Adam 32k phase 1 and 65k phase 1 (Reality Check).
ADAM_RECIPES = [(5.9415e-4, 3125, 14063, 1.0), (1.3653e-3, 2000, 7037, 2.0)]


@pytest.mark.parametrize("peak,warmup,total,power", ADAM_RECIPES)
def test_warmup_poly_at_boundaries(peak, warmup, total, power):
    schedule = optimization.create_schedule(
        "warmup_poly",
        init_lr=0.0,
        peak_lr=peak,
        final_lr=0.0,
        warmup_steps=warmup,
        total_steps=total,
        warmup_power=power,
        decay_power=power,
    )
    for t in [0, 1, warmup - 1, warmup, warmup + 1, total - 1, total, total + 10]:
        expected = warmup_poly_truth(0.0, peak, 0.0, warmup, total, power, power, t)
        assert lr_at(schedule, t) == pytest.approx(expected, rel=1e-5, abs=1e-12), t
    assert lr_at(schedule, warmup) == pytest.approx(peak, rel=1e-6)
    assert lr_at(schedule, total) == 0.0
    # Continuous at t_w: neighbours differ by O(peak / steps), no jump.
    assert abs(lr_at(schedule, warmup + 1) - lr_at(schedule, warmup - 1)) < 3 * power * peak / (
        total - warmup
    )


def test_warmup_poly_nonzero_ends_and_powers():
    kw = dict(
        init_lr=1e-5,
        peak_lr=1e-3,
        final_lr=2e-5,
        warmup_steps=10,
        total_steps=50,
        warmup_power=0.5,
        decay_power=2.0,
    )
    schedule = optimization.create_schedule("warmup_poly", **kw)
    for t in range(0, 60):
        expected = warmup_poly_truth(1e-5, 1e-3, 2e-5, 10, 50, 0.5, 2.0, t)
        assert lr_at(schedule, t) == pytest.approx(expected, rel=1e-5), t


def test_warmup_cosine():
    schedule = optimization.create_schedule(
        "warmup_cosine", init_lr=0.0, peak_lr=1e-3, final_lr=1e-5, warmup_steps=10, total_steps=110
    )
    for t in [0, 5, 10, 11, 60, 109, 110, 200]:
        if t <= 10:
            expected = 1e-3 * t / 10
        else:
            s = (min(t, 110) - 10) / 100
            expected = 1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + math.cos(math.pi * s))
        assert lr_at(schedule, t) == pytest.approx(expected, rel=1e-5, abs=1e-12), t


def test_constant():
    assert lr_at(
        optimization.create_schedule("constant", learning_rate=3e-4), 12345
    ) == pytest.approx(3e-4)


@pytest.mark.parametrize(
    "kind,kwargs",
    [
        ("original_bert", dict(init_lr=4e-3, num_train_steps=1562, num_warmup_steps=781)),
        (
            "warmup_poly",
            dict(
                init_lr=0.0,
                peak_lr=2.8464e-4,
                final_lr=0.0,
                warmup_steps=781,
                total_steps=1562,
                warmup_power=1,
                decay_power=1,
            ),
        ),
    ],
)
def test_step_offset_makes_the_step_phase_local(kind, kwargs):
    base = optimization.create_schedule(kind, **kwargs)
    shifted = optimization.create_schedule(kind, step_offset=14063, **kwargs)
    for t in [0, 1, 780, 781, 782, 1562]:
        assert lr_at(shifted, 14063 + t) == pytest.approx(lr_at(base, t), rel=1e-6, abs=1e-12)
    assert lr_at(shifted, 14063) == 0.0


@pytest.mark.parametrize(
    "kind,kwargs",
    [
        (
            "original_bert",
            dict(
                init_lr=5e-3, num_train_steps=14063, num_warmup_steps=3125, power=0.5, step_offset=3
            ),
        ),
        (
            "warmup_poly",
            dict(
                init_lr=0.0,
                peak_lr=1.3653e-3,
                final_lr=0.0,
                warmup_steps=2000,
                total_steps=7037,
                warmup_power=2,
                decay_power=2,
            ),
        ),
        (
            "warmup_cosine",
            dict(init_lr=0.0, peak_lr=1e-3, final_lr=0.0, warmup_steps=5, total_steps=20),
        ),
        ("constant", dict(learning_rate=1e-4)),
    ],
)
def test_serialization_round_trip(kind, kwargs):
    schedule = optimization.create_schedule(kind, **kwargs)
    config = keras.saving.serialize_keras_object(schedule)
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(config)))
    assert type(restored) is type(schedule)
    assert restored.get_config() == schedule.get_config()
    restored2 = type(schedule).from_config(schedule.get_config())
    for t in [0, 4, 5, 6, 19, 2000, 2001, 3125, 3126, 7037, 20000]:
        assert lr_at(restored, t) == lr_at(schedule, t) == lr_at(restored2, t)


def test_schedule_compiles_with_xla():
    schedule = optimization.create_schedule(
        "warmup_poly",
        init_lr=0.0,
        peak_lr=1e-3,
        final_lr=0.0,
        warmup_steps=4,
        total_steps=10,
        warmup_power=1,
        decay_power=2,
    )
    compiled = tf.function(schedule.__call__, jit_compile=True)
    for t in range(12):
        assert float(compiled(tf.constant(t, tf.int64))) == pytest.approx(lr_at(schedule, t))


@pytest.mark.parametrize(
    "kind,kwargs,needle",
    [
        ("cosine", {}, "kind"),
        ("original_bert", dict(init_lr=1e-3, num_train_steps=100), "num_warmup_steps"),
        (
            "original_bert",
            dict(init_lr=1e-3, num_train_steps=100, num_warmup_steps=-1),
            "num_warmup_steps",
        ),
        (
            "warmup_poly",
            dict(init_lr=0.0, peak_lr=1e-3, final_lr=0.0, warmup_steps=10, total_steps=10),
            "total_steps",
        ),
        (
            "warmup_poly",
            dict(
                init_lr=0.0,
                peak_lr=1e-3,
                final_lr=0.0,
                warmup_steps=1,
                total_steps=10,
                warmup_powr=1,
            ),
            "warmup_powr",
        ),
        ("constant", dict(learning_rate=-1.0), "learning_rate"),
        ("constant", dict(peak_lr=-1.0), "peak_lr must be a number >= 0"),
        ("constant", dict(peak_lr=1e-3, learning_rate=1e-3), "peak_lr is given twice"),
        (
            "original_bert",
            dict(init_lr=1e-3, peak_lr=1e-3, total_steps=100, warmup_steps=10),
            "peak_lr is given twice",
        ),
        ("constant", dict(peak_lr=1e-3, warmup_steps=10), "warmup_steps"),
    ],
)
def test_bad_arguments_raise_clear_errors(kind, kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        optimization.create_schedule(kind, **kwargs)


def test_lamb_scaling_table4():
    for batch, lr, ratio in [
        (512, 5e-3 / 8, 1 / 320),
        (32768, 5e-3, 1 / 5),
        (8192, 2.5e-3, 1 / 20),
        (65536, 5e-3 * math.sqrt(2), 2 / 5),
    ]:
        got_lr, got_ratio = optimization.lamb_scaling(batch)
        assert got_lr == pytest.approx(lr, rel=1e-12)
        assert got_ratio == pytest.approx(ratio, rel=1e-12)
    # 32k: 1/5 of 15,625 steps = 3,125 warmup steps, the LAMB recipe's warmup.
    assert round(optimization.lamb_scaling(32768)[1] * 15625) == 3125
    with pytest.raises(ValueError, match="batch_size"):
        optimization.lamb_scaling(0)


def test_every_config_schedule_and_optimizer_builds():
    paths = [pathlib.Path(p) for p in experiment.experiment_files()]
    assert paths, f"no configs in {CONFIGS}"
    for path in paths:
        for phase in json.loads(path.read_text())["phases"]:
            kwargs = dict(phase["schedule"])
            schedule = optimization.create_schedule(kwargs.pop("kind"), **kwargs)
            assert np.isfinite(lr_at(schedule, phase["num_train_steps"] // 2)), path
            hparams = dict(phase["optimizer"])
            optimization.create_optimizer(hparams.pop("name"), schedule, **hparams)


def test_plot_schedule_writes_png(tmp_path):
    from optimization import schedule_plots as plot_schedule

    phases, title = plot_schedule.load_phases(CONFIGS / "tiny_lamb.json")
    output = tmp_path / "plots" / "schedule.png"
    plot_schedule.plot(phases, str(output), title)
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in output.parent.iterdir()] == ["schedule.png"]  # no temporary left
    # The counterpart of an original_bert phase is the corrected warmup_poly and vice versa.
    (label_a, a), (label_b, b) = plot_schedule.counterparts(
        {"kind": "original_bert", "init_lr": 1e-3, "num_train_steps": 100, "num_warmup_steps": 20}
    )
    assert isinstance(b, optimization.WarmupPolySchedule)
    assert lr_at(a, 20) == pytest.approx(0.8e-3) and lr_at(b, 20) == pytest.approx(1e-3)
    bad = tmp_path / "bad.json"
    bad.write_text('{"phases": [{"name": "p", "num_train_steps": 3}]}')
    with pytest.raises(ValueError, match="bad.json.*schedule"):
        plot_schedule.load_phases(bad)


# -----------------------------------------------------------------------------
# Shared argument names and the older ones


OLD_AND_SHARED = [
    (
        "original_bert",
        dict(init_lr=5e-3, num_train_steps=14063, num_warmup_steps=3125, power=0.5),
        dict(peak_lr=5e-3, total_steps=14063, warmup_steps=3125, power=0.5),
    ),
    ("constant", dict(learning_rate=3e-4), dict(peak_lr=3e-4)),
]


@pytest.mark.parametrize("kind,old,shared", OLD_AND_SHARED)
def test_older_argument_names_are_aliases_of_the_shared_ones(kind, old, shared):
    a = optimization.create_schedule(kind, **old)
    b = optimization.create_schedule(kind, **shared)
    assert a.get_config() == b.get_config() == {**shared, "step_offset": 0}
    # A config saved with the older names (as earlier versions wrote) still loads.
    c = type(a).from_config({**old, "step_offset": 0})
    serialized = keras.saving.serialize_keras_object(a)
    serialized["config"] = {**old, "step_offset": 0}
    d = keras.saving.deserialize_keras_object(serialized)
    for t in [0, 1, 3124, 3125, 3126, 14062, 14063, 20000]:
        assert lr_at(a, t) == lr_at(b, t) == lr_at(c, t) == lr_at(d, t)


def test_every_schedule_takes_the_shared_names():
    from optimization import schedules

    for kind, cls in schedules.SCHEDULES.items():
        params = set(inspect.signature(cls.__init__).parameters)
        assert {"peak_lr", "step_offset"} <= params, kind
        if kind != "constant":
            assert {"warmup_steps", "total_steps"} <= params, kind
        assert set(cls.aliases.values()) <= params, kind


def test_constant_schedule_step_offset_is_kept_and_harmless():
    s = optimization.create_schedule("constant", peak_lr=2e-4, step_offset=100)
    assert s.get_config() == {"peak_lr": 2e-4, "step_offset": 100}
    for t in [0, 99, 100, 101, 10**6]:
        assert lr_at(s, t) == pytest.approx(2e-4)
    with pytest.raises(ValueError, match="step_offset"):
        optimization.create_schedule("constant", peak_lr=2e-4, step_offset=-1)


def _experiment(schedule, num_train_steps=100):
    phase = {
        "name": "phase1",
        "train_batch_size": 8,
        "max_seq_length": 16,
        "max_predictions_per_seq": 2,
        "num_train_steps": num_train_steps,
        "optimizer": {"name": "lamb"},
        "schedule": schedule,
    }
    return {"model": "tiny", "phases": [phase]}


OLD_BERT = {
    "kind": "original_bert",
    "init_lr": 1e-3,
    "num_train_steps": 100,
    "num_warmup_steps": 10,
}
WARMUP_POLY = {
    "kind": "warmup_poly",
    "init_lr": 0.0,
    "peak_lr": 1e-3,
    "final_lr": 0.0,
    "warmup_steps": 10,
    "total_steps": 100,
}


@pytest.mark.parametrize(
    "schedule,expected",
    [
        (
            OLD_BERT,
            {"kind": "original_bert", "peak_lr": 5e-3, "total_steps": 50, "warmup_steps": 5},
        ),
        (dict(WARMUP_POLY), {**WARMUP_POLY, "peak_lr": 5e-3, "total_steps": 50, "warmup_steps": 5}),
        ({"kind": "constant", "learning_rate": 1e-3}, {"kind": "constant", "peak_lr": 5e-3}),
    ],
)
def test_experiment_overrides_use_the_shared_names(schedule, expected):

    phase = experiment.experiment_from_dict(_experiment(schedule)).phase(1)
    out = experiment.apply_overrides(
        phase, learning_rate=5e-3, num_warmup_steps=5, num_train_steps=50, optimizer="adamw"
    )
    assert out.schedule == expected
    assert out.num_train_steps == 50 and out.optimizer == {"name": "adamw"}
    assert phase.schedule == schedule  # the input phase is not modified
    kwargs = dict(out.schedule)
    optimization.create_schedule(kwargs.pop("kind"), **kwargs)
    # Nothing to override: the schedule keeps its values (under the shared names).
    same = experiment.apply_overrides(phase)
    assert same.schedule == experiment.shared_schedule_names(schedule)


def test_experiment_total_steps_check_and_older_name_files(tmp_path):

    with pytest.raises(ValueError, match="schedule total steps 100 differ"):
        experiment.experiment_from_dict(_experiment(OLD_BERT, num_train_steps=90))
    with pytest.raises(ValueError, match="schedule total steps 100 differ"):
        experiment.experiment_from_dict(_experiment(WARMUP_POLY, num_train_steps=90))
    with pytest.raises(ValueError, match="phases.0.*given twice"):
        experiment.experiment_from_dict(_experiment({**OLD_BERT, "total_steps": 100}))
    # Every shipped recipe, and the same recipes written with the older names, load alike.
    older = {
        "peak_lr": "init_lr",
        "total_steps": "num_train_steps",
        "warmup_steps": "num_warmup_steps",
    }
    for path in map(pathlib.Path, experiment.experiment_files()):
        raw = json.loads(path.read_text())
        new = experiment.load_experiment(str(path))
        for phase in raw["phases"]:
            if phase["schedule"]["kind"] == "original_bert":
                phase["schedule"] = {older.get(k, k): v for k, v in phase["schedule"].items()}
        old_path = tmp_path / path.name
        old_path.write_text(json.dumps(raw))
        old = experiment.load_experiment(str(old_path))
        for a, b in zip(new.phases, old.phases):
            assert experiment.shared_schedule_names(a.schedule) == experiment.shared_schedule_names(
                b.schedule
            )
            ka, kb = dict(a.schedule), dict(b.schedule)
            sa = optimization.create_schedule(ka.pop("kind"), **ka)
            sb = optimization.create_schedule(kb.pop("kind"), **kb)
            for t in [0, a.num_train_steps // 3, a.num_train_steps]:
                assert lr_at(sa, t) == lr_at(sb, t)
