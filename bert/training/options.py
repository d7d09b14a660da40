"""The runtime every training entry point shares, as options (flags come from `data.cli`).

`RuntimeOptions` holds what every entry point shares (distribution strategy, mixed precision,
XLA, seed) and `start_runtime` turns it into a strategy (`set_mixed_precision` and
`MIXED_PRECISION` are re-exported from `bert.training.precision`). `option`, `define_flags`,
`from_flags` and `parse` (re-exported from `data.cli`) make an options dataclass a set of
flags.

    @dataclasses.dataclass
    class MyOptions(RuntimeOptions):
        model_dir: str | None = option(None, "Where checkpoints go.")

    options = parse(MyOptions, ["prog", "--model_dir=/tmp/x"])
"""

import dataclasses
import sys
from collections.abc import Callable
from typing import TypeVar

from absl import logging

from bert.training import distribute
from bert.training.controller import Preempted
from bert.training.precision import MIXED_PRECISION, set_mixed_precision
from data.cli import define_flags, from_flags, option, parse  # noqa: F401 (re-exported)

T = TypeVar("T")


@dataclasses.dataclass
class RuntimeOptions:
    """Where and how a job runs; shared by pretraining and fine-tuning."""

    strategy: str = option("one_device", "tf.distribute strategy.", distribute.STRATEGIES)
    tpu: str = option("", "TPU name or grpc address for TPUClusterResolver.")
    num_cpu_devices: int = option(
        0, "With --strategy=mirrored on a CPU-only host: logical CPU devices to use."
    )
    mixed_precision: str = option("none", "Compute dtype policy.", MIXED_PRECISION)
    jit_compile: bool = option(True, "XLA-compile the training steps.")
    seed: int = option(12345, "Seed of the input order, initialization and dropout.")
    threads: int = option(
        0,
        "TensorFlow's intra- and inter-op threads in this process (0: its default, one per "
        "core). Several search workers on one machine each take a share of its cores.",
    )


def set_threads(threads: int) -> None:
    """Sizes TensorFlow's thread pools (0: leave them); must come before TensorFlow runs an op.

    Nothing to do when they already have that size (a process running several trials).
    """
    import tensorflow as tf

    threading = tf.config.threading
    if not threads or (
        threading.get_intra_op_parallelism_threads() == threads
        and threading.get_inter_op_parallelism_threads() == threads
    ):
        return
    try:
        threading.set_intra_op_parallelism_threads(threads)
        threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError as e:
        raise RuntimeError(
            f"--threads={threads} must be set before TensorFlow runs its first op: {e}"
        ) from None


def start_runtime(runtime: RuntimeOptions):
    """Seeds, sets the dtype policy and returns the tf.distribute strategy of `runtime`."""
    set_threads(runtime.threads)
    if runtime.strategy == "mirrored":  # Logical CPU devices must exist before TF starts.
        distribute.configure_cpu_devices(runtime.num_cpu_devices)
    import keras

    keras.utils.set_random_seed(runtime.seed)
    set_mixed_precision(runtime.mixed_precision)
    return distribute.create_strategy(runtime.strategy, runtime.tpu, runtime.num_cpu_devices)


def exit_if_preempted(job: Callable[[], T], hint: str = "") -> T:
    """Runs an entry point's `job`; a preempted one (checkpoint saved) exits with status 143.

    `hint` is logged after the preemption message (e.g. how to resume).
    """
    try:
        return job()
    except Preempted as e:
        logging.warning("%s%s", e, f"; {hint}" if hint else "")
        sys.exit(e.exit_code)
