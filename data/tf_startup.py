"""Quiet TensorFlow start-up for the project's command-line tools.

Importing TensorFlow and finding its devices prints C++ log lines that say nothing useful on
a CPU or TPU host (no CUDA driver, `cuInit` failed, which CPU instructions the binary uses).
The packages import this module first; when the process is one of the project's programs
(`python -m bert.run_pretraining`, `python -m data.create_pretraining_data`, ...) and the user
has not chosen `TF_CPP_MIN_LOG_LEVEL`, TensorFlow is imported and its platforms are
initialized with the C++ stderr captured; afterwards every captured line that is not known
start-up noise is written back, and TF_CPP_MIN_LOG_LEVEL=2 keeps later INFO/WARNING C++ lines
out while errors still show. The project's own (Python) log lines are never touched. Set
TF_CPP_MIN_LOG_LEVEL yourself (e.g. 0) to see everything.
"""

import os
import re
import sys
import tempfile

PACKAGES = ("bert", "data", "optimization", "benchmarks")
NO_TENSORFLOW = ("data.squad_metric", "data.synthetic")  # programs that never import TensorFlow
NOISE = re.compile(
    r"All log messages before absl::InitializeLog|cudart_stub\.cc|cuda_platform\.cc|"
    r"failed call to cuInit|cuda_executor|cpu_feature_guard\.cc|"
    r"To enable the following instructions|rebuild TensorFlow with the appropriate compiler"
)


def _is_project_program() -> bool:
    argv = getattr(sys, "orig_argv", [])
    return (
        len(argv) >= 3
        and argv[1] == "-m"
        and argv[2].split(".")[0] in PACKAGES
        and argv[2] not in NO_TENSORFLOW
    )


def quiet_start() -> None:
    """Imports TensorFlow and finds its devices with the start-up noise filtered out."""
    if "tensorflow" in sys.modules or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return
    if not _is_project_program():
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode("utf-8", "replace").splitlines(keepends=True):
                if not NOISE.search(line):
                    sys.stderr.write(line)
            sys.stderr.flush()


quiet_start()
