"""The pretraining loop: masked-LM + next-sentence losses under any tf.distribute strategy.

One call of the compiled loop function runs `steps_per_loop` optimizer updates on the
accelerators (each update is `gradient_accumulation_steps` micro-batches), so the host
only wakes up to log, evaluate and checkpoint.

Loss scaling: every replica's loss is its local sum divided by a GLOBAL count (masked
positions, or examples of the global micro-batch), so the sum over replicas that the
optimizer takes is exactly the gradient of the global-batch mean loss.
"""

import dataclasses
import json
import math
import os
import time
from typing import Callable, Optional

import keras
import tensorflow as tf
from absl import logging

from bert import distribute
from bert import models


@dataclasses.dataclass
class TrainerOptions:
    """What a pretraining run needs besides the model and optimizer."""

    model_dir: str
    num_train_steps: int
    train_batch_size: int  # global batch per optimizer update
    gradient_accumulation_steps: int = 1
    steps_per_loop: int = 100
    save_checkpoints_steps: int = 1000
    keep_checkpoint_max: int = 5
    jit_compile: bool = True
    mixed_precision: str = "none"  # "bf16", "fp16" or "none"
    initial_loss_scale: float = 2.0**15  # fp16 only: dynamic loss scaling starts here
    loss_scale_growth_interval: int = 2000  # fp16: double the scale after this many finite steps


def pretraining_losses(
    outputs: dict, batch: dict, global_mlm_weight: tf.Tensor, global_batch_size: int
) -> dict:
    """Per-replica losses scaled to the global batch, plus metric numerators.

    Args:
      outputs: model outputs with "mlm_logits" [B, P, V] and "nsp_logits" [B, 2].
      batch: the input batch (masked_lm_ids, masked_lm_weights, next_sentence_labels).
      global_mlm_weight: sum of masked_lm_weights over the whole global (micro-)batch.
      global_batch_size: number of examples in the global (micro-)batch.
    """
    # [B*P, V]: the cross-entropy and the accuracy then reduce the same
    # tensor, and XLA computes the row maximum once (not per shape).
    mlm_logits = tf.cast(outputs["mlm_logits"], tf.float32)
    mlm_logits = tf.reshape(mlm_logits, (-1, tf.shape(mlm_logits)[-1]))
    mlm_ids = tf.reshape(batch["masked_lm_ids"], (-1,))
    nsp_logits = tf.cast(outputs["nsp_logits"], tf.float32)
    weights = tf.reshape(tf.cast(batch["masked_lm_weights"], tf.float32), (-1,))
    mlm_ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=mlm_ids, logits=mlm_logits)
    nsp_ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=batch["next_sentence_labels"], logits=nsp_logits
    )
    mlm_loss = tf.reduce_sum(mlm_ce * weights) / tf.maximum(global_mlm_weight, 1.0)
    nsp_loss = tf.reduce_sum(nsp_ce) / float(global_batch_size)
    mlm_correct = tf.cast(_label_is_max(mlm_logits, mlm_ids), tf.float32)
    nsp_correct = tf.cast(
        tf.equal(tf.argmax(nsp_logits, -1, output_type=tf.int32), batch["next_sentence_labels"]),
        tf.float32,
    )
    return {
        "loss": mlm_loss + nsp_loss,
        "mlm_loss": mlm_loss,
        "nsp_loss": nsp_loss,
        # Numerators of the accuracies; divided by global counts on the host.
        "mlm_correct": tf.reduce_sum(mlm_correct * weights),
        "mlm_weight": tf.reduce_sum(weights),
        "nsp_correct": tf.reduce_sum(nsp_correct),
        "examples": tf.cast(tf.shape(nsp_ce)[0], tf.float32),
    }


def _label_is_max(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Whether each label's logit is the largest one (the accuracy's numerator).

    Equal to `argmax(logits) == labels` except on exact ties, which count as
    correct here. It needs only the row maximum, which XLA shares with the
    cross-entropy, and a gather of one logit per row: an argmax over the
    30522-way vocabulary cost ~20 ms of a 690 ms BERT-mini step under XLA on
    CPU (benchmarks/README.md).
    """
    label_logits = tf.gather(logits, labels, batch_dims=len(labels.shape))
    return label_logits >= tf.reduce_max(logits, axis=-1)


MODEL_INPUTS = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions")


def model_inputs(batch: dict) -> dict:
    """The features the pretraining model reads (the rest are labels)."""
    return {name: batch[name] for name in MODEL_INPUTS}


def _global_norm(tensors) -> tf.Tensor:
    return tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(tf.cast(t, tf.float32))) for t in tensors]))


class PretrainingTrainer:
    """Runs, checkpoints, resumes and evaluates one pretraining phase.

    Args:
      strategy: the tf.distribute strategy; model and optimizer must be built in its scope.
      model: a model from `bert.build_pretraining_model`.
      optimizer: from `optimization.create_optimizer` (it all-reduces, accumulates, clips).
      schedule: the learning-rate schedule the optimizer uses (logged, never stepped here).
      options: TrainerOptions.
      train_dataset_fn: `(input_context, skip_micro_batches) -> tf.data.Dataset` of
        per-replica micro-batches; a resumed job passes the micro-batches already consumed
        so it does not see the same batches twice.
    """

    def __init__(
        self,
        strategy,
        model,
        optimizer,
        schedule,
        options: TrainerOptions,
        train_dataset_fn: Callable,
        init_checkpoint: Optional[str] = None,
        keep_optimizer_state: bool = False,
    ):
        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        self.schedule = schedule
        self.options = options
        self.is_chief = distribute.is_chief(strategy)
        self.micro_batch_size = options.train_batch_size // options.gradient_accumulation_steps
        self._train_dataset_fn = train_dataset_fn
        self._whole_step_compiled = options.jit_compile and isinstance(
            strategy, (tf.distribute.OneDeviceStrategy, tf.distribute.TPUStrategy)
        )
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
                optimizer.build(model.trainable_variables)
        self.checkpoint = tf.train.Checkpoint(
            model=model,
            optimizer=optimizer,
            dropout_seeds=models.dropout_seed_states(model),
            **trackables,
        )
        ckpt_dir = (
            options.model_dir
            if self.is_chief
            else os.path.join(options.model_dir, f"worker_tmp_{strategy.cluster_resolver.task_id}")
        )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint,
            ckpt_dir,
            max_to_keep=options.keep_checkpoint_max,
            step_counter=optimizer.iterations,
        )
        self.restored_from = self._restore(init_checkpoint, keep_optimizer_state)
        self._train_fn = None
        self._writer = (
            tf.summary.create_file_writer(os.path.join(options.model_dir, "train"))
            if self.is_chief
            else tf.summary.create_noop_writer()
        )

    # ----------------------------------------------------------------------------------
    # Checkpoints

    def _restore(self, init_checkpoint, keep_optimizer_state) -> str:
        """Resumes this phase if it has a checkpoint, else initializes from the previous one."""
        latest = self.manager.latest_checkpoint
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
            logging.info("Resumed from %s at step %d", latest, self.current_step())
            return latest
        if init_checkpoint:
            path = tf.train.latest_checkpoint(init_checkpoint) or init_checkpoint
            if keep_optimizer_state:
                # Moments and update count carry over; the caller gives the schedule a
                # step_offset (see `optimizer_step_in_checkpoint`) so it stays phase-local.
                tf.train.Checkpoint(model=self.model, optimizer=self.optimizer).read(
                    path
                ).assert_existing_objects_matched().expect_partial()
            else:
                # Encoder AND pretraining heads come from the previous phase; moments start fresh.
                tf.train.Checkpoint(model=self.model).read(
                    path
                ).assert_existing_objects_matched().expect_partial()
            logging.info("Initialized from %s", path)
            return path
        return ""

    def current_step(self) -> int:
        """Optimizer updates applied so far (read on the host)."""
        return int(tf.convert_to_tensor(self.optimizer.iterations.value).numpy())

    def save(self, force: bool = False):
        return self.manager.save(
            checkpoint_number=self.optimizer.iterations, check_interval=not force
        )

    # ----------------------------------------------------------------------------------
    # The compiled loop

    def _replica_step(self, batch):
        ctx = tf.distribute.get_replica_context()
        global_weight = ctx.all_reduce(
            tf.distribute.ReduceOp.SUM, tf.reduce_sum(batch["masked_lm_weights"])
        )
        grads, losses = self._grad_fn(batch, global_weight)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        if self.loss_scale is not None:
            self._update_loss_scale(ctx, losses["local_grad_sq"])
        return losses

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

    def _compute_grads(self, batch, global_weight):
        with tf.GradientTape() as tape:
            outputs = self.model(model_inputs(batch), training=True)
            losses = pretraining_losses(outputs, batch, global_weight, self.micro_batch_size)
            scaled_loss = (
                losses["loss"] if self.loss_scale is None else losses["loss"] * self.loss_scale
            )
        grads = tape.gradient(scaled_loss, self.model.trainable_variables)
        if self.loss_scale is not None:
            grads = [tf.convert_to_tensor(g) / self.loss_scale for g in grads]
        losses["local_grad_sq"] = tf.square(_global_norm(grads))
        return grads, losses

    def _build_train_fn(self):
        compile_grads = self.options.jit_compile and not self._whole_step_compiled
        self._grad_fn = (
            tf.function(self._compute_grads, jit_compile=True)
            if compile_grads
            else self._compute_grads
        )
        replica_step = (
            tf.function(self._replica_step, jit_compile=True)
            if self._whole_step_compiled
            else self._replica_step
        )
        strategy = self.strategy

        # The first step runs before the loop so that the loop-carried totals exist.
        @tf.function
        def train_fn(iterator, num_micro_steps):
            def step():
                per_replica = strategy.run(replica_step, args=(next(iterator),))
                return {
                    k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                    for k, v in per_replica.items()
                }

            totals = step()
            for _ in tf.range(num_micro_steps - 1):
                new = step()
                totals = {k: totals[k] + new[k] for k in totals}
            return totals

        return train_fn

    # ----------------------------------------------------------------------------------
    # Training

    def _make_iterator(self, skip_micro_batches: int):
        def dataset_fn(input_context):
            return self._train_dataset_fn(input_context, skip_micro_batches)

        dataset = self.strategy.distribute_datasets_from_function(dataset_fn)
        return iter(dataset)

    def current_learning_rate(self, step: Optional[int] = None) -> float:
        step = self.current_step() if step is None else step
        return float(self.schedule(step)) if callable(self.schedule) else float(self.schedule)

    def train(self) -> dict:
        """Trains until `num_train_steps` updates; returns the last loop's metrics."""
        opts = self.options
        k = opts.gradient_accumulation_steps
        step = self.current_step()
        if step >= opts.num_train_steps:
            logging.info("Already trained %d of %d steps.", step, opts.num_train_steps)
            return {}
        iterator = self._make_iterator(skip_micro_batches=step * k)
        if self._train_fn is None:
            self._train_fn = self._build_train_fn()
        log_path = os.path.join(opts.model_dir, "train_log.jsonl")
        start_step, start_time = step, time.time()
        last = {}
        while step < opts.num_train_steps:
            next_save = (step // opts.save_checkpoints_steps + 1) * opts.save_checkpoints_steps
            num_steps = min(opts.steps_per_loop, next_save - step, opts.num_train_steps - step)
            loop_start = time.time()
            totals = self._train_fn(iterator, tf.constant(num_steps * k, tf.int32))
            totals = {name: float(value) for name, value in totals.items()}
            loop_time = time.time() - loop_start
            step = self.current_step()
            last = self._summarize(totals, num_steps, loop_time, step, start_step, start_time)
            if not math.isfinite(last["loss"]):
                raise FloatingPointError(
                    f"Loss became {last['loss']} in the {num_steps} steps ending at step {step}; "
                    f"stopping. The last good checkpoint is {self.manager.latest_checkpoint}."
                )
            if self.is_chief:
                with tf.io.gfile.GFile(log_path, "a") as f:
                    f.write(json.dumps(last) + "\n")
            if step % opts.save_checkpoints_steps == 0 or step >= opts.num_train_steps:
                self.save(force=True)
        self._writer.flush()
        return last

    def _summarize(self, totals, num_steps, loop_time, step, start_step, start_time) -> dict:
        k = self.options.gradient_accumulation_steps
        micro_steps = num_steps * k
        examples = totals["examples"]
        metrics = {
            "step": step,
            "loss": totals["loss"] / micro_steps,
            "mlm_loss": totals["mlm_loss"] / micro_steps,
            "nsp_loss": totals["nsp_loss"] / micro_steps,
            "mlm_accuracy": totals["mlm_correct"] / max(totals["mlm_weight"], 1.0),
            "nsp_accuracy": totals["nsp_correct"] / max(examples, 1.0),
            # Norm of the micro-batch gradient (sum of per-replica squared norms is exact for
            # one replica; with several it is the norm of the stacked per-replica gradients).
            "grad_norm": math.sqrt(totals["local_grad_sq"] / micro_steps),
            "learning_rate": self.current_learning_rate(step - 1),
            "examples_per_second": examples / loop_time,
            "steps_per_second": num_steps / loop_time,
            "step_time": loop_time / num_steps,
        }
        if self.loss_scale is not None:
            metrics["loss_scale"] = float(self.loss_scale.numpy())
        done = step - start_step
        remaining = self.options.num_train_steps - step
        eta = (time.time() - start_time) / max(done, 1) * remaining
        logging.info(
            "step %d/%d (%.1f%%) loss %.4f mlm_acc %.3f nsp_acc %.3f lr %.3g | %.2f steps/s "
            "%.1f examples/s | ETA %s",
            step,
            self.options.num_train_steps,
            100.0 * step / self.options.num_train_steps,
            metrics["loss"],
            metrics["mlm_accuracy"],
            metrics["nsp_accuracy"],
            metrics["learning_rate"],
            metrics["steps_per_second"],
            metrics["examples_per_second"],
            _format_seconds(eta),
        )
        with self._writer.as_default(step=step):
            for name, value in metrics.items():
                if name != "step":
                    tf.summary.scalar(name, value)
        return metrics

    # ----------------------------------------------------------------------------------
    # Evaluation

    def evaluate(
        self, eval_dataset_fn: Callable, max_eval_steps: int, global_batch_size: int
    ) -> dict:
        """Masked-LM / next-sentence accuracy and loss over `max_eval_steps` global batches."""
        dataset = self.strategy.distribute_datasets_from_function(
            lambda ctx: eval_dataset_fn(ctx, 0)
        )
        model, strategy = self.model, self.strategy
        batch_size = global_batch_size

        def replica_eval(batch):
            ctx = tf.distribute.get_replica_context()
            global_weight = ctx.all_reduce(
                tf.distribute.ReduceOp.SUM, tf.reduce_sum(batch["masked_lm_weights"])
            )
            outputs = model(model_inputs(batch), training=False)
            return pretraining_losses(outputs, batch, global_weight, batch_size)

        @tf.function
        def eval_step(batch):
            per_replica = strategy.run(replica_eval, args=(batch,))
            return {
                k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                for k, v in per_replica.items()
            }

        totals, steps = {}, 0
        for batch in dataset:
            if steps >= max_eval_steps:
                break
            for name, value in eval_step(batch).items():
                totals[name] = totals.get(name, 0.0) + float(value)
            steps += 1
        if not steps:
            raise ValueError("the evaluation dataset produced no batch")
        results = {
            "step": self.current_step(),
            "eval_steps": steps,
            "eval_examples": int(totals["examples"]),
            "loss": totals["loss"] / steps,
            "mlm_loss": totals["mlm_loss"] / steps,
            "nsp_loss": totals["nsp_loss"] / steps,
            "mlm_accuracy": totals["mlm_correct"] / max(totals["mlm_weight"], 1.0),
            "nsp_accuracy": totals["nsp_correct"] / max(totals["examples"], 1.0),
        }
        if self.is_chief:
            writer = tf.summary.create_file_writer(os.path.join(self.options.model_dir, "eval"))
            with writer.as_default(step=results["step"]):
                for name, value in results.items():
                    tf.summary.scalar(name, value)
            write_json_atomic(os.path.join(self.options.model_dir, "eval_results.json"), results)
        logging.info("eval at step %d: %s", results["step"], json.dumps(results))
        return results


def optimizer_step_in_checkpoint(path: str) -> int:
    """The optimizer update count stored in a checkpoint written by this trainer."""
    path = tf.train.latest_checkpoint(path) or path
    reader = tf.train.load_checkpoint(path)
    for name in reader.get_variable_to_shape_map():
        if (
            name.startswith("optimizer/")
            and "iterations" in name
            and name.endswith("VARIABLE_VALUE")
        ):
            return int(reader.get_tensor(name))
    raise ValueError(f"{path}: no optimizer iteration counter in this checkpoint")


def write_json_atomic(path: str, obj) -> None:
    """Writes JSON to a temporary name, then renames it into place."""
    tmp = path + ".tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(json.dumps(obj, indent=2) + "\n")
    tf.io.gfile.rename(tmp, path, overwrite=True)


def _format_seconds(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def set_mixed_precision(mode: str) -> None:
    """Sets the Keras global dtype policy for bf16 / fp16 / none."""
    policies = {"bf16": "mixed_bfloat16", "fp16": "mixed_float16", "none": "float32"}
    if mode not in policies:
        raise ValueError(f"--mixed_precision must be one of {sorted(policies)}, got {mode!r}")
    keras.mixed_precision.set_global_policy(policies[mode])
