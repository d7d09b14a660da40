"""The main job as the README runs it: the whole miniature reproduction on the embedded data."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

from bert import demo_report
from data import tf_startup
from optimization import create_schedule


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo as a user starts it: no TF_CPP_MIN_LOG_LEVEL of their own."""
    out = tmp_path_factory.mktemp("demo")
    cmd = [
        sys.executable,
        "-m",
        "bert.demo",
        f"--output_dir={out}",
        "--phase_steps_scale=1.0",
        "--squad_epochs=3",
    ]
    env = {
        k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", tf_startup.MARKER)
    }
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200, env=env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return out, proc.stdout, proc.stderr


@pytest.mark.slow
def test_demo_reports_every_stage_and_writes_plots(demo_run):
    out, stdout, stderr = demo_run
    report = json.loads((out / "report.json").read_text())
    stages = [row["stage"] for row in report["rows"]]
    assert stages == ["phase1", "phase2", "squad"]
    phase1, phase2, squad = report["rows"]
    assert (phase1["seq_len"], phase2["seq_len"]) == (128, 512)
    assert phase1["batch"] != phase2["batch"]
    assert "| lamb | squad |" in stdout
    for plot in report["plots"]:
        with open(plot, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    report_md = (out / "report.md").read_text()
    assert report_md.startswith("The main job, `python -m bert.demo ") and "CPU cores" in report_md
    assert "| lamb | squad |" in report_md
    # No TensorFlow start-up noise from the demo or any of its stages (child processes).
    noise = [line for line in (stdout + stderr).splitlines() if tf_startup.NOISE.search(line)]
    assert not noise, noise[:5]


@pytest.mark.slow
def test_demo_phase2_rewarms_its_learning_rate_from_zero(demo_run):
    """Every logged phase-2 rate is the phase-2 schedule at the phase's own step, from 0."""
    out = demo_run[0]
    recipe = json.loads((out / "lamb" / "experiment_lamb.json").read_text())
    phase1, phase2 = recipe["phases"]
    config = dict(phase2["schedule"])
    schedule = create_schedule(config.pop("kind"), **config)
    assert float(schedule(0)) == 0.0  # the recipe re-warms from zero
    with open(out / "lamb" / "phase2" / "train_log.jsonl") as f:
        logged = [json.loads(line) for line in f if line.strip()]
    steps = [entry["step"] for entry in logged]
    # Phase-local steps (not continuing phase 1's 300), up to the phase's end.
    assert steps[0] <= phase2["num_train_steps"] // 4 and steps[-1] == phase2["num_train_steps"]
    assert steps[0] < phase1["num_train_steps"]
    for entry in logged:
        # The rate of update number `step` is the schedule at step - 1.
        expected = float(schedule(entry["step"] - 1))
        assert entry["learning_rate"] == pytest.approx(expected, rel=1e-5, abs=1e-9), entry
    # By hand for the linear warmup_poly of the tiny recipes: the first logged update.
    if phase2["schedule"]["kind"] == "warmup_poly":
        peak, warmup = phase2["schedule"]["peak_lr"], phase2["schedule"]["warmup_steps"]
        total, s = phase2["schedule"]["total_steps"], steps[0] - 1
        by_hand = peak * s / warmup if s < warmup else peak * (total - s) / (total - warmup)
        assert logged[0]["learning_rate"] == pytest.approx(by_hand, rel=1e-5)


@pytest.mark.slow
def test_demo_fine_tuning_beats_trivial_baselines(demo_run):
    out = demo_run[0]
    report = json.loads((out / "report.json").read_text())
    f1 = report["rows"][-1]["f1"]
    random_f1, first_sentence_f1 = demo_report.trivial_baselines(report["data"]["squad_dev"])
    assert random_f1 < 10 and first_sentence_f1 < 15
    assert f1 > 2 * max(random_f1, first_sentence_f1), (f1, random_f1, first_sentence_f1)


def test_update_readme_replaces_the_hand_typed_section_then_its_own(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Title\n\n## Results\n\n"
        "The main job, `bash scripts/demo.sh` (tiny BERT; 9.2 min wall):\n\n"
        "| optimizer | stage | steps | batch | seq len | final loss | MLM acc | EM | F1 | "
        "wall s |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        "| lamb | squad | 315 | 32 | 192 | - | - | 21.5 | 30.9 | 219 |\n\nAfter.\n"
    )
    rows = [
        dict(optimizer="lamb", stage="squad", steps=315, batch=32, seq_len=192, final_loss=None,
             mlm_accuracy=None, exact_match=12.7, f1=19.2, seconds=216.0)
    ]  # fmt: skip
    report = tmp_path / "report.md"
    report.write_text(
        demo_report.report_markdown(rows, "python -m bert.demo", "tiny BERT, LAMB", 216.0)
    )
    for _ in range(2):  # The second time between the markers the first one left.
        demo_report.update_readme(str(report), str(readme))
        text = readme.read_text()
        assert text.startswith("# Title\n\n## Results\n\n" + demo_report.BEGIN)
        assert text.endswith(demo_report.END + "\n\nAfter.\n")
        assert (
            "21.5" not in text and "| lamb | squad | 315 | 32 | 192 | - | - | 12.7 | 19.2 |" in text
        )
        assert "min wall" in text and "CPU cores" in text
