"""The host loop of training and its stopping rules (the role of Orbit's controller).

Between host calls of the compiled loop the host logs and writes summaries, checkpoints every
`save_checkpoints_steps`, evaluates every `eval_every_steps`, and stops: at
`num_train_steps`; with FloatingPointError when the loss is not finite; on SIGTERM (a Cloud
TPU preemption or maintenance event, a Kubernetes eviction) after the running host call, with
a checkpoint at that step on every worker, raising Preempted.
"""

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator

import tensorflow as tf


class Preempted(Exception):
    """Training stopped on SIGTERM after saving a checkpoint at the current step."""

    exit_code = 143  # 128 + SIGTERM, what a shell reports for a job the signal ended

    def __init__(self, step: int, checkpoint: str):
        super().__init__(
            f"Stopped by SIGTERM at step {step}; saved {checkpoint}. "
            "Run the same command again to resume from there."
        )
        self.step, self.checkpoint = step, checkpoint


@contextlib.contextmanager
def sigterm_flag() -> Iterator[threading.Event]:
    """An event set when the process gets SIGTERM, instead of dying at once.

    Only the main thread can install signal handlers; elsewhere the event is never set. The
    previous handler is back when the block ends.
    """
    sigterm = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: sigterm.set())
    try:
        yield sigterm
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def any_worker_stopped(strategy, sigterm: threading.Event) -> bool:
    """Whether any worker got SIGTERM; workers agree, so that all save at the same step."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return sigterm.is_set()
    flag = float(sigterm.is_set())
    values = strategy.experimental_distribute_values_from_function(lambda ctx: tf.constant(flag))
    return float(strategy.reduce(tf.distribute.ReduceOp.SUM, values, axis=None)) > 0


def host_call_steps(step: int, options, eval_every: int) -> int:
    """Updates of the next host call: up to `steps_per_loop`, ending on save and eval steps."""
    num_steps = min(options.steps_per_loop, options.num_train_steps - step)
    if options.save_checkpoints_steps:  # Loops end on save steps.
        num_steps = min(
            num_steps, options.save_checkpoints_steps - step % options.save_checkpoints_steps
        )
    if eval_every:  # ... and on evaluation steps.
        num_steps = min(num_steps, eval_every - step % eval_every)
    return num_steps


class Controller:
    """Runs host calls until `num_train_steps`, with the logs, saves and stops between them.

    Args:
      options: the run's TrainerOptions.
      strategy: the run's tf.distribute strategy (workers agree on stopping).
      checkpointer: the run's `checkpointing.Checkpointer`.
      summaries: the run's `summaries.TrainSummaries`.
      current_step: () -> updates applied so far.
      metrics: (totals, num_steps, loop_time, step) -> the metrics of one host call.
    """

    def __init__(self, options, strategy, checkpointer, summaries, current_step, metrics):
        self.options, self.strategy = options, strategy
        self.checkpointer, self.summaries = checkpointer, summaries
        self.current_step, self.metrics = current_step, metrics

    def run(
        self,
        run: Callable[[int, int], dict],
        step: int,
        sigterm: threading.Event,
        host_metrics: Callable[[], dict] | None = None,
        evaluate: Callable[[], dict] | None = None,
    ) -> dict:
        """Trains from `step` with `run(step, num_steps)`; returns the last host call's metrics."""
        opts = self.options
        eval_every = opts.eval_every_steps if evaluate else 0
        self.summaries.start(step)
        last = {}
        while step < opts.num_train_steps:
            num_steps = host_call_steps(step, opts, eval_every)
            loop_start = time.time()
            totals = run(step, num_steps)
            loop_time = time.time() - loop_start
            step = self.current_step()
            last = self.metrics(totals, num_steps, loop_time, step)
            self.summaries.progress(last)
            if host_metrics:
                extra = {name: float(value) for name, value in host_metrics().items()}
                self.summaries.scalars(step, extra)
                last.update(extra)
            if not math.isfinite(last["loss"]):
                raise FloatingPointError(
                    f"Loss became {last['loss']} in the {num_steps} steps ending at step {step}; "
                    f"stopping. The last good checkpoint is {self.checkpointer.latest}."
                )
            self.summaries.append_log(last)
            if opts.save_checkpoints_steps and (
                step % opts.save_checkpoints_steps == 0 or step >= opts.num_train_steps
            ):
                self.checkpointer.save()
            if eval_every and step % eval_every == 0 and step < opts.num_train_steps:
                evaluate()
            if any_worker_stopped(self.strategy, sigterm):
                self.summaries.flush()
                latest = self.checkpointer.latest
                if not (latest and latest.endswith(f"-{step}")):  # not saved at this step yet
                    latest = self.checkpointer.save()
                raise Preempted(step, latest)
        self.summaries.flush()
        return last
