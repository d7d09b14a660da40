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

from bert.studies import analysis, scaling, scaling_report, search, space
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
    log_gradient_noise_scale
    keep_checkpoint_max keep_optimizer_state learning_rate max_eval_steps
    max_predictions_per_seq max_seq_length mixed_precision model_dir num_cpu_devices
    num_train_steps num_trials num_warmup_steps optimizer phase qmc_type report_only
    sampler_seed save_checkpoints_steps search_space seed skip_corrupt_records
    steps_per_loop storage strategy study_name target_accuracy tpu train_batch_size
    cell_max_examples eval_steps stop_at_accuracy threads
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
    assert sorted(values) == sorted(SEARCH_FLAGS)
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
    # Trials as run_pretraining phases with checkpoints (the path of large trials).
    args = (space, experiment, records, model_dir, "--cell_max_examples=0")

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


def test_small_trials_share_one_compiled_program(tmp_path, corpus_records):
    """The cell path: one trace for the study, timings recorded, no checkpoints, and
    rerun_point giving another seed's curve from the same program."""
    space = tmp_path / "space.json"
    space.write_text(json.dumps(TEST_SPACE))
    experiment = write_experiment(str(tmp_path / "experiment.json"), dropout=0.1)
    model_dir = tmp_path / "study"
    run, options = search.parse(
        [
            "search",
            f"--search_space={space}",
            f"--experiment={experiment}",
            f"--input_file={corpus_records['p1']}",
            f"--model_dir={model_dir}",
            "--num_trials=3",
            "--train_batch_size=8",
            "--num_train_steps=12",
            "--num_warmup_steps=2",
            "--heldout_examples=32",
            "--eval_batch_size=16",
            "--eval_steps=1,3,12",
            "--steps_per_loop=4",
            "--target_accuracy=0.001",
        ]
    )
    summary = search.run(run, options)
    complete = load_study(str(model_dir)).get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert sorted(t.user_attrs["point"] for t in complete) == [0, 1, 2]
    compiles = sorted(t.user_attrs["compile_seconds"] for t in complete)
    assert compiles[0] == compiles[1] == 0.0 < compiles[2]  # the first trial compiled
    for trial in complete:
        attrs = trial.user_attrs
        assert attrs["path"] == "cell" and attrs["steps"] == 12 and not attrs["stopped_early"]
        assert attrs["seconds"] > 0 and attrs["steps_per_second"] > 0
        assert [step for step, _ in attrs["curve"]] == [1, 3, 12]
        assert trial.value == attrs["curve"][-1][1] == attrs["eval"]["mlm_accuracy"]
        directory = model_dir / "trials" / f"point_{attrs['point']:04d}"
        assert not list(directory.glob("ckpt-*")) and (directory / "eval_log.jsonl").exists()
    rows = {r["point"]: r for r in summary["trials"]}
    assert all(rows[t.user_attrs["point"]]["seconds"] == t.user_attrs["seconds"] for t in complete)
    header = (model_dir / "results.csv").read_text().splitlines()[0].split(",")
    assert {"compile_seconds", "seconds", "steps", "steps_per_second", "stopped_early"} < set(
        header
    )
    # Seed noise of a point: the same program, another seed's curve.
    program = search._PROGRAM["program"]
    traces = program.tracing_count()
    [again] = search.rerun_point(run, options, 0, [run.seed + 1])
    assert program.tracing_count() == traces == 2
    assert [step for step, _ in again] == [1, 3, 12]
    first = next(t for t in complete if t.user_attrs["point"] == 0).user_attrs["curve"]
    assert again != first


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
    # The step budgets of the papers: Nado et al.'s Table 7 (and You et al.'s at 32K).
    assert scaling.cell_steps(tpu, 32768)[0] == 14063
    assert scaling.cell_steps(tpu, 65536)[0] == 7037
    # The CPU study: >= 5 batch sizes over >= 16x, >= 12 trials per cell.
    assert len(cpu.batch_sizes) >= 5 and max(cpu.batch_sizes) >= 16 * min(cpu.batch_sizes)
    assert all(cpu.trials(o) >= 12 for o in cpu.search_spaces)
    for preset in (cpu, tpu):
        budgets = [scaling.cell_steps(preset, b) for b in sorted(preset.batch_sizes)]
        for steps, warmup, evals in budgets:
            assert 0 < warmup < steps and evals[-1] == steps and len(evals) >= 10
            ratios = [b / a for a, b in zip(evals, evals[1:])]
            assert max(ratios) < 2.5  # log-spaced: no doubling of the run unobserved
        # No budget asks for better than perfect scaling: a larger batch never gets fewer
        # examples than a smaller one (Nado et al.: fixed examples demand perfect scaling).
        examples = [s * b for (s, _, _), b in zip(budgets, sorted(preset.batch_sizes))]
        assert examples == sorted(examples)
        # The same density of trials per decade of learning rate for both optimizers.
        density = set()
        for optimizer, name in preset.search_spaces.items():
            lr = {p.name: p for p in space.load_search_space(name).parameters}["peak_lr"]
            density.add(round(preset.trials(optimizer) / math.log10(lr.high / lr.low), 6))
        assert len(density) == 1, density


def test_flags_override_the_presets_fields():
    options = opts.parse(
        scaling.RealityCheckOptions,
        ["reality_check", "--preset=cpu", "--batch_sizes=16", "--num_trials=3"],
    )
    cells = scaling.plan(scaling.resolve(options))
    assert [(c.optimizer, c.batch, c.trials) for c in cells] == [("lamb", 16, 3), ("adamw", 16, 3)]


def test_the_dry_run_prints_the_plan_with_its_cost(capsys):
    options = opts.parse(
        scaling.RealityCheckOptions, ["reality_check", "--preset=tpu", "--dry_run"]
    )
    assert scaling.run(options) is None
    out = capsys.readouterr().out
    preset = scaling.load_preset("tpu")
    total = sum(
        preset.trials(o) * scaling.cell_steps(preset, b)[0]
        for b in preset.batch_sizes
        for o in preset.search_spaces
    )
    assert "lamb_b65536 | 32 | 7,037 |" in out and f"{total:,} steps" in out


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_the_scaling_study_end_to_end(tmp_path, corpus_records, workers):
    """Two batch sizes, three trials per cell: the JSON fields the study's readers use; with 2
    workers, the processes --workers starts share the cells' trials and seed repeats."""
    preset = tmp_path / "mini.json"
    raw = dataclasses.asdict(scaling.load_preset("cpu"))
    experiment = write_experiment(str(tmp_path / "experiment.json"))
    raw.update(
        experiments={"lamb": experiment, "adamw": experiment},
        batch_sizes=[4, 16],
        reference_batch=4,
        reference_steps=16,
        budget_exponent=1.0,
        num_trials=3,
        trials_by_optimizer={},
        heldout_examples=16,
        eval_batch_size=8,
        evaluations=4,
        gradient_accumulation_steps=2,
        seed_repeats=1,
        substudy_size=2,
        target_accuracy=0.001,
        data="input_file",
        workers=workers,
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
        ],
    )
    scaling.run(options)
    result = json.loads((tmp_path / "out" / "reality_check.json").read_text())
    cells = result["cells"]
    assert [(c["optimizer"], c["batch"], c["budget"]) for c in cells] == [
        ("lamb", 4, 16), ("adamw", 4, 16), ("lamb", 16, 4), ("adamw", 16, 4)
    ]  # fmt: skip
    target = result["headline_target"]
    assert target == 0.001  # the preset's (the ladder is read from the curves otherwise)
    compiled = 0
    for c in cells:
        assert len(c["trials"]) == 3
        for t in c["trials"]:
            assert t["seconds"] > 0 and t["compile_seconds"] >= 0
            compiled += t["compile_seconds"] > 0
        # The headline target is reached by every cell: its best crossing is in the interval.
        hit = c["steps_to_target"]
        assert hit["target"] == target and hit["low"] <= hit["value"] <= c["budget"]
        assert hit["high"] is None or hit["high"] >= hit["value"]
        crossings = [analysis.crossing_step(t["curve"], target) for t in c["trials"] if t["curve"]]
        assert hit["value"] == pytest.approx(min(x for x in crossings if x is not None))
        # The noise scale of the cell is its best trial's (accumulation 2: every trial has one).
        best = max(c["trials"], key=lambda t: t["mlm_accuracy"])
        assert best["gradient_noise_scale"] and c["gradient_noise_scale"] == pytest.approx(
            best["gradient_noise_scale"]
        )
        assert len(c["seeds"]) == (1 if c["batch"] in (4, 16) else 0)
    run = result["run"]
    assert run["trials"] == 12 and run["seed_repeats"] == 4 and run["workers"] == workers
    assert 0 < run["compile_seconds"] < run["trial_seconds"] < workers * run["wall_seconds"]
    # One program per cell and worker: the first trial of each compiles, the others do not.
    assert len(cells) <= compiled <= workers * len(cells)
    if workers == 1:
        assert compiled == len(cells)
    for fit in result["optimizers"].values():
        crit = fit["critical_batch"]
        assert crit is None or {"value", "low", "high"} <= set(crit)
    # The same quasi-random points in every cell of one optimizer.
    points = [
        json.loads((tmp_path / "out" / f"adamw_b{b}" / "results.json").read_text())["trials"]
        for b in (4, 16)
    ]
    assert [t["peak_lr"] for t in points[0]] == [t["peak_lr"] for t in points[1]]
    table = (tmp_path / "out" / "reality_check.md").read_text()
    for c in cells:  # one table row per cell, then one fit row per optimizer
        assert table.count(f"| {c['optimizer']} | {c['batch']:,} | {c['budget']:,} |") == 1
    assert table.count("| lamb |") == table.count("| adamw |") == 3
    assert os.path.getsize(tmp_path / "out" / "reality_check.png") > 10_000
    # The README's copy: regenerated between its markers from the JSON, never typed.
    readme = tmp_path / "README.md"
    begin, end = scaling_report.README_BEGIN, scaling_report.README_END
    readme.write_text(f"intro\n{begin}\nold numbers\n{end}\nafter\n")
    scaling_report.update_readme(str(tmp_path / "out"), str(readme))
    text = readme.read_text()
    assert "old numbers" not in text and text.startswith("intro\n") and text.endswith("after\n")
    for c in cells:
        assert f"| {c['optimizer']} | {c['batch']:,} | {c['budget']:,} |" in text


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
