"""Quiet TensorFlow start-up for the project's command-line tools.

Importing TensorFlow and finding its devices prints C++ log lines that say nothing useful on
a CPU or TPU host (no CUDA driver, `cuInit` failed, which CPU instructions the binary uses).
The packages import this module first; when the process is one of the project's programs
(`python -m bert.run_pretraining`, `python -m data.create_pretraining_data`, ...) and the user
has not chosen `TF_CPP_MIN_LOG_LEVEL`, TensorFlow is imported and its platforms are
initialized with the C++ stderr captured; afterwards every captured line that is not known
start-up noise is written back (once: TensorFlow loads two libraries that each print the
oneDNN line), and TF_CPP_MIN_LOG_LEVEL=2 keeps later INFO/WARNING C++ lines out while errors
still show. The project's own (Python) log lines are never touched. Set TF_CPP_MIN_LOG_LEVEL
yourself (e.g. 0) to see everything.

Child processes (the demo's stages) inherit the level set here; MARKER records that the
project set it, so a child quiets its own start-up too instead of taking the inherited value
for the user's choice.
"""

import contextlib
import os
import re
import sys
import tempfile

MARKER = "BERT_QUIET_START_SET_TF_CPP_MIN_LOG_LEVEL"  # its value: the level the project set
QUIET_LEVEL = "2"
PACKAGES = ("bert", "data", "optimization", "benchmarks")
NO_TENSORFLOW = ("data.squad_metric", "data.synthetic")  # programs that never import TensorFlow
# Set in the environment of worker processes that never use TensorFlow (the pretraining-data
# workers): their start-up imports nothing, though they inherit MARKER.
WITHOUT_TENSORFLOW = "BERT_PROCESS_WITHOUT_TENSORFLOW"
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


def user_chose_log_level() -> bool:
    """Whether TF_CPP_MIN_LOG_LEVEL is the user's (set, and not inherited from quiet_start)."""
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    return level is not None and level != os.environ.get(MARKER)


_LOG_PREFIX = re.compile(r"^[IWEF]\d{4} [\d:.]+ +\d+ ")  # absl's "I0000 00:00:<time> <thread> "


def _without_repeats(lines):
    """The lines with later copies of a C++ log message (same text after its prefix) left out.

    TensorFlow's oneDNN notice comes from two of its shared libraries, one copy each.
    """
    seen = set()
    for line in lines:
        message = _LOG_PREFIX.sub("", line)
        if message not in seen:
            seen.add(message)
            yield line


def quiet_start() -> None:
    """Imports TensorFlow and finds its devices with the start-up noise filtered out."""
    if "tensorflow" in sys.modules or user_chose_log_level():
        return
    if WITHOUT_TENSORFLOW in os.environ:  # Not now; quietly if something imports it later.
        if not any(isinstance(f, _QuietImport) for f in sys.meta_path):
            sys.meta_path.insert(0, _QuietImport())
        return
    # A project program, or a process one of them started (a multiprocessing fork server or
    # spawned worker: it inherits MARKER) that imports TensorFlow itself.
    argv = getattr(sys, "orig_argv", [])
    if len(argv) >= 3 and argv[1] == "-m" and argv[2] in NO_TENSORFLOW:
        return
    if not _is_project_program() and MARKER not in os.environ:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = os.environ[MARKER] = QUIET_LEVEL
    with _stderr_filtered():
        import tensorflow as tf

        tf.config.list_physical_devices()


@contextlib.contextmanager
def _stderr_filtered():
    """C++ start-up noise written to stderr (fd 2) inside is dropped; other lines are kept."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode("utf-8", "replace").splitlines(keepends=True)
            for line in _without_repeats(line for line in lines if not NOISE.search(line)):
                sys.stderr.write(line)
            sys.stderr.flush()


class _QuietImport:
    """A meta path finder: the first `import tensorflow` runs with its noise filtered out (a
    worker process that should not need TensorFlow, but whose __main__ may import it)."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        import importlib.util

        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            loader = spec.loader

            class _Loader:
                def create_module(self, spec):
                    return loader.create_module(spec)

                def exec_module(self, module):
                    with _stderr_filtered():
                        loader.exec_module(module)
                        module.config.list_physical_devices()  # as quiet_start does

            spec.loader = _Loader()
        return spec


@contextlib.contextmanager
def processes_without_tensorflow():
    """Processes started inside (e.g. a multiprocessing fork server) do not import TensorFlow
    when they start; if they import it later, its start-up noise is filtered as here."""
    previous = os.environ.get(WITHOUT_TENSORFLOW)
    os.environ[WITHOUT_TENSORFLOW] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ[WITHOUT_TENSORFLOW]
        else:
            os.environ[WITHOUT_TENSORFLOW] = previous


quiet_start()
