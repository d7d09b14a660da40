"""Quasi-random search (bert.studies.search) and the scaling study (bert.studies.scaling)."""

import contextlib
import dataclasses
import io
import json
import math
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import optuna
import pytest
from absl import flags
from scipy.stats import qmc
from test_pretraining import write_experiment

from bert.studies import scaling, search, space
from bert.tasks.pretraining_phase import PretrainingOptions
from bert.training import experiment as experiment_lib
from bert.training import options as opts
from data import cli
from optimization import hparams

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def dry_run(*flags):
    options = search.parse(["search", "--dry_run", *flags])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        search.run(*options)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_dry_run_of_the_nado_adamw_space_stays_in_table_6():
    trials = dry_run("--search_space=configs/search/nado_adamw.json", "--num_trials=30")
    assert [t["trial"] for t in trials] == list(range(30))
    recipe = experiment_lib.load_experiment("adam_32k").phase(1)
    for t in trials:
        opt, sched = t["optimizer"], t["schedule"]
        assert set(opt) == {"name", *hparams.DEFAULTS["adamw"]}  # every hyperparameter
        assert opt["name"] == "adamw" and opt["epsilon"] == 1e-11
        assert 1e-5 <= sched["peak_lr"] <= 1.0
        assert 0.5 <= opt["beta_1"] <= 0.99 and 0.5 <= opt["beta_2"] <= 0.99
        assert opt["beta_1"] == pytest.approx(1 - t["params"]["one_minus_beta_1"], abs=1e-15)
        assert 1e-3 <= opt["weight_decay"] <= 10
        assert sched["warmup_power"] == sched["decay_power"] in (1, 2)
        assert sched["kind"] == "warmup_poly" and sched["init_lr"] == sched["final_lr"] == 0
        # Steps, warmup and batch are the experiment's.
        assert sched["warmup_steps"] == recipe.schedule["warmup_steps"] == 3125
        assert sched["total_steps"] == t["num_train_steps"] == 14063
        assert t["train_batch_size"] == 32768
    # Both powers are used, about equally (a QMC coordinate floored into two bins).
    powers = [t["schedule"]["decay_power"] for t in trials]
    assert abs(powers.count(1) - powers.count(2)) <= 2


# The flags of `python -m bert.search` (those of run_pretraining and the search's own).
SEARCH_FLAGS = """
    bert_config_file do_eval do_train dry_run dynamic_masking eval_batch_size
    eval_every_steps eval_input_file experiment gradient_accumulation_steps
    heartbeat_seconds heldout_examples init_checkpoint input_file jit_compile
    keep_checkpoint_max keep_optimizer_state learning_rate max_eval_steps
    max_predictions_per_seq max_seq_length mixed_precision model_dir num_cpu_devices
    num_train_steps num_trials num_warmup_steps optimizer phase qmc_type report_only
    sampler_seed save_checkpoints_steps search_space seed skip_corrupt_records
    steps_per_loop storage strategy study_name target_accuracy tpu train_batch_size
""".split()  # noqa: SIM905 (a list of words)
# run_pretraining's flags whose default the search changes.
SEARCH_DEFAULTS = {
    "experiment": None,
    "phase": None,
    "heldout_examples": 10240,
    "eval_batch_size": 1024,
    "save_checkpoints_steps": 1000,
}


def test_the_search_has_the_flags_of_a_run_and_its_own():
    values = flags.FlagValues()
    cli.define_flags_all(search.OPTION_CLASSES, values)
    assert sorted(values) == SEARCH_FLAGS
    run_defaults = {f.name: f.default for f in dataclasses.fields(PretrainingOptions)}
    defaults = {name: values[name].default for name in values}
    assert defaults == {**run_defaults, **defaults_of(search.SearchOptions)}
    assert {name: defaults[name] for name in SEARCH_DEFAULTS} == SEARCH_DEFAULTS
    # One flag, given to every options object that has the field.
    run, options = search.parse(["search", "--heldout_examples=64", "--phase=2", "--seed=7"])
    assert (run.heldout_examples, options.heldout_examples, run.phase, options.phase) == (
        64, 64, 2, 2
    )  # fmt: skip
    assert run.seed == 7 and run.experiment is options.experiment is None


def defaults_of(cls):
    return {f.name: f.default for f in dataclasses.fields(cls)}


def unit_cube(space, points):
    """Points mapped back to [0, 1)^d (log ranges in log space; choices by index)."""
    rows = []
    for p in points:
        row = []
        for parameter in space.parameters:
            value = p[parameter.name]
            if parameter.choices:
                row.append((parameter.choices.index(value) + 0.5) / len(parameter.choices))
            elif parameter.log:
                low, high = math.log(parameter.low), math.log(parameter.high)
                row.append((math.log(value) - low) / (high - low))
            else:
                row.append((value - parameter.low) / (parameter.high - parameter.low))
        rows.append(row)
    return np.array(rows)


def largest_cdf_gap(cube):
    """Largest Kolmogorov-Smirnov distance of a coordinate's points to the uniform law."""
    n = len(cube)
    ranks = np.arange(1, n + 1)
    gaps = [
        max((ranks / n - col).max(), (col - (ranks - 1) / n).max()) for col in np.sort(cube, 0).T
    ]
    return max(gaps)


def test_quasi_random_points_spread_better_than_random_ones():
    nado = space.load_search_space("nado_adamw")
    continuous = [p for p in nado.parameters if not p.choices]
    space_c = space.SearchSpace(nado.path, continuous, nado.fixed)
    points = space.quasi_random_points(space_c, 32, seed=0)
    cube = unit_cube(space_c, points)
    assert cube.min() >= 0 and cube.max() < 1
    # Every coordinate is spread evenly (its largest empirical-CDF gap is smaller than that
    # of 99% of i.i.d. sets of the same size), and so are the points in the whole cube
    # (centered L2 discrepancy).
    rng = np.random.default_rng(0)
    random_sets = [rng.random(cube.shape) for _ in range(200)]
    assert largest_cdf_gap(cube) < np.percentile([largest_cdf_gap(r) for r in random_sets], 1)
    assert qmc.discrepancy(cube) < np.percentile([qmc.discrepancy(r) for r in random_sets], 2)
    # The sequence is fixed by its seed (every worker and resume agree) and changed by it.
    assert space.quasi_random_points(space_c, 32, seed=0) == points
    assert space.quasi_random_points(space_c, 32, seed=1) != points


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"parameters": {"x": {"low": 1, "high": 2, "sets": ["model.x"]}}}, "parameters.x: .*sets"),
        (
            {"parameters": {"x": {"low": 0, "high": 1, "log": True, "sets": "schedule.peak_lr"}}},
            "parameters.x: a log-scaled range needs 'low' > 0",
        ),
        ({"parameters": {"x": {"low": 2, "high": 1, "sets": "schedule.peak_lr"}}}, "below 'high'"),
        ({"parameters": {"x": {"choices": [], "sets": "schedule.peak_lr"}}}, "non-empty list"),
        ({"budget": 3}, r"unknown field\(s\) \['budget'\]"),
    ],
)
def test_bad_search_spaces_name_the_file_and_the_field(tmp_path, edit, message):
    raw = json.loads(pathlib.Path(os.path.join(space.SEARCH_DIR, "nado_adamw.json")).read_text())
    raw.update(edit)
    path = tmp_path / "space.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=f"{path}: .*{message}|{path}: {message}"):
        space.load_search_space(str(path))


def test_the_lamb_space_searches_lamb_with_the_same_schedule_family():
    trials = dry_run("--search_space=nado_lamb", "--num_trials=4")
    for t in trials:
        assert t["optimizer"]["name"] == "lamb" and t["optimizer"]["epsilon"] == 1e-6
        # lamb_32k's original_bert schedule became warmup_poly with the same steps.
        assert t["schedule"]["kind"] == "warmup_poly" and "power" not in t["schedule"]
        assert (t["schedule"]["warmup_steps"], t["schedule"]["total_steps"]) == (3125, 14063)


# ---------------------------------------------------------------------------------------------
# A study end to end: trials split between workers, a killed worker's point resumed.


TEST_SPACE = {
    "description": "test",
    "fixed": {"optimizer": {"name": "adamw", "epsilon": 1e-6}},
    "parameters": {
        "peak_lr": {"low": 1e-3, "high": 3e-2, "log": True, "sets": ["schedule.peak_lr"]},
        "weight_decay": {"low": 1e-3, "high": 1e-1, "log": True, "sets": "optimizer.weight_decay"},
    },
}


def search_cli(space, experiment, records, model_dir, *extra):
    cmd = [
        sys.executable, "-m", "bert.search",
        f"--search_space={space}", f"--experiment={experiment}", "--phase=1",
        f"--input_file={records}", f"--model_dir={model_dir}",
        "--num_trials=4", "--train_batch_size=8", "--num_train_steps=12",
        "--num_warmup_steps=2", "--heldout_examples=32", "--eval_batch_size=16",
        "--eval_every_steps=4", "--steps_per_loop=2", "--save_checkpoints_steps=2",
        "--target_accuracy=0.001", "--heartbeat_seconds=2", *extra,
    ]  # fmt: skip
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def load_study(model_dir):
    storage = optuna.storages.RDBStorage(f"sqlite:///{model_dir}/study.db")
    return optuna.load_study(storage=storage, study_name=os.path.basename(model_dir))


@pytest.mark.slow
def test_a_study_split_between_workers_resumes_a_killed_workers_point(tmp_path, corpus_records):
    space = tmp_path / "space.json"
    space.write_text(json.dumps(TEST_SPACE))
    experiment = write_experiment(str(tmp_path / "experiment.json"))
    records, model_dir = corpus_records["p1"], str(tmp_path / "study")
    args = (space, experiment, records, model_dir)

    # Worker 1 is stopped (SIGTERM) in the middle of its first trial, after a checkpoint.
    first = search_cli(*args)
    point0 = os.path.join(model_dir, "trials", "point_0000")
    deadline = time.time() + 300
    while not os.path.exists(os.path.join(point0, "ckpt-2.index")):
        assert first.poll() is None and time.time() < deadline, first.stdout.read()[-3000:]
        time.sleep(0.2)
    first.send_signal(signal.SIGTERM)
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 143, out[-3000:]
    waiting = load_study(model_dir).get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert sorted(t.user_attrs["point"] for t in waiting) == [0, 1, 2, 3]  # 0 is back

    # Two workers finish the study between them; point 0 resumes from its checkpoint.
    workers = [search_cli(*args) for _ in range(2)]
    outs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n".join(o[-3000:] for o in outs)
    assert "Resumed from" in "".join(outs)

    study = load_study(model_dir)
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert sorted(t.user_attrs["point"] for t in complete) == [0, 1, 2, 3]  # each once
    assert len({t.user_attrs["worker"] for t in complete}) == 2  # both workers ran trials
    log0 = [
        json.loads(line)
        for line in pathlib.Path(os.path.join(point0, "train_log.jsonl")).read_text().splitlines()
    ]
    steps = [entry["step"] for entry in log0]
    assert steps == sorted(set(steps)) and steps[-1] == 12  # resumed, not restarted
    for trial in complete:
        curve = trial.user_attrs["curve"]
        assert [step for step, _ in curve] == [4, 8, 12]  # every 4 steps, and the end
        assert trial.value == curve[-1][1]
        assert trial.user_attrs["eval"]["eval_examples"] == 32  # the held-out slice

    results = json.loads(pathlib.Path(os.path.join(model_dir, "results.json")).read_text())
    best = max(complete, key=lambda t: t.value)
    assert results["best_point"] == best.user_attrs["point"]
    assert all(r["steps_to_target"] == 4 for r in results["trials"])  # target 0.001
    assert os.path.getsize(os.path.join(model_dir, "results.png")) > 10_000
    assert (
        pathlib.Path(os.path.join(model_dir, "results.md")).read_text().count("| complete |") == 4
    )
    header = (
        pathlib.Path(os.path.join(model_dir, "results.csv"))
        .read_text()
        .splitlines()[0]
        .strip()
        .split(",")
    )
    assert header[-2:] == ["peak_lr", "weight_decay"]
    # The best trial, written back as an experiment run_pretraining accepts.
    exported = experiment_lib.load_experiment(os.path.join(model_dir, "best_experiment.json"))
    phase = exported.phase(1)
    assert phase.schedule["peak_lr"] == best.params["peak_lr"]
    assert phase.optimizer["weight_decay"] == best.params["weight_decay"]
    assert (phase.train_batch_size, phase.num_train_steps) == (8, 12)
    assert exported.phase(2) == experiment_lib.load_experiment(experiment).phase(2)


def test_a_study_refuses_to_mix_flags(tmp_path, corpus_records):
    space = tmp_path / "space.json"
    space.write_text(json.dumps(TEST_SPACE))
    experiment = write_experiment(str(tmp_path / "experiment.json"))
    common = [
        f"--search_space={space}",
        f"--experiment={experiment}",
        f"--input_file={corpus_records['p1']}",
        f"--model_dir={tmp_path / 'study'}",
        "--heldout_examples=32",
        "--report_only",
    ]
    search.run(*search.parse(["search", *common, "--num_trials=2"]))
    with pytest.raises(ValueError, match="was created with another num_trials"):
        search.run(*search.parse(["search", *common, "--num_trials=3"]))


# ---------------------------------------------------------------------------------------------
# The scaling study


def test_presets_load_and_the_tpu_preset_names_the_recipes():
    cpu = scaling.load_preset("cpu")
    tpu = scaling.load_preset("tpu")
    assert set(cpu.search_spaces) == set(tpu.search_spaces) == {"lamb", "adamw"}
    for name in tpu.experiments.values():
        assert experiment_lib.load_experiment(name).model == "large"
    for name in (*cpu.search_spaces.values(), *tpu.search_spaces.values()):
        space.load_search_space(name)
    # A fixed budget of examples: a batch twice as large takes half the steps.
    steps = [scaling.cell_steps(tpu, b)[0] for b in tpu.batch_sizes]
    assert all(
        s * b == pytest.approx(tpu.train_examples, rel=1e-3) for s, b in zip(steps, tpu.batch_sizes)
    )


@pytest.mark.slow
def test_the_scaling_study_end_to_end(tmp_path, corpus_records):
    preset = tmp_path / "mini.json"
    raw = dataclasses.asdict(scaling.load_preset("cpu"))
    experiment = write_experiment(str(tmp_path / "experiment.json"))
    raw.update(
        experiments={"lamb": experiment, "adamw": experiment},
        batch_sizes=[4, 16],
        train_examples=64,
        num_trials=2,
        heldout_examples=16,
        eval_batch_size=8,
        evaluations=2,
        target_accuracy=0.001,
        data="input_file",
    )
    preset.write_text(json.dumps(raw))
    options = opts.parse(
        scaling.RealityCheckOptions,
        [
            "reality_check",
            f"--preset={preset}",
            f"--output_dir={tmp_path / 'out'}",
            f"--input_file={corpus_records['p1']}",
            "--steps_per_loop=4",
            "--nojit_compile",  # the XLA path is tested above; this test is about the study
        ],
    )
    rows = scaling.run(options)
    assert [(r["optimizer"], r["batch"], r["steps"]) for r in rows] == [
        ("lamb", 4, 16), ("adamw", 4, 16), ("lamb", 16, 4), ("adamw", 16, 4)
    ]  # fmt: skip
    for r in rows:
        cell_dir = tmp_path / "out" / f"{r['optimizer']}_b{r['batch']}"
        cell = json.loads((cell_dir / "results.json").read_text())
        assert r["best_accuracy"] == max(t["mlm_accuracy"] for t in cell["trials"])
        reached = [t["steps_to_target"] for t in cell["trials"] if t["steps_to_target"]]
        assert r["steps_to_target"] == min(reached)
    # The same quasi-random points in every cell of one optimizer.
    points = [
        json.loads(pathlib.Path(tmp_path / "out" / f"adamw_b{b}" / "results.json").read_text())[
            "trials"
        ]
        for b in (4, 16)
    ]
    assert [t["peak_lr"] for t in points[0]] == [t["peak_lr"] for t in points[1]]
    table = pathlib.Path(tmp_path / "out" / "reality_check.md").read_text()
    assert table.count("| lamb |") == 2 and table.count("| adamw |") == 2
    assert os.path.getsize(tmp_path / "out" / "reality_check.png") > 10_000


def test_a_bad_preset_names_the_file_and_the_field(tmp_path):
    raw = dataclasses.asdict(scaling.load_preset("cpu"))
    raw["batch_sizes"] = "16,128"
    path = tmp_path / "preset.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=f"{path}: field 'batch_sizes' must be a list"):
        scaling.load_preset(str(path))
    raw["batch_sizes"] = [16, "128"]
    path.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=rf"{path}: field 'batch_sizes\[1\]' must be an integer"):
        scaling.load_preset(str(path))
    raw["batch_sizes"], raw["eval_batch_size"] = [16], 100
    path.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=f"{path}: eval_batch_size 100 must divide"):
        scaling.load_preset(str(path))
