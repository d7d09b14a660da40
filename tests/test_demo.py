"""The main job as the README runs it: the whole miniature reproduction on the embedded data."""

import json
import os
import random
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

from data import squad_metric


def trivial_baselines(dev_file):
    """F1 of random short spans and of the first sentence of each paragraph."""
    with open(dev_file) as f:
        dataset = json.load(f)["data"]
    rng = random.Random(0)
    random_spans, first_sentence = {}, {}
    for article in dataset:
        for paragraph in article["paragraphs"]:
            words = paragraph["context"].split()
            for qa in paragraph["qas"]:
                n = rng.randint(1, 3)
                start = rng.randrange(0, len(words) - n)
                random_spans[qa["id"]] = " ".join(words[start : start + n])
                first_sentence[qa["id"]] = paragraph["context"].split(". ")[0]
    return (
        squad_metric.evaluate(dataset, random_spans)["f1"],
        squad_metric.evaluate(dataset, first_sentence)["f1"],
    )


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    cmd = [
        sys.executable,
        "-m",
        "bert.demo",
        f"--output_dir={out}",
        "--phase_steps_scale=1.0",
        "--squad_epochs=3",
    ]
    proc = subprocess.run(
        cmd,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return out, proc.stdout


def test_demo_reports_every_stage_and_writes_plots(demo_run):
    out, stdout = demo_run
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
    # Phase 2 re-warms from zero: its first logged update used learning rate 0.
    with open(out / "lamb" / "phase2" / "train_log.jsonl") as f:
        first = json.loads(f.readline())
    assert first["learning_rate"] == 0.0 or first["step"] > 1


def test_demo_fine_tuning_beats_trivial_baselines(demo_run):
    out, _ = demo_run
    report = json.loads((out / "report.json").read_text())
    f1 = report["rows"][-1]["f1"]
    random_f1, first_sentence_f1 = trivial_baselines(report["data"]["squad_dev"])
    assert random_f1 < 10 and first_sentence_f1 < 15
    assert f1 > 2 * max(random_f1, first_sentence_f1), (f1, random_f1, first_sentence_f1)
