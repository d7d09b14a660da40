"""One compiled training program per cell of a search: trials that cost only their steps.

A cell is what a search's trials share: the model, the data and its shapes (batch, sequence
length, masked positions, accumulation), the optimizer's rule and everything structural about
it and the schedule's kind. `CellProgram(options, phase)` builds that once: the model, a
tunable optimizer and schedule (`optimization.tunable`: the searched numbers are variables),
the compiled step and the evaluation step. `run_trial` then runs one point:

  1. resets the model to the initial weights of a fresh run with the trial's seed (the cell's
     own, or those of a model built with that seed, kept per seed), the dropout generators to
     their initial states, the optimizer's state and update count to their initial values
     (zeros, or an init_checkpoint's with keep_optimizer_state) and the fp16 loss scale;
  2. assigns the trial's optimizer and schedule values (no retrace);
  3. trains on a fresh iterator over a freshly built input pipeline (same files, seed and
     order as a fresh run), evaluating the held-out slice at each step of `eval_steps` (the
     last one is the budget), and stops early once held-out accuracy reaches
     `stop_at_accuracy`, or at a non-finite loss (the trial diverged).

Only the first trial of a program traces and compiles (`compile_seconds`); the next ones
start at once. A trial writes no checkpoint: if its worker dies, it is rerun from scratch
(the search keeps checkpoints for trials above its `cell_max_examples`). The curve equals
that of `run_pretraining` on the trial's experiment file, evaluated at the same steps, to
float tolerance (tests/test_cell.py).
"""

import contextlib
import dataclasses
import json
import math
import time

import keras
import tensorflow as tf
from absl import logging

import bert
import optimization
from bert.studies import report
from bert.tasks import pretraining, pretraining_phase
from bert.tasks.pretraining_phase import PretrainingOptions
from bert.training import controller, distribute, inputs, precision
from bert.training import options as opts
from bert.training import step as step_lib
from optimization import tunable

# Phase fields that shape the compiled program (a trial must have the cell's).
SHAPE_FIELDS = (
    "train_batch_size",
    "max_seq_length",
    "max_predictions_per_seq",
    "gradient_accumulation_steps",
)
# Run options that do not change the program (per trial, or only the old path's outputs).
_PER_TRIAL_OPTIONS = (
    "experiment",
    "phase",
    "model_dir",
    "seed",
    "do_train",
    "do_eval",
    "eval_every_steps",
    "save_checkpoints_steps",
    "keep_checkpoint_max",
    *PretrainingOptions.PHASE_OVERRIDES,
)


class Interrupted(controller.Preempted):
    """SIGTERM during an in-process trial: nothing saved, the point is rerun from scratch."""

    def __init__(self, step: int):
        Exception.__init__(
            self, f"Stopped by SIGTERM at step {step} of a trial run without checkpoints"
        )
        self.step, self.checkpoint = step, ""


def signature(options: PretrainingOptions, phase, config) -> str:
    """What a cell's program is made of: trials with equal signatures share it."""
    optimizer = dict(phase.optimizer)
    name = optimizer.pop("name")
    structural = {
        k: v
        for k, v in optimization.hparams.resolve_hparams(name, optimizer).items()
        if k not in tunable.TUNABLE
    }
    run = {k: v for k, v in dataclasses.asdict(options).items() if k not in _PER_TRIAL_OPTIONS}
    return json.dumps(
        {
            "run": run,
            "model": config.to_dict(),
            "shape": {f: getattr(phase, f) for f in SHAPE_FIELDS},
            "optimizer": {"name": name, **structural},
            "schedule": phase.schedule["kind"],
        },
        sort_keys=True,
        default=list,
    )


class CellProgram:
    """The compiled program of one search cell; `run_trial` runs a point of it.

    Args:
      options: the run every trial copies (input files, held-out slice, eval batch, strategy,
        precision, XLA, seed, init_checkpoint; model_dir is not used).
      phase: a trial's phase config; its optimizer and schedule give the structure and the
        first values (default: the options' experiment phase with its overrides).
    """

    def __init__(self, options: PretrainingOptions, phase=None):
        self.options = options
        self.strategy = opts.start_runtime(options)
        loaded, self.config, source = pretraining_phase.load_phase(options)
        pretraining_phase.check_inputs(options, self.config, source)
        self.phase = phase = phase or loaded
        self.signature = signature(options, phase, self.config)
        self.micro_batch = pretraining_phase.micro_batch_size(phase, self.strategy)
        step_offset = pretraining_phase.schedule_step_offset(options)
        self.task = pretraining.PretrainingTask()
        with self.strategy.scope():
            self.model = self._initial_model()
            self.optimizer, self.schedule = optimization.create_optimizer_and_schedule(
                phase.optimizer,
                phase.schedule,
                step_offset=step_offset,
                gradient_accumulation_steps=phase.gradient_accumulation_steps,
                skip_nonfinite=precision.skips_nonfinite(options.mixed_precision),
                tunable=True,
            )
            self.variables = self.task.trainable_variables(self.model)
            self.optimizer.build(self.variables)
        if options.init_checkpoint and options.keep_optimizer_state:
            # The previous phase's moments and update count are every trial's start.
            tf.train.Checkpoint(optimizer=self.optimizer).read(
                _checkpoint_path(options.init_checkpoint)
            ).expect_partial()
        self.loss_scale = precision.create_loss_scale(
            self.strategy, options.mixed_precision, 2.0**15, 2000
        )
        self._loss_scale_start = (
            {v: v.numpy() for v in self.loss_scale.trackables().values()} if self.loss_scale else {}
        )
        self._optimizer_start = [v.numpy() for v in self.optimizer.variables]
        self._model_start = {options.seed: self._model_values(self.model)}
        self.step = step_lib.TrainStep(
            self.strategy,
            self.model,
            self.optimizer,
            self.task,
            self.variables,
            self.micro_batch,
            self.loss_scale,
            options.jit_compile,
            phase.gradient_accumulation_steps,
            options.log_gradient_noise_scale,
        )
        eval_file, self._eval_batch, self._eval_batches, heldout = pretraining_phase.eval_input(
            options, self.micro_batch
        )
        self.eval_step = step_lib.make_eval_step(
            self.strategy, self.model, self.task, self._eval_batch
        )
        self._eval_data = distribute.distribute_datasets(
            self.strategy,
            self._dataset_fn(eval_file, False, self._eval_batch, options.seed, heldout),
        )
        self.trials = 0

    # ----------------------------------------------------------------------------------------
    # Initial state

    def _initial_model(self):
        """The model of a fresh run (built right after seeding), from init_checkpoint if any."""
        model = bert.build_pretraining_model(self.config)
        if self.options.init_checkpoint:  # The previous phase's encoder and heads.
            path = _checkpoint_path(self.options.init_checkpoint)
            tf.train.Checkpoint(model=model).read(path).expect_partial()
        return model

    @staticmethod
    def _model_values(model) -> list:
        """The values of every model variable (weights and dropout generator states)."""
        return [v.numpy() for v in model.variables]

    def _model_start_for(self, seed: int) -> list:
        """The initial model values of a fresh run seeded with `seed` (built once per seed)."""
        if seed not in self._model_start:
            keras.utils.set_random_seed(seed)
            with self.strategy.scope():
                self._model_start[seed] = self._model_values(self._initial_model())
        return self._model_start[seed]

    def reset(self, seed: int) -> None:
        """Model, dropout generators, optimizer state and count, loss scale: as a fresh run's."""
        for variable, value in zip(self.model.variables, self._model_start_for(seed)):
            variable.assign(value)
        for variable, value in zip(self.optimizer.variables, self._optimizer_start):
            variable.assign(value)
        for variable, value in self._loss_scale_start.items():
            variable.assign(value)
        # As a fresh run's start: the global seeds (the input pipeline's shuffle reads TF's).
        keras.utils.set_random_seed(seed)

    # ----------------------------------------------------------------------------------------
    # Inputs

    def _dataset_fn(self, pattern, is_training, global_batch, seed, heldout=False):
        """`run_phase`'s pretraining input (the same function, so the same batches in order)."""
        return pretraining_phase.make_dataset_fn(
            self.options, self.phase, self.config, pattern, is_training, global_batch, seed, heldout
        )

    # ----------------------------------------------------------------------------------------
    # Tracing

    def tracing_count(self) -> int:
        """Traces of the training loop and the evaluation step so far (one each per cell)."""
        return (
            self.step.loop.experimental_get_tracing_count()
            + self.eval_step.experimental_get_tracing_count()
        )

    def _timed(self, call):
        """(call(), seconds, whether it traced): a call that traces pays the compilation."""
        traces = self.tracing_count()
        start = time.time()
        result = call()
        return result, time.time() - start, self.tracing_count() > traces

    def evaluate(self) -> dict:
        """Held-out loss and accuracies of the current model."""
        totals, steps = {}, 0
        for batch in self._eval_data:
            if steps >= self._eval_batches:
                break
            for name, value in self.eval_step(batch).items():
                totals[name] = totals.get(name, 0.0) + float(value)
            steps += 1
        return {
            "eval_steps": steps,
            "eval_examples": steps * self._eval_batch,
            **self.task.metrics(totals, steps),
        }

    # ----------------------------------------------------------------------------------------
    # Trials

    def check_trial(self, phase) -> None:
        """ValueError unless `phase` runs on this program (same shapes and structure)."""
        for field in SHAPE_FIELDS:
            if getattr(phase, field) != getattr(self.phase, field):
                raise ValueError(
                    f"this cell's {field} is {getattr(self.phase, field)}, the trial's "
                    f"{getattr(phase, field)}; run it in another cell"
                )
        if signature(self.options, phase, self.config) != self.signature:
            raise ValueError("the trial's optimizer or schedule kind is not this cell's")

    def run_trial(
        self,
        trial,
        eval_steps: list,
        stop_at_accuracy: float | None = None,
        seed: int | None = None,
    ) -> dict:
        """Trains one point from the initial state; returns its curve, timings and result.

        Args:
          trial: the trial's phase config (a `PhaseConfig`), or {"optimizer": ...,
            "schedule": ...} applied to the cell's phase.
          eval_steps: increasing steps at which held-out accuracy is measured; the last one is
            the budget.
          stop_at_accuracy: stop after the first evaluation that reaches this held-out
            masked-LM accuracy (None: run the budget).
          seed: the seed of the fresh run this trial reproduces (default: the options').
        Returns a dict: curve (one entry per evaluation: step, seconds, held-out loss and
        accuracies, train_loss of the last training call before it), eval (the last entry), steps,
        budget, seconds (the whole trial), compile_seconds (calls that traced and compiled),
        eval_seconds, steps_per_second (updates over the time of training calls that did not
        compile), stopped_early, diverged (None, or why), gradient_noise_scale (B_simple
        from the norms of the whole trial, when measured; the curve has its running value).
        """
        if isinstance(trial, dict):
            trial = dataclasses.replace(self.phase, **trial)
        self.check_trial(trial)
        eval_steps = sorted({int(s) for s in eval_steps})
        if not eval_steps or eval_steps[0] < 1:
            raise ValueError(f"eval_steps must be steps >= 1, got {eval_steps}")
        seed = self.options.seed if seed is None else seed
        start = time.time()
        self.reset(seed)
        tunable.assign(self.optimizer, self.schedule, trial.optimizer, trial.schedule)
        # A fresh pipeline: the batches of a fresh run, in its order.
        iterators = [
            inputs.make_iterator(
                self.strategy,
                self._dataset_fn(self.options.input_file, True, self.micro_batch, seed),
            )
        ]
        accumulation = trial.gradient_accumulation_steps
        budget = eval_steps[-1]
        curve, diverged, stopped_early = [], None, False
        compile_seconds = eval_seconds = train_seconds = 0.0
        train_steps = step = 0
        loss = math.nan
        noise = {}  # the noise-scale sums of every host call (step.GradientNoiseScale)
        with controller.sigterm_flag() as sigterm, _releasing(iterators):
            for target in eval_steps:
                while step < target:
                    # The very first call of a program runs one update: its time is the
                    # trace and compilation, not training.
                    n = (
                        1
                        if self.tracing_count() == 0
                        else min(self.options.steps_per_loop, target - step)
                    )
                    totals, seconds, traced = self._timed(
                        lambda n=n: self.step.run(iterators[0], n * accumulation)
                    )
                    step += n
                    if traced:
                        compile_seconds += seconds
                    else:
                        train_seconds, train_steps = train_seconds + seconds, train_steps + n
                    loss = self.task.metrics(totals, n * accumulation)["loss"]
                    for name, value in totals.items():
                        if name.startswith("noise_"):
                            noise[name] = noise.get(name, 0.0) + float(value)
                    if not math.isfinite(loss):
                        diverged = f"loss became {loss} in the {n} steps ending at step {step}"
                        break
                    if sigterm.is_set():
                        raise Interrupted(step)
                if diverged:
                    break
                results, seconds, traced = self._timed(self.evaluate)
                if traced:
                    compile_seconds += seconds
                else:
                    eval_seconds += seconds
                curve.append(
                    {
                        "step": step,
                        "seconds": time.time() - start,
                        **results,
                        "train_loss": loss,
                        **self.step.noise_scale_metrics(noise),
                    }
                )
                accuracy = results[report.METRIC]
                if stop_at_accuracy is not None and accuracy >= stop_at_accuracy:
                    stopped_early = step < budget
                    break
        self.trials += 1
        seconds = time.time() - start
        logging.info(
            "Trial %d of the cell: %d steps in %.1f s (compile %.1f s)%s%s",
            self.trials,
            step,
            seconds,
            compile_seconds,
            ", stopped early" if stopped_early else "",
            f", diverged: {diverged}" if diverged else "",
        )
        return {
            "curve": curve,
            "eval": curve[-1] if curve else None,
            "steps": step,
            "budget": budget,
            "seconds": seconds,
            "compile_seconds": compile_seconds,
            "eval_seconds": eval_seconds,
            "steps_per_second": train_steps / train_seconds if train_seconds else None,
            "stopped_early": stopped_early,
            "diverged": diverged,
            "seed": seed,
            # Over the whole trial (None when a step has one batch size, or not measured).
            "gradient_noise_scale": self.step.noise_scale_metrics(noise).get(
                "gradient_noise_scale"
            ),
        }


@contextlib.contextmanager
def _releasing(iterators: list):
    """Releases the trial's input iterators at its end without waiting (`inputs.release`)."""
    try:
        yield
    finally:
        inputs.release(iterators)


def _checkpoint_path(path: str) -> str:
    """The newest checkpoint in directory `path`, or `path` itself (a checkpoint prefix)."""
    return tf.train.latest_checkpoint(path) or path
