"""Training input: distributed iterators that skip what a resumed run already used, and buckets.

`Trainer.train` takes a `dataset_fn(input_context)` of per-replica micro-batches (static
shapes, repeated) or a `BucketedInput` of several; `host_calls` turns either into the function
that runs a number of updates from a given step.
"""

import dataclasses
import threading
from collections.abc import Callable, Sequence

import numpy as np

from bert.training import distribute


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


def make_iterator(strategy, dataset_fn: Callable, skip_micro_steps: int = 0):
    """Iterator over the distributed `dataset_fn(input_context)` of per-replica micro-batches,
    past the batches of the first `skip_micro_steps` micro-steps (one batch per replica each,
    `num_replicas_in_sync / num_input_pipelines` of them from each pipeline)."""

    def distributed_fn(ctx):
        dataset = dataset_fn(ctx)
        per_pipeline = ctx.num_replicas_in_sync // ctx.num_input_pipelines
        return dataset.skip(skip_micro_steps * per_pipeline) if skip_micro_steps else dataset

    return iter(distribute.distribute_datasets(strategy, distributed_fn))


def release(iterators: list) -> None:
    """Empties `iterators` (finished input iterators) and deletes them on a daemon thread.

    Deleting a tf.data iterator joins its autotuning thread (tf.data's
    `Model::OptimizeLoop`), which now and then misses the cancellation and sleeps out the
    rest of its optimization period, a period that doubles up to a minute: deleting the
    training iterator held up the end of training, before the final evaluation, by 0 to 50 s
    (10-50 s in about one run in three). Deleted on another thread, it blocks nothing. The
    caller must hold no other reference to the iterators.
    """
    finished = list(iterators)
    iterators.clear()
    threading.Thread(target=finished.clear, name="release_iterators", daemon=True).start()


class HostCalls:
    """`run(first, num_steps)` of `host_calls`; `close()` releases its iterators."""

    def __init__(self, run: Callable[[int, int], dict], iterators: list):
        self._run, self._iterators = run, iterators

    def __call__(self, first: int, num_steps: int) -> dict:
        return self._run(first, num_steps)

    def close(self) -> None:
        release(self._iterators)


def host_calls(
    dataset_fn,
    step: int,
    num_train_steps: int,
    make_iterator: Callable,
    run_steps: Callable,
) -> HostCalls:
    """`run(first, num_steps)` over `dataset_fn` (a dataset_fn or a BucketedInput) from `step`.

    `make_iterator(dataset_fn, skip_steps)` makes an iterator past the batches of `skip_steps`
    updates; `run_steps(iterator, num_steps)` runs updates in one host call and returns the
    summed values, which `run` adds up over the host calls of its buckets. Call `run.close()`
    when training ends (see `release`).
    """
    if not isinstance(dataset_fn, BucketedInput):
        iterators = [make_iterator(dataset_fn, skip_steps=step)]
        return HostCalls(lambda first, num_steps: run_steps(iterators[0], num_steps), iterators)
    schedule = np.asarray(dataset_fn.schedule)
    if len(schedule) < num_train_steps:
        raise ValueError(
            f"the bucket schedule has {len(schedule)} updates, fewer than "
            f"num_train_steps={num_train_steps}"
        )
    used = np.bincount(schedule[:step], minlength=len(dataset_fn.dataset_fns))
    iterators = [
        make_iterator(fn, skip_steps=int(skip)) for fn, skip in zip(dataset_fn.dataset_fns, used)
    ]

    def run(first, num_steps):
        totals = {}
        buckets = schedule[first : first + num_steps]
        # Runs of consecutive updates of one bucket: one host call each.
        ends = np.flatnonzero(np.diff(buckets)) + 1
        for run_start, run_end in zip([0, *ends], [*ends, num_steps]):
            part = run_steps(iterators[buckets[run_start]], int(run_end - run_start))
            totals = {k: totals.get(k, 0.0) + v for k, v in part.items()}
        return totals

    return HostCalls(run, iterators)
