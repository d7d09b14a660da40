"""The compiled program of a search cell (bert.studies.cell): one trace, fresh-run curves."""

import dataclasses
import json
import os
import pathlib
import signal

import pytest
from test_pretraining import run_cli, write_experiment

from bert.studies import cell as cell_lib
from bert.tasks import pretraining_phase
from bert.tasks.pretraining_phase import PretrainingOptions

STEPS = 12
EVAL_STEPS = [1, 2, 5, 9, STEPS]  # log-spaced, as a scaling study asks
# Two points of one cell (LAMB, batch 8): every searched number differs.
POINTS = [
    {
        "optimizer": {"name": "lamb", "weight_decay": 0.01, "clipnorm": 1.0},
        "schedule": {"peak_lr": 2e-2, "warmup_steps": 2, "warmup_power": 1, "decay_power": 1},
    },
    {
        "optimizer": {
            "name": "lamb",
            "weight_decay": 0.1,
            "beta_1": 0.8,
            "beta_2": 0.95,
            "epsilon": 1e-4,
            "clipnorm": 1.0,
        },
        "schedule": {"peak_lr": 5e-3, "warmup_steps": 4, "warmup_power": 2, "decay_power": 2},
    },
]
# Compared with a fresh run to float tolerance (equal to 1e-12 on a 2-core x86 CPU), an
# accuracy to one masked position.
TOLERANCE = {"loss": 1e-6, "mlm_loss": 1e-6, "nsp_loss": 1e-6}


@pytest.fixture(scope="module")
def cell_setup(tmp_path_factory, corpus_records):
    """A tiny LAMB experiment with dropout (so the dropout reset matters) and its run options."""
    tmp = tmp_path_factory.mktemp("cell")
    experiment = write_experiment(str(tmp / "experiment.json"), dropout=0.1)
    options = PretrainingOptions(
        experiment=experiment,
        phase=1,
        model_dir=str(tmp / "unused"),
        input_file=corpus_records["p1"],
        train_batch_size=8,
        num_train_steps=STEPS,
        heldout_examples=32,
        eval_batch_size=16,
        steps_per_loop=4,
    )
    base, _, _ = pretraining_phase.load_phase(options)
    return tmp, options, base


def point_phase(base, point):
    schedule = {**base.schedule, **point["schedule"]}
    return dataclasses.replace(base, optimizer=point["optimizer"], schedule=schedule)


@pytest.fixture(scope="module")
def program(cell_setup):
    _, options, base = cell_setup
    return cell_lib.CellProgram(options, point_phase(base, POINTS[0]))


@pytest.fixture(scope="module")
def trials(program, cell_setup):
    """Point 0, point 1, a diverging point, then point 0 again: one program, one after another."""
    _, _, base = cell_setup
    diverging = {
        "optimizer": POINTS[0]["optimizer"],
        "schedule": {**POINTS[0]["schedule"], "peak_lr": 1e9},
    }
    return [
        program.run_trial(point_phase(base, p), EVAL_STEPS)
        for p in (POINTS[0], POINTS[1], diverging, POINTS[0])
    ]


def test_one_trace_per_cell_however_many_trials(program, trials):
    # The training loop and the evaluation step, each traced once, by the first trial.
    assert program.tracing_count() == 2
    assert trials[0]["compile_seconds"] > 0
    assert [t["compile_seconds"] for t in trials[1:]] == [0.0, 0.0, 0.0]
    for t in (trials[0], trials[1], trials[3]):
        assert [e["step"] for e in t["curve"]] == EVAL_STEPS
        assert t["steps"] == t["budget"] == STEPS and not t["stopped_early"]
        assert t["diverged"] is None and t["eval"] == t["curve"][-1]
        assert t["seconds"] > 0 and t["steps_per_second"] > 0
    # The same point again, after others: the same curve (the reset is complete).
    for again, first in zip(trials[3]["curve"], trials[0]["curve"]):
        del again["seconds"], first["seconds"]
        assert again == pytest.approx(first, rel=1e-6)
    assert trials[1]["curve"][-1]["loss"] != pytest.approx(trials[0]["curve"][-1]["loss"])


def test_a_diverging_trial_is_reported_and_the_next_one_starts_clean(trials):
    diverged = trials[2]
    assert diverged["diverged"] and "loss became" in diverged["diverged"]
    assert diverged["steps"] < STEPS and len(diverged["curve"]) < len(EVAL_STEPS)
    assert trials[3]["curve"][-1]["loss"] == pytest.approx(trials[0]["curve"][-1]["loss"])


@pytest.mark.slow
@pytest.mark.parametrize("index", [0, 1])
def test_a_trials_curve_is_the_curve_of_a_fresh_run(cell_setup, trials, index):
    """run_pretraining in a new process, on the trial's experiment file, evaluating every step."""
    tmp, options, base = cell_setup
    phase = point_phase(base, POINTS[index])
    raw = json.loads(pathlib.Path(options.experiment).read_text())
    raw["phases"][0] = dataclasses.asdict(phase)
    path = tmp / f"point{index}.json"
    path.write_text(json.dumps(raw))
    model_dir = tmp / f"fresh{index}"
    out = run_cli(
        f"--experiment={path}",
        "--phase=1",
        f"--input_file={options.input_file}",
        f"--model_dir={model_dir}",
        "--heldout_examples=32",
        "--eval_batch_size=16",
        "--eval_every_steps=1",
        "--steps_per_loop=5",
    )
    fresh = {}
    for line in (model_dir / "eval_log.jsonl").read_text().splitlines():
        entry = json.loads(line)
        fresh[entry["step"]] = entry
    assert sorted(fresh) == list(range(1, STEPS + 1)), out[-2000:]
    for entry in trials[index]["curve"]:
        truth = fresh[entry["step"]]
        for name, rel in TOLERANCE.items():
            assert entry[name] == pytest.approx(truth[name], rel=rel), (entry["step"], name)
        assert entry["eval_examples"] == truth["eval_examples"] == 32
        # At most one of the ~320 held-out masked positions may flip on a float difference.
        assert entry["mlm_accuracy"] == pytest.approx(truth["mlm_accuracy"], abs=1.5 / 300)
    # The curve moves: a wrong point or a missing reset could not pass by accident.
    losses = [fresh[s]["loss"] for s in EVAL_STEPS]
    assert max(losses) - min(losses) > 1e-3


def test_a_trial_stops_once_it_reaches_the_target(program, cell_setup, trials):
    _, _, base = cell_setup
    curve = trials[0]["curve"]
    target = max(e["mlm_accuracy"] for e in curve[:-1])
    expected = next(e["step"] for e in curve if e["mlm_accuracy"] >= target)
    stopped = program.run_trial(point_phase(base, POINTS[0]), EVAL_STEPS, stop_at_accuracy=target)
    assert stopped["stopped_early"] and stopped["steps"] == expected < STEPS
    assert [e["step"] for e in stopped["curve"]] == [s for s in EVAL_STEPS if s <= expected]
    assert stopped["eval"]["mlm_accuracy"] == pytest.approx(
        next(e["mlm_accuracy"] for e in curve if e["step"] == expected)
    )
    # Reached only at the last evaluation: not early.
    last = program.run_trial(point_phase(base, POINTS[0]), [STEPS], stop_at_accuracy=0.0)
    assert last["steps"] == STEPS and not last["stopped_early"]


def test_a_trial_of_another_shape_or_structure_is_refused(program, cell_setup):
    _, _, base = cell_setup
    phase = point_phase(base, POINTS[0])
    with pytest.raises(ValueError, match="train_batch_size"):
        program.check_trial(dataclasses.replace(phase, train_batch_size=16))
    with pytest.raises(ValueError, match="optimizer or schedule kind"):
        program.check_trial(
            dataclasses.replace(phase, optimizer={**phase.optimizer, "bias_correction": False})
        )


def test_sigterm_stops_a_trial_at_its_host_call_with_nothing_to_resume(
    program, cell_setup, trials, monkeypatch
):
    """The search requeues the point (exit 143) and its rerun starts again from step 0."""
    _, _, base = cell_setup
    run, calls = program.step.run, []

    def run_then_signal(iterator, num_micro_steps):
        calls.append(num_micro_steps)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return run(iterator, num_micro_steps)

    monkeypatch.setattr(program.step, "run", run_then_signal)
    with pytest.raises(cell_lib.Interrupted) as stopped:
        program.run_trial(point_phase(base, POINTS[0]), EVAL_STEPS)
    assert stopped.value.exit_code == 143 and stopped.value.step == 2  # the host call finished
    assert "without checkpoints" in str(stopped.value)
    monkeypatch.undo()
    again = program.run_trial(point_phase(base, POINTS[1]), EVAL_STEPS)
    assert again["curve"][-1]["loss"] == pytest.approx(trials[1]["curve"][-1]["loss"], rel=1e-6)
