"""What a user sees on the command line: TensorFlow's C++ start-up noise is hidden by default."""

import os
import subprocess
import sys

from conftest import REPO_ROOT

from data import tf_startup


def run_help(module, **env):
    base = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run(
        [sys.executable, "-m", module, "--helpshort"],
        cwd=REPO_ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc.stdout + proc.stderr  # absl's --helpshort exits with status 1


def test_start_up_noise_is_hidden_unless_the_user_sets_a_log_level():
    loud = run_help("bert.run_pretraining", TF_CPP_MIN_LOG_LEVEL="0")
    noise = [line for line in loud.splitlines() if tf_startup.NOISE.search(line)]
    assert noise, "TensorFlow printed no start-up lines here: nothing to check"
    for module in ("bert.run_pretraining", "bert.run_squad"):
        quiet = run_help(module)
        assert "--init_checkpoint" in quiet and "--strategy" in quiet  # its own flags stay
        assert not [line for line in quiet.splitlines() if tf_startup.NOISE.search(line)]
