"""One training loop for every task: `Trainer` and its options.

`Trainer(strategy, model, optimizer, schedule, task, options)` runs the optimizer updates of a
task under any tf.distribute strategy. One host call of the compiled loop runs
`steps_per_loop` updates on the accelerators (each `gradient_accumulation_steps` micro-batches),
so the host only wakes up to log, write summaries and checkpoint.

A task (`bert.tasks.pretraining.PretrainingTask`, the SQuAD task, or a new one) owns only what
differs between tasks: which features the model reads, the loss and the numerators of its
metrics; `bert.tasks.base.Task` states that contract.

The trainer composes parts with one job each:

    step.TrainStep                the compiled per-replica update and the loop of micro-steps
    precision                     dtype policy, fp16 loss scaling, skipping non-finite updates
    checkpointing.Checkpointer    save, resume, start from another run; worker directories
    inputs                        iterators that skip used batches, length buckets
    controller.Controller         the host loop and its stopping rules (SIGTERM, NaN loss)
    summaries                     progress lines with ETA, TensorBoard, train/eval JSON logs

`Trainer`, `TrainerOptions`, `BucketedInput`, `Preempted`, `CheckpointWriteError` and
`format_seconds` are importable from here.
"""

import dataclasses
import math
from collections.abc import Callable

from absl import logging

from bert.training import checkpointing, controller, distribute, inputs, precision, summaries
from bert.training import step as step_lib
from bert.training.checkpointing import CheckpointWriteError
from bert.training.controller import Preempted
from bert.training.inputs import BucketedInput
from bert.training.summaries import format_seconds

__all__ = [
    "BucketedInput",
    "CheckpointWriteError",
    "Preempted",
    "Trainer",
    "TrainerOptions",
    "format_seconds",
]


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
    # Log the gradient noise scale (step.GradientNoiseScale) when a step has two batch sizes.
    log_gradient_noise_scale: bool = False


class Trainer:
    """Runs, checkpoints, resumes and evaluates the training of one task.

    Args:
      strategy: the tf.distribute strategy; model and optimizer must be built in its scope.
      model: the Keras model the task's `model_inputs` feed.
      optimizer: from `optimization.create_optimizer` (it all-reduces, accumulates, clips);
        under fp16 created with skip_nonfinite (see `precision.skips_nonfinite`).
      schedule: the learning-rate schedule the optimizer uses (logged, never stepped here),
        or a constant rate.
      task: the task object, a `bert.tasks.base.Task`.
      options: TrainerOptions.

    Checkpoints hold the model, optimizer (moments, update count), the dropout generators'
    states and, with fp16, the loss scale; a restarted job resumes at its last checkpoint and
    skips the batches it already used.
    """

    STEP_FUNCTION_NAME = step_lib.STEP_FUNCTION_NAME

    def __init__(self, strategy, model, optimizer, schedule, task, options: TrainerOptions):
        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        self.schedule = schedule
        self.task = task
        self.options = options
        self.is_chief = distribute.is_chief(strategy)
        self.micro_batch_size = options.train_batch_size // options.gradient_accumulation_steps
        self.variables = task.trainable_variables(model)
        precision.check_optimizer(optimizer, options.mixed_precision)
        # fp16: the optimizer skips updates whose gradient overflowed, the loss scale halves
        # after such a step and doubles after a run of good ones.
        self.loss_scale = precision.create_loss_scale(
            strategy,
            options.mixed_precision,
            options.initial_loss_scale,
            options.loss_scale_growth_interval,
        )
        if not optimizer.built:
            # Slots must exist before tracing: creating them lazily inside the loop breaks
            # under MirroredStrategy, and restoring a checkpoint needs them too.
            with strategy.scope():
                optimizer.build(self.variables)
        self.checkpointer = checkpointing.Checkpointer(
            strategy,
            model,
            optimizer,
            options.checkpoint_dir or options.model_dir,
            options.keep_checkpoint_max,
            **(self.loss_scale.trackables() if self.loss_scale else {}),
        )
        self.checkpoint, self.manager = self.checkpointer.checkpoint, self.checkpointer.manager
        self.restored_from = self.checkpointer.resume()
        self._step = step_lib.TrainStep(
            strategy,
            model,
            optimizer,
            task,
            self.variables,
            self.micro_batch_size,
            self.loss_scale,
            options.jit_compile,
            options.gradient_accumulation_steps,
            options.log_gradient_noise_scale,
        )
        if options.log_gradient_noise_scale and self._step.noise_scale is None:
            logging.info(
                "Gradient noise scale not logged: one replica and no gradient accumulation "
                "give only one batch size per step."
            )
        self._summaries = summaries.TrainSummaries(
            options.model_dir, self.is_chief, options.num_train_steps, task.log_metrics
        )
        self._eval_summaries = summaries.EvalSummaries(options.model_dir, self.is_chief)
        self._eval_steps: dict = {}  # global eval batch -> traced evaluation step

    # ----------------------------------------------------------------------------------------
    # Checkpoints

    def initialize_from(self, path: str, keep_optimizer_state: bool = False) -> str:
        """Starts from a checkpoint of this project's trainer (e.g. the previous phase's).

        The model (encoder and heads) is read; with `keep_optimizer_state` the optimizer's
        moments and update count too (give the schedule a `step_offset`, see
        `bert.checkpoints.optimizer_step_in_checkpoint`, so it stays phase-local).
        Returns the checkpoint path read.
        """
        self.restored_from = self.checkpointer.initialize_from(path, keep_optimizer_state)
        return self.restored_from

    def current_step(self) -> int:
        """Optimizer updates applied so far (read on the host)."""
        return checkpointing.optimizer_step(self.optimizer)

    def save(self) -> str:
        """Writes a checkpoint at the current step; returns its path (see Checkpointer.save)."""
        return self.checkpointer.save()

    # ----------------------------------------------------------------------------------------
    # The compiled step and loop

    def compute_gradients(self, batch: dict, counts: dict):
        """Gradients of this replica's loss and the loss dict (plus "local_grad_sq")."""
        return self._step.compute_gradients(batch, counts)

    def train_step(self, batch: dict) -> dict:
        """One micro-step on one replica's batch (the function the loop compiles and runs)."""
        return self._step.step(batch)

    def make_iterator(self, dataset_fn: Callable, skip_steps: int = 0):
        """Iterator over the distributed `dataset_fn(input_context)` of per-replica micro-batches.

        `skip_steps` updates' worth of batches are skipped (a resumed run must not see the same
        batches twice).
        """
        skip_micro_steps = skip_steps * self.options.gradient_accumulation_steps
        return inputs.make_iterator(self.strategy, dataset_fn, skip_micro_steps)

    def run_steps(self, iterator, num_steps: int) -> dict:
        """Runs `num_steps` updates in one host call; returns the summed losses and numerators."""
        return self._step.run(iterator, num_steps * self.options.gradient_accumulation_steps)

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
        loop = controller.Controller(
            self.options,
            self.strategy,
            self.checkpointer,
            self._summaries,
            self.current_step,
            self._host_call_metrics,
        )
        with controller.sigterm_flag() as sigterm:
            run = inputs.host_calls(
                dataset_fn, step, self.options.num_train_steps, self.make_iterator, self.run_steps
            )
            try:
                return loop.run(run, step, sigterm, host_metrics, evaluate)
            finally:
                run.close()  # Not waiting for the input's autotuning thread (inputs.release).

    def _host_call_metrics(self, totals, num_steps, loop_time, step) -> dict:
        """The metrics of the host call of `num_steps` updates ending at `step`."""
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
            metrics["loss_scale"] = float(self.loss_scale.scale.numpy())
        metrics.update(self._step.noise_scale_metrics(totals))
        return metrics

    # ----------------------------------------------------------------------------------------
    # Evaluation

    def evaluate(self, dataset_fn: Callable, max_steps: int, global_batch_size: int) -> dict:
        """The task's loss and metrics over at most `max_steps` global batches of `dataset_fn`.

        Writes eval_results.json, appends the results to eval_log.jsonl (one line per
        evaluation: the learning curve) and writes summaries under model_dir/eval (chief only).
        """
        dataset = distribute.distribute_datasets(self.strategy, dataset_fn)
        eval_step = self._eval_steps.get(global_batch_size)
        if eval_step is None:  # Traced once per batch size, not at every periodic evaluation.
            eval_step = self._eval_steps[global_batch_size] = step_lib.make_eval_step(
                self.strategy, self.model, self.task, global_batch_size
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
        self._eval_summaries.write(results)
        return results
