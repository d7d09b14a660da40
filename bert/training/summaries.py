"""What a training run reports: progress lines with an ETA, TensorBoard scalars and JSON logs.

Training writes model_dir/train (TensorBoard) and train_log.jsonl (one line per host call,
with the gradient noise scale and its parts when measured, see `step.GradientNoiseScale`);
evaluation writes model_dir/eval, eval_results.json (the latest) and eval_log.jsonl (one line
per evaluation: the learning curve). Only the chief writes files; every worker logs.
"""

import json
import os
import time

import tensorflow as tf
from absl import logging

from data import fileio


def format_seconds(seconds: float) -> str:
    """H:MM:SS."""
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def write_scalars(writer, step: int, values: dict) -> None:
    """One TensorBoard scalar per entry of `values` at `step` ("step" itself is skipped)."""
    with writer.as_default(step=step):
        for name, value in values.items():
            if name != "step":
                tf.summary.scalar(name, value)


def _append_json_line(path: str, entry: dict) -> None:
    with tf.io.gfile.GFile(path, "a") as f:
        f.write(json.dumps(entry) + "\n")


class TrainSummaries:
    """The progress log line, TensorBoard scalars and train_log.jsonl of a training run.

    Args:
      model_dir: where model_dir/train and train_log.jsonl go.
      is_chief: whether this worker writes files (others only log).
      num_train_steps: the run's length (progress and ETA).
      log_metrics: the task's metric name -> short name in the progress line.
    """

    def __init__(self, model_dir: str, is_chief: bool, num_train_steps: int, log_metrics: dict):
        self.is_chief = is_chief
        self.num_train_steps = num_train_steps
        self.log_metrics = log_metrics
        self.log_path = os.path.join(model_dir, "train_log.jsonl")
        self.writer = (
            tf.summary.create_file_writer(os.path.join(model_dir, "train"))
            if is_chief
            else tf.summary.create_noop_writer()
        )
        self._start_step, self._start_time = 0, time.time()

    def start(self, step: int) -> None:
        """Marks where this process's training started (the ETA's rate counts from here)."""
        self._start_step, self._start_time = step, time.time()

    def progress(self, metrics: dict) -> None:
        """Logs the progress line of one host call and writes its scalars."""
        step, total = metrics["step"], self.num_train_steps
        eta = (time.time() - self._start_time) / max(step - self._start_step, 1) * (total - step)
        task_part = "".join(
            f" {short} {metrics[name]:.3f}" for name, short in self.log_metrics.items()
        )
        if "gradient_noise_scale" in metrics:  # B_simple, in examples (step.GradientNoiseScale)
            task_part += f" noise_scale {metrics['gradient_noise_scale']:.4g}"
        logging.info(
            "step %d/%d (%.1f%%) loss %.4f%s lr %.3g | %.2f steps/s %.1f examples/s | ETA %s",
            step,
            total,
            100.0 * step / total,
            metrics["loss"],
            task_part,
            metrics["learning_rate"],
            metrics["steps_per_second"],
            metrics["examples_per_second"],
            format_seconds(eta),
        )
        write_scalars(self.writer, step, metrics)

    def scalars(self, step: int, values: dict) -> None:
        """Writes more scalars of the host call ending at `step` (e.g. input counters)."""
        write_scalars(self.writer, step, values)

    def append_log(self, metrics: dict) -> None:
        """Appends one host call's metrics to train_log.jsonl (chief only)."""
        if self.is_chief:
            _append_json_line(self.log_path, metrics)

    def flush(self) -> None:
        self.writer.flush()


class EvalSummaries:
    """eval_results.json, eval_log.jsonl and model_dir/eval scalars of a run's evaluations."""

    def __init__(self, model_dir: str, is_chief: bool):
        self.model_dir, self.is_chief = model_dir, is_chief
        self._writer = None  # created at the first evaluation

    def write(self, results: dict) -> None:
        """Records one evaluation's `results` (with "step") and logs them."""
        if self.is_chief:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(os.path.join(self.model_dir, "eval"))
            with self._writer.as_default(step=results["step"]):
                for name, value in results.items():
                    tf.summary.scalar(name, value)
            self._writer.flush()
            fileio.write_json_atomic(os.path.join(self.model_dir, "eval_results.json"), results)
            _append_json_line(os.path.join(self.model_dir, "eval_log.jsonl"), results)
        logging.info("eval at step %d: %s", results["step"], json.dumps(results))
