"""Checkpoints of a training run: save, resume, start from another run's checkpoint.

A checkpoint holds the model, the optimizer (moments, update count), the dropout generators'
states and whatever else the run adds (the fp16 loss scale). Under
MultiWorkerMirroredStrategy every worker saves (the save is collective); only the chief's copy
is the real one, the others go to `worker_directory`.
"""

import os

import tensorflow as tf
from absl import logging

from bert.modeling import models
from bert.training import distribute


class CheckpointWriteError(Exception):
    """A checkpoint could not be written (disk full, permissions); the previous one is intact."""


def worker_directory(strategy: tf.distribute.Strategy, directory: str) -> str:
    """Where this worker writes checkpoints of `directory`: itself on the chief, else
    `directory/worker_tmp_<task id>` (a collective save needs a place on every worker)."""
    if distribute.is_chief(strategy):
        return directory
    return os.path.join(directory, f"worker_tmp_{strategy.cluster_resolver.task_id}")


def optimizer_step(optimizer) -> int:
    """Optimizer updates applied so far (read on the host)."""
    return int(tf.convert_to_tensor(optimizer.iterations.value).numpy())


class Checkpointer:
    """The checkpoints of one run in `directory` (numbered by the optimizer's update count).

    Args:
      strategy: the run's tf.distribute strategy (decides this worker's directory).
      model, optimizer: what is trained; the optimizer must be built (its slots exist).
      directory: the run's checkpoint directory.
      max_to_keep: checkpoints kept.
      **extra: other trackables to save (e.g. the loss scale's variables).
    """

    def __init__(self, strategy, model, optimizer, directory: str, max_to_keep: int, **extra):
        self.model, self.optimizer = model, optimizer
        self.checkpoint = tf.train.Checkpoint(
            model=model,
            optimizer=optimizer,
            dropout_seeds=models.dropout_seed_states(model),
            **extra,
        )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint,
            worker_directory(strategy, directory),
            max_to_keep=max_to_keep,
            step_counter=optimizer.iterations,
        )

    @property
    def latest(self) -> str | None:
        """The newest checkpoint of this run (None before the first save)."""
        return self.manager.latest_checkpoint

    def resume(self) -> str:
        """Restores the newest checkpoint of this run; returns its path ("" if none)."""
        latest = self.manager.latest_checkpoint
        if not latest:
            return ""
        self.checkpoint.restore(latest).assert_existing_objects_matched()
        logging.info("Resumed from %s at step %d", latest, optimizer_step(self.optimizer))
        return latest

    def initialize_from(self, path: str, keep_optimizer_state: bool = False) -> str:
        """Reads the model (and with `keep_optimizer_state` the optimizer) of another run's
        checkpoint, or of the newest one in directory `path`; returns the checkpoint read."""
        path = tf.train.latest_checkpoint(path) or path
        parts = dict(model=self.model)
        if keep_optimizer_state:
            parts["optimizer"] = self.optimizer
        tf.train.Checkpoint(**parts).read(path).assert_existing_objects_matched().expect_partial()
        logging.info("Initialized from %s", path)
        return path

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
                f"cannot write the checkpoint of step {optimizer_step(self.optimizer)} to "
                f"{self.manager.directory}: {e}. The last good checkpoint is {previous}."
            ) from e
