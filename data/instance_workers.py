"""What the worker processes of `data.pretraining_records` run: tasks of instances.

Kept free of TensorFlow (numpy and the stored corpus only): a worker process imports this
module, not the tokenizers, so it starts in a fraction of a second and holds only the
corpus index and one task's records.

A task is (dupe, first document, end document) over DOCUMENTS_PER_TASK documents; its masks
and its records' buckets are drawn from generators seeded by the task, so the records do not
depend on which worker made them.
"""

import numpy as np

from data import corpus_store
from data.pretraining_instances import InstanceOptions, Vocab, create_instances, serialize_instances

# Documents per task. Masks are drawn per task, so this is part of the
# algorithm's definition (fixed, never derived from the number of workers).
DOCUMENTS_PER_TASK = 16
BUCKET_SALT = 0x6275636B  # "buck": bucket choices are a stream apart from the instances'

# A worker's corpus, options and vocabulary: inherited from the parent (fork: the in-memory
# path) or set by the pool's initializer (`start_worker`).
STATE: dict[str, object] = {}


def instance_tasks(num_documents: int, dupe_factor: int) -> list[tuple[int, int, int]]:
    """The fixed tasks (dupe, first document, end document), in the order records are
    numbered."""
    return [
        (dupe, start, min(start + DOCUMENTS_PER_TASK, num_documents))
        for dupe in range(dupe_factor)
        for start in range(0, num_documents, DOCUMENTS_PER_TASK)
    ]


def process_chunk(task: tuple[int, int, int]):
    """Serialized records of documents [start, end) for one dupe (one blob and lengths)."""
    dupe, start, end = task
    instances = create_instances(
        STATE["corpus"], dupe, start, end, STATE["options"], STATE["vocab"]
    )
    records = serialize_instances(instances)
    # One blob and its lengths pickle far faster than many small bytes objects.
    return task, b"".join(records), np.array([len(r) for r in records], np.int64)


def bucket_order(options: InstanceOptions, task: tuple, count: int, num_buckets: int):
    """(bucket of each record of a task, permutation grouping them by bucket)."""
    dupe, start, _ = task
    rng = np.random.default_rng([options.random_seed, dupe, start, BUCKET_SALT])
    buckets = rng.integers(num_buckets, size=count)
    return buckets, np.argsort(buckets, kind="stable")


def start_worker(
    corpus_dir: str,
    options: InstanceOptions,
    vocab: Vocab,
    num_buckets: int,
    corpus_memory_bytes: float = 0,
):
    """Pool initializer (nothing is inherited). The worker opens the stored corpus itself at
    its first task, so it may start while the corpus is still being written; it holds the
    corpus in memory if that takes at most `corpus_memory_bytes`."""
    STATE.clear()
    STATE.update(
        corpus_dir=corpus_dir,
        corpus_memory_bytes=corpus_memory_bytes,
        options=options,
        vocab=vocab,
        num_buckets=num_buckets,
    )


def _corpus():
    if "corpus" not in STATE:
        STATE["corpus"] = corpus_store.open_corpus(
            STATE["corpus_dir"], STATE["corpus_memory_bytes"]
        )
    return STATE["corpus"]


def process_task(task: tuple[int, int, int]):
    """A task's serialized records grouped by bucket (one blob, lengths, buckets, order)."""
    dupe, start, end = task
    options = STATE["options"]
    records = serialize_instances(
        create_instances(_corpus(), dupe, start, end, options, STATE["vocab"])
    )
    buckets, order = bucket_order(options, task, len(records), STATE["num_buckets"])
    return (
        task,
        b"".join(records[i] for i in order),
        np.array([len(records[i]) for i in order], np.int64),
        buckets[order],
        order,
    )
