"""One training loop for every task: compiled steps, checkpoints, resume, logs, stopping rules.

`Trainer(strategy, model, optimizer, schedule, task, options)` runs the optimizer updates of a
task under any tf.distribute strategy. One host call of the compiled loop runs
`steps_per_loop` updates on the accelerators (each `gradient_accumulation_steps` micro-batches),
so the host only wakes up to log, write summaries and checkpoint.

A task (`bert.tasks.pretraining.PretrainingTask`, `bert.run_squad.SquadTask`, or a new one) owns
only what differs between tasks: which features the model reads, the loss and the numerators of its
metrics. A task implements:

    model_inputs(batch) -> dict                  # the features the model reads
    trainable_variables(model) -> list           # what the optimizer updates
    global_counts(batch) -> dict                 # local sums the trainer all-reduces (SUM)
    losses(outputs, batch, counts, global_batch_size) -> dict
        # this replica's "loss" (its local sum divided by a GLOBAL count, so the sum over
        # replicas that the optimizer takes is the gradient of the global-batch mean) plus
        # metric numerators, all scalars
    metrics(totals, micro_steps) -> dict         # host-side metrics from summed numerators
    log_metrics: dict                            # metric name -> short name in the log line

Checkpoints hold the model, optimizer (moments, update count), the dropout generators' states
and, with fp16, the loss scale; a restarted job resumes at its last checkpoint and skips the
batches it already used. Under MultiWorkerMirroredStrategy every worker saves (the save is
collective); only the chief's copy is the real one, the others go to `worker_tmp_N`.
"""

import dataclasses
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from bert.modeling import models
from bert.training import distribute
from data import fileio


@dataclasses.dataclass
class TrainerOptions:
    """What a training run needs besides the model, optimizer and task."""

    model_dir: str  # logs, summaries, evaluation results (and checkpoints by default)
    num_train_steps: int
    train_batch_size: int  # global batch per optimizer update
    gradient_accumulation_steps: int = 1
    steps_per_loop: int = 100
    save_checkpoints_steps: int = 1000  # 0: never (nor at the end)
    keep_checkpoint_max: int = 5
    eval_every_steps: int = 0  # with train(evaluate=...): evaluate every this many updates
    checkpoint_dir: str | None = None  # default: model_dir
    jit_compile: bool = True
    mixed_precision: str = "none"  # "bf16", "fp16" or "none"
    initial_loss_scale: float = 2.0**15  # fp16 only: dynamic loss scaling starts here
    loss_scale_growth_interval: int = 2000  # fp16: double the scale after this many finite steps


@dataclasses.dataclass(frozen=True)
class BucketedInput:
    """Training input of several static shapes (`data.length_buckets`).

    `dataset_fns[b](input_context)` is bucket b's dataset of per-replica micro-batches (its own
    static shape, repeated); update i draws its batches from bucket `schedule[i]`, on every
    replica and worker alike. `Trainer.train` runs each run of consecutive updates of one
    bucket as one host call (the loop is traced once per distinct dataset spec, the XLA step
    compiled once per shape) and, on resuming at step s, skips in bucket b the batches of the
    updates before s that drew it.
    """

    dataset_fns: Sequence[Callable]
    schedule: np.ndarray  # bucket index of every update, at least num_train_steps of them


class Preempted(Exception):
    """Training stopped on SIGTERM after saving a checkpoint at the current step."""

    exit_code = 143  # 128 + SIGTERM, what a shell reports for a job the signal ended

    def __init__(self, step: int, checkpoint: str):
        super().__init__(
            f"Stopped by SIGTERM at step {step}; saved {checkpoint}. "
            "Run the same command again to resume from there."
        )
        self.step, self.checkpoint = step, checkpoint


class CheckpointWriteError(Exception):
    """A checkpoint could not be written (disk full, permissions); the previous one is intact."""


def _global_norm(tensors) -> tf.Tensor:
    return tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(tf.cast(t, tf.float32))) for t in tensors]))


def format_seconds(seconds: float) -> str:
    """H:MM:SS."""
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _sum_over_replicas(strategy, per_replica: dict) -> dict:
    return {
        k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()
    }


class Trainer:
    """Runs, checkpoints, resumes and evaluates the training of one task.

    Args:
      strategy: the tf.distribute strategy; model and optimizer must be built in its scope.
      model: the Keras model the task's `model_inputs` feed.
      optimizer: from `optimization.create_optimizer` (it all-reduces, accumulates, clips).
      schedule: the learning-rate schedule the optimizer uses (logged, never stepped here),
        or a constant rate.
      task: the task object (see the module docstring).
      options: TrainerOptions.
    """

    # Name of the compiled per-replica update (found by profilers in XLA dumps and traces).
    STEP_FUNCTION_NAME = "bert_train_step"

    def __init__(self, strategy, model, optimizer, schedule, task, options: TrainerOptions):
        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        self.schedule = schedule
        self.task = task
        self._eval_steps: dict = {}  # global eval batch -> traced evaluation step
        self._eval_writer = None
        self.options = options
        self.is_chief = distribute.is_chief(strategy)
        self.micro_batch_size = options.train_batch_size // options.gradient_accumulation_steps
        self.variables = task.trainable_variables(model)
        self.loss_scale = None
        trackables = {}
        if options.mixed_precision == "fp16":
            # Dynamic loss scaling: the optimizer skips updates whose gradient overflowed, the
            # trainer halves the scale after such a step and doubles it after a run of good ones.
            if not getattr(optimizer, "hparams", {}).get("skip_nonfinite"):
                raise ValueError(
                    "fp16 training needs an optimizer created with skip_nonfinite=True"
                )
            with strategy.scope():
                sync = dict(
                    synchronization=tf.VariableSynchronization.ON_WRITE,
                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
                    trainable=False,
                )
                self.loss_scale = tf.Variable(
                    options.initial_loss_scale, dtype=tf.float32, name="loss_scale", **sync
                )
                self.good_steps = tf.Variable(0, dtype=tf.int64, name="good_steps", **sync)
            trackables = {"loss_scale": self.loss_scale, "good_steps": self.good_steps}
        if not optimizer.built:
            # Slots must exist before tracing: creating them lazily inside the loop breaks
            # under MirroredStrategy, and restoring a checkpoint needs them too.
            with strategy.scope():
                optimizer.build(self.variables)
        self.checkpoint = tf.train.Checkpoint(
            model=model,
            optimizer=optimizer,
            dropout_seeds=models.dropout_seed_states(model),
            **trackables,
        )
        checkpoint_dir = options.checkpoint_dir or options.model_dir
        if not self.is_chief:
            task_id = strategy.cluster_resolver.task_id
            checkpoint_dir = os.path.join(checkpoint_dir, f"worker_tmp_{task_id}")
        self.manager = tf.train.CheckpointManager(
            self.checkpoint,
            checkpoint_dir,
            max_to_keep=options.keep_checkpoint_max,
            step_counter=optimizer.iterations,
        )
        self.restored_from = self._resume()
        self._compile()
        self._writer = (
            tf.summary.create_file_writer(os.path.join(options.model_dir, "train"))
            if self.is_chief
            else tf.summary.create_noop_writer()
        )

    # ----------------------------------------------------------------------------------------
    # Checkpoints

    def _resume(self) -> str:
        latest = self.manager.latest_checkpoint
        if not latest:
            return ""
        self.checkpoint.restore(latest).assert_existing_objects_matched()
        logging.info("Resumed from %s at step %d", latest, self.current_step())
        return latest

    def initialize_from(self, path: str, keep_optimizer_state: bool = False) -> str:
        """Starts from a checkpoint of this project's trainer (e.g. the previous phase's).

        The model (encoder and heads) is read; with `keep_optimizer_state` the optimizer's
        moments and update count too (give the schedule a `step_offset`, see
        `bert.checkpoints.optimizer_step_in_checkpoint`, so it stays phase-local).
        Returns the checkpoint path read.
        """
        path = tf.train.latest_checkpoint(path) or path
        parts = dict(model=self.model)
        if keep_optimizer_state:
            parts["optimizer"] = self.optimizer
        tf.train.Checkpoint(**parts).read(path).assert_existing_objects_matched().expect_partial()
        logging.info("Initialized from %s", path)
        self.restored_from = path
        return path

    def current_step(self) -> int:
        """Optimizer updates applied so far (read on the host)."""
        return int(tf.convert_to_tensor(self.optimizer.iterations.value).numpy())

    def save(self) -> str:
        """Writes a checkpoint at the current step; returns its path.

        A failed write (disk full, no permission) raises CheckpointWriteError naming the
        directory and the last good checkpoint, which TensorFlow's write-then-rename
        leaves intact.
        """
        previous = self.manager.latest_checkpoint
        try:
            return self.manager.save(checkpoint_number=self.optimizer.iterations)
        except (tf.errors.OpError, OSError) as e:
            raise CheckpointWriteError(
                f"cannot write the checkpoint of step {self.current_step()} to "
                f"{self.manager.directory}: {e}. The last good checkpoint is {previous}."
            ) from e

    # ----------------------------------------------------------------------------------------
    # The compiled step and loop

    def _compile(self):
        # One device / TPU: the whole replica step is one XLA program. Under
        # (MultiWorker)MirroredStrategy the optimizer's cross-replica all-reduce cannot run
        # inside XLA, so only the forward and backward pass are compiled.
        whole_step = self.options.jit_compile and isinstance(
            self.strategy, (tf.distribute.OneDeviceStrategy, tf.distribute.TPUStrategy)
        )
        compute_gradients = self.compute_gradients
        if self.options.jit_compile and not whole_step:
            compute_gradients = tf.function(compute_gradients, jit_compile=True)

        def step(batch):
            ctx = tf.distribute.get_replica_context()
            grads, losses = compute_gradients(batch, self._global_counts(ctx, batch))
            self.optimizer.apply_gradients(zip(grads, self.variables))
            if self.loss_scale is not None:
                self._update_loss_scale(ctx, losses["local_grad_sq"])
            return losses

        step.__name__ = self.STEP_FUNCTION_NAME
        self._step = tf.function(step, jit_compile=True) if whole_step else step
        strategy, replica_step = self.strategy, self._step

        # The first micro-step runs before the loop so that the loop-carried totals exist.
        @tf.function
        def loop(iterator, num_micro_steps):
            totals = _sum_over_replicas(strategy, strategy.run(replica_step, (next(iterator),)))
            for _ in tf.range(num_micro_steps - 1):
                new = _sum_over_replicas(strategy, strategy.run(replica_step, (next(iterator),)))
                totals = {k: totals[k] + new[k] for k in totals}
            return totals

        self._loop = loop

    def _global_counts(self, ctx, batch: dict) -> dict:
        """The task's global counts of `batch`: its local sums, summed over replicas."""
        return {
            name: ctx.all_reduce(tf.distribute.ReduceOp.SUM, value)
            for name, value in self.task.global_counts(batch).items()
        }

    def compute_gradients(self, batch: dict, counts: dict):
        """Gradients of this replica's loss and the loss dict (plus "local_grad_sq")."""
        with tf.GradientTape() as tape:
            outputs = self.model(self.task.model_inputs(batch), training=True)
            losses = self.task.losses(outputs, batch, counts, self.micro_batch_size)
            scaled = losses["loss"] if self.loss_scale is None else losses["loss"] * self.loss_scale
        grads = tape.gradient(scaled, self.variables)
        if self.loss_scale is not None:
            grads = [tf.convert_to_tensor(g) / self.loss_scale for g in grads]
        losses["local_grad_sq"] = tf.square(_global_norm(grads))
        return grads, losses

    def train_step(self, batch: dict) -> dict:
        """One micro-step on one replica's batch (the function the loop compiles and runs)."""
        return self._step(batch)

    def _update_loss_scale(self, ctx, local_grad_sq):
        overflow = ctx.all_reduce(
            tf.distribute.ReduceOp.SUM,
            tf.cast(tf.logical_not(tf.math.is_finite(local_grad_sq)), tf.float32),
        )
        finite = tf.equal(overflow, 0.0)
        good = tf.where(finite, self.good_steps + 1, 0)
        grow = good >= self.options.loss_scale_growth_interval
        scale = tf.where(
            finite,
            tf.where(grow, self.loss_scale * 2.0, self.loss_scale),
            tf.maximum(self.loss_scale / 2.0, 1.0),
        )
        self.loss_scale.assign(scale)
        self.good_steps.assign(tf.where(grow, tf.zeros_like(good), good))

    def make_iterator(self, dataset_fn: Callable, skip_steps: int = 0):
        """Iterator over the distributed `dataset_fn(input_context)` of per-replica micro-batches.

        `skip_steps` updates' worth of batches are skipped (a resumed run must not see the same
        batches twice): each micro-step takes one batch per replica fed by a pipeline.
        """
        skip_micro_steps = skip_steps * self.options.gradient_accumulation_steps

        def distributed_fn(ctx):
            dataset = dataset_fn(ctx)
            per_pipeline = ctx.num_replicas_in_sync // ctx.num_input_pipelines
            return dataset.skip(skip_micro_steps * per_pipeline) if skip_micro_steps else dataset

        return iter(distribute.distribute_datasets(self.strategy, distributed_fn))

    def run_steps(self, iterator, num_steps: int) -> dict:
        """Runs `num_steps` updates in one host call; returns the summed losses and numerators."""
        num_micro = num_steps * self.options.gradient_accumulation_steps
        totals = self._loop(iterator, tf.constant(num_micro, tf.int32))
        return {name: float(value) for name, value in totals.items()}

    # ----------------------------------------------------------------------------------------
    # Training

    def current_learning_rate(self, step: int | None = None) -> float:
        step = self.current_step() if step is None else step
        return float(self.schedule(step)) if callable(self.schedule) else float(self.schedule)

    def train(
        self,
        dataset_fn: Callable,
        host_metrics: Callable[[], dict] | None = None,
        evaluate: Callable[[], dict] | None = None,
    ) -> dict:
        """Trains until `num_train_steps` updates; returns the last host call's metrics.

        `dataset_fn(input_context)` returns the tf.data.Dataset of per-replica micro-batches
        (static shapes, repeated as needed), or a `BucketedInput` of several shapes; a resumed
        run skips the batches already used.
        `host_metrics()`, if given, returns extra scalars read on the host (e.g. counters of
        the input pipeline) that join each host call's metrics: train_log.jsonl, TensorBoard.
        `evaluate()`, if given, runs every `eval_every_steps` updates before the last (e.g.
        `self.evaluate` on held-out data, which appends to eval_log.jsonl: the learning curve
        from which steps-to-target are read); the caller evaluates the end.
        Checkpoints every `save_checkpoints_steps` and at the end; stops with
        FloatingPointError when the loss is not finite. On SIGTERM (a Cloud TPU preemption or
        maintenance event, a Kubernetes eviction) it finishes the running host call, saves a
        checkpoint at that step on every worker and raises Preempted.
        """
        step = self.current_step()
        if step >= self.options.num_train_steps:
            logging.info("Already trained %d of %d steps.", step, self.options.num_train_steps)
            return {}
        sigterm = threading.Event()
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, lambda signum, frame: sigterm.set())
        try:
            return self._train(dataset_fn, step, sigterm, host_metrics, evaluate)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    def _input(self, dataset_fn, step: int) -> Callable[[int, int], dict]:
        """`run(step, num_steps)` over the input of `train` (a dataset_fn or BucketedInput),
        whose iterators skip what the first `step` updates used."""
        if not isinstance(dataset_fn, BucketedInput):
            iterator = self.make_iterator(dataset_fn, skip_steps=step)
            return lambda first, num_steps: self.run_steps(iterator, num_steps)
        schedule = np.asarray(dataset_fn.schedule)
        if len(schedule) < self.options.num_train_steps:
            raise ValueError(
                f"the bucket schedule has {len(schedule)} updates, fewer than "
                f"num_train_steps={self.options.num_train_steps}"
            )
        used = np.bincount(schedule[:step], minlength=len(dataset_fn.dataset_fns))
        iterators = [
            self.make_iterator(fn, skip_steps=int(skip))
            for fn, skip in zip(dataset_fn.dataset_fns, used)
        ]

        def run(first, num_steps):
            totals = {}
            buckets = schedule[first : first + num_steps]
            # Runs of consecutive updates of one bucket: one host call each.
            ends = np.flatnonzero(np.diff(buckets)) + 1
            for run_start, run_end in zip([0, *ends], [*ends, num_steps]):
                part = self.run_steps(iterators[buckets[run_start]], int(run_end - run_start))
                totals = {k: totals.get(k, 0.0) + v for k, v in part.items()}
            return totals

        return run

    def _train(self, dataset_fn, step, sigterm, host_metrics, evaluate) -> dict:
        opts = self.options
        eval_every = opts.eval_every_steps if evaluate else 0
        run = self._input(dataset_fn, step)
        log_path = os.path.join(opts.model_dir, "train_log.jsonl")
        start_step, start_time = step, time.time()
        last = {}
        while step < opts.num_train_steps:
            num_steps = min(opts.steps_per_loop, opts.num_train_steps - step)
            if opts.save_checkpoints_steps:  # Loops end on save steps.
                num_steps = min(
                    num_steps, opts.save_checkpoints_steps - step % opts.save_checkpoints_steps
                )
            if eval_every:  # ... and on evaluation steps.
                num_steps = min(num_steps, eval_every - step % eval_every)
            loop_start = time.time()
            totals = run(step, num_steps)
            loop_time = time.time() - loop_start
            step = self.current_step()
            last = self._summarize(totals, num_steps, loop_time, step, start_step, start_time)
            if host_metrics:
                extra = {name: float(value) for name, value in host_metrics().items()}
                with self._writer.as_default(step=step):
                    for name, value in extra.items():
                        tf.summary.scalar(name, value)
                last.update(extra)
            if not math.isfinite(last["loss"]):
                raise FloatingPointError(
                    f"Loss became {last['loss']} in the {num_steps} steps ending at step {step}; "
                    f"stopping. The last good checkpoint is {self.manager.latest_checkpoint}."
                )
            if self.is_chief:
                with tf.io.gfile.GFile(log_path, "a") as f:
                    f.write(json.dumps(last) + "\n")
            if opts.save_checkpoints_steps and (
                step % opts.save_checkpoints_steps == 0 or step >= opts.num_train_steps
            ):
                self.save()
            if eval_every and step % eval_every == 0 and step < opts.num_train_steps:
                evaluate()
            if self._any_worker_stopped(sigterm):
                self._writer.flush()
                latest = self.manager.latest_checkpoint
                saved = latest if latest and latest.endswith(f"-{step}") else self.save()
                raise Preempted(step, saved)
        self._writer.flush()
        return last

    def _any_worker_stopped(self, sigterm: threading.Event) -> bool:
        """Whether any worker got SIGTERM; workers agree, so that all save at the same step."""
        if not isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return sigterm.is_set()
        flag = float(sigterm.is_set())
        values = self.strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(flag)
        )
        return float(self.strategy.reduce(tf.distribute.ReduceOp.SUM, values, axis=None)) > 0

    def _summarize(self, totals, num_steps, loop_time, step, start_step, start_time) -> dict:
        micro_steps = num_steps * self.options.gradient_accumulation_steps
        metrics = {
            "step": step,
            **self.task.metrics(totals, micro_steps),
            # Norm of the micro-batch gradient (sum of per-replica squared norms is exact for
            # one replica; with several it is the norm of the stacked per-replica gradients).
            "grad_norm": math.sqrt(totals["local_grad_sq"] / micro_steps),
            "learning_rate": self.current_learning_rate(step - 1),
            "examples_per_second": num_steps * self.options.train_batch_size / loop_time,
            "steps_per_second": num_steps / loop_time,
            "step_time": loop_time / num_steps,
        }
        if self.loss_scale is not None:
            metrics["loss_scale"] = float(self.loss_scale.numpy())
        total = self.options.num_train_steps
        eta = (time.time() - start_time) / max(step - start_step, 1) * (total - step)
        task_part = "".join(
            f" {short} {metrics[name]:.3f}" for name, short in self.task.log_metrics.items()
        )
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
        with self._writer.as_default(step=step):
            for name, value in metrics.items():
                if name != "step":
                    tf.summary.scalar(name, value)
        return metrics

    # ----------------------------------------------------------------------------------------
    # Evaluation

    def _make_eval_step(self, global_batch_size: int) -> Callable:
        model, task, strategy = self.model, self.task, self.strategy

        def replica_eval(batch):
            counts = self._global_counts(tf.distribute.get_replica_context(), batch)
            outputs = model(task.model_inputs(batch), training=False)
            return task.losses(outputs, batch, counts, global_batch_size)

        @tf.function
        def eval_step(batch):
            return _sum_over_replicas(strategy, strategy.run(replica_eval, args=(batch,)))

        return eval_step

    def evaluate(self, dataset_fn: Callable, max_steps: int, global_batch_size: int) -> dict:
        """The task's loss and metrics over at most `max_steps` global batches of `dataset_fn`.

        Writes eval_results.json, appends the results to eval_log.jsonl (one line per
        evaluation: the learning curve) and writes summaries under model_dir/eval (chief only).
        """
        dataset = distribute.distribute_datasets(self.strategy, dataset_fn)
        eval_step = self._eval_steps.get(global_batch_size)
        if eval_step is None:  # Traced once per batch size, not at every periodic evaluation.
            eval_step = self._eval_steps[global_batch_size] = self._make_eval_step(
                global_batch_size
            )
        totals, steps = {}, 0
        for batch in dataset:
            if steps >= max_steps:
                break
            for name, value in eval_step(batch).items():
                totals[name] = totals.get(name, 0.0) + float(value)
            steps += 1
        if not steps:
            raise ValueError("the evaluation dataset produced no batch")
        results = {
            "step": self.current_step(),
            "eval_steps": steps,
            "eval_examples": steps * global_batch_size,
            **self.task.metrics(totals, steps),
        }
        if self.is_chief:
            if self._eval_writer is None:
                eval_dir = os.path.join(self.options.model_dir, "eval")
                self._eval_writer = tf.summary.create_file_writer(eval_dir)
            with self._eval_writer.as_default(step=results["step"]):
                for name, value in results.items():
                    tf.summary.scalar(name, value)
            self._eval_writer.flush()
            fileio.write_json_atomic(
                os.path.join(self.options.model_dir, "eval_results.json"), results
            )
            with tf.io.gfile.GFile(
                os.path.join(self.options.model_dir, "eval_log.jsonl"), "a"
            ) as f:
                f.write(json.dumps(results) + "\n")
        logging.info("eval at step %d: %s", results["step"], json.dumps(results))
        return results
