"""What a user sees on the command line: TensorFlow's C++ start-up noise is hidden by default."""

import os
import subprocess
import sys

import pytest
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


@pytest.mark.slow
def test_start_up_noise_is_hidden_unless_the_user_sets_a_log_level():
    loud = run_help("bert.run_pretraining", TF_CPP_MIN_LOG_LEVEL="0")
    noise = [line for line in loud.splitlines() if tf_startup.NOISE.search(line)]
    assert noise, "TensorFlow printed no start-up lines here: nothing to check"
    for module in ("bert.run_pretraining", "bert.run_squad"):
        quiet = run_help(module)
        assert "--init_checkpoint" in quiet and "--strategy" in quiet  # its own flags stay
        assert not [line for line in quiet.splitlines() if tf_startup.NOISE.search(line)]
        # Not noise, but TensorFlow prints it from two of its libraries: shown once.
        assert quiet.count("oneDNN custom operations") <= 1


def run_child_of_quiet_parent(module, **env):
    """`module --helpshort` started by a parent program that quieted its own start-up."""
    parent = (
        "import os, subprocess, sys\n"
        f"sys.orig_argv = [sys.executable, '-m', 'bert.demo']\n"  # as `python -m bert.demo`
        "import data\n"
        "print('parent level:', os.environ.get('TF_CPP_MIN_LOG_LEVEL'), flush=True)\n"
        f"subprocess.run([sys.executable, '-m', {module!r}, '--helpshort'])\n"
    )
    base = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    base.pop(tf_startup.MARKER, None)
    proc = subprocess.run(
        [sys.executable, "-c", parent],
        cwd=REPO_ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_children_of_a_quiet_program_start_quietly_unless_the_user_sets_a_log_level():
    # A program that imports TensorFlow when it starts (create_pretraining_data no longer does:
    # its worker processes import it as their __main__).
    quiet = run_child_of_quiet_parent("data.learn_vocab")
    assert "parent level: 2" in quiet  # the parent set the level; the child inherits it
    assert "--vocab_size" in quiet
    assert not [line for line in quiet.splitlines() if tf_startup.NOISE.search(line)]
    loud = run_child_of_quiet_parent("data.learn_vocab", TF_CPP_MIN_LOG_LEVEL="0")
    assert "parent level: 0" in loud
    assert [line for line in loud.splitlines() if tf_startup.NOISE.search(line)]


def test_create_pretraining_data_flags_come_from_its_options():
    from data import cli
    from data.create_pretraining_data import CreatePretrainingDataOptions
    from data.pretraining_instances import InstanceOptions

    defaults = cli.parse(CreatePretrainingDataOptions, ["prog"])
    assert defaults.instance_options() == InstanceOptions()  # one set of defaults
    assert defaults.hf_dataset == [] and defaults.num_output_shards == 0
    options = cli.parse(
        CreatePretrainingDataOptions,
        ["prog", "--no_masking", "--hf_dataset=a:x,b", "--max_seq_length=64", "--nodo_lower_case"],
    )
    assert options.hf_dataset == ["a:x", "b"] and not options.do_lower_case
    assert options.instance_options() == InstanceOptions(max_seq_length=64, masking=False)


def test_options_given_back_as_flags_parse_to_the_same_options():
    import dataclasses

    from data import cli
    from data.create_pretraining_data import CreatePretrainingDataOptions

    changed = dataclasses.replace(
        cli.parse(CreatePretrainingDataOptions, ["prog"]),
        hf_dataset=["a:x", "b"],
        max_seq_length=64,
        do_lower_case=False,
        masked_lm_prob=0.2,
    )
    assert cli.parse(CreatePretrainingDataOptions, ["prog", *cli.to_argv(changed)]) == changed


@pytest.mark.slow
def test_a_worker_process_of_a_quiet_program_starts_quietly():
    """A process a quiet program starts that is not itself `python -m <project>` (e.g. the fork
    server of data.create_pretraining_data's workers) still imports TensorFlow quietly."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update({"TF_CPP_MIN_LOG_LEVEL": "2", tf_startup.MARKER: "2"})  # as inherited
    proc = subprocess.run(
        [sys.executable, "-c", "import data.pretraining_records"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not [line for line in proc.stderr.splitlines() if tf_startup.NOISE.search(line)]


@pytest.mark.slow
def test_a_process_started_without_tensorflow_imports_it_quietly_if_it_must():
    """A worker started under processes_without_tensorflow does not import TensorFlow when it
    starts; if its __main__ (e.g. the demo) imports it anyway, the start-up noise is filtered."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update({"TF_CPP_MIN_LOG_LEVEL": "2", tf_startup.MARKER: "2"})
    env[tf_startup.WITHOUT_TENSORFLOW] = "1"
    code = (
        "import sys, data\n"
        "print('at start:', 'tensorflow' in sys.modules, flush=True)\n"
        "import tensorflow as tf\n"
        "tf.constant(1)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "at start: False" in proc.stdout
    assert not [line for line in proc.stderr.splitlines() if tf_startup.NOISE.search(line)]
