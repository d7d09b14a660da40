"""Pretraining records end to end: read, tokenize, create instances in parallel, write.

`create_pretraining_data` is the whole pipeline of `python -m data.create_pretraining_data`,
in memory bounded whatever the corpus size (its stages are described below). Instances are
created by worker processes over fixed tasks of DOCUMENTS_PER_TASK documents.
`generate_records` and `write_records` are the same instances made and shuffled in memory
(for small corpora and as the reference of the tests).
"""

import collections
import concurrent.futures
import contextlib
import dataclasses
import functools
import gc
import hashlib
import json
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence

import numpy as np
from absl import logging

from data import corpus_store, corpus_tokenization, fileio, text_corpus, tf_startup
from data.instance_workers import (  # noqa: F401 (DOCUMENTS_PER_TASK, instance_tasks: re-exported)
    BUCKET_SALT,
    DOCUMENTS_PER_TASK,
    STATE,
    instance_tasks,
    process_chunk,
    start_worker,
)
from data.instance_workers import process_task as _process_task  # tests replace it here
from data.pretraining_input import INFO_SUFFIX
from data.pretraining_instances import (
    InstanceOptions,
    TokenizedCorpus,
    Vocab,
)
from data.progress import Progress


def generate_records(
    corpus: TokenizedCorpus, options: InstanceOptions, vocab: Vocab, num_workers: int = 1
) -> list[bytes]:
    """Serialized records of all dupes and documents, in (dupe, document) order."""
    tasks = instance_tasks(corpus.num_documents, options.dupe_factor)
    total_bytes = float(corpus.document_bytes.sum()) * options.dupe_factor
    progress = Progress(
        "create instances",
        total=corpus.num_documents * options.dupe_factor,
        unit="docs",
        total_bytes=total_bytes,
    )
    STATE.update(corpus=corpus, options=options, vocab=vocab)
    records: list[bytes] = []

    def consume(results):
        for (_, start, end), blob, lengths in results:
            offsets = np.concatenate([[0], np.cumsum(lengths)]).tolist()
            records.extend(blob[offsets[i] : offsets[i + 1]] for i in range(len(lengths)))
            progress.update(end - start, float(corpus.document_bytes[start:end].sum()))

    try:
        if num_workers <= 1:
            consume(map(process_chunk, tasks))
        else:
            # fork: workers share the tokenized corpus without copying it.
            # gc.freeze keeps the children's garbage collector from touching
            # (and so copying) every page of the parent's heap.
            gc.freeze()
            try:
                with multiprocessing.get_context("fork").Pool(num_workers) as pool:
                    # Batches of tasks per message: fewer round trips to this process.
                    consume(pool.imap(process_chunk, tasks, chunksize=8))
            finally:
                gc.unfreeze()
    finally:
        STATE.clear()
    progress.done()
    return records


def output_paths(output_file: str, num_output_shards: int = 0) -> list[str]:
    """A comma list of files, or `prefix-00000-of-0000N` when sharding a prefix."""
    if num_output_shards and num_output_shards > 1:
        if "," in output_file:
            raise ValueError(
                "Give either a comma list of output files or one prefix with "
                "--num_output_shards, not both."
            )
        return [
            f"{output_file}-{i:05d}-of-{num_output_shards:05d}" for i in range(num_output_shards)
        ]
    return [p.strip() for p in output_file.split(",") if p.strip()]


def write_records(
    records: Sequence[bytes], paths: Sequence[str], random_seed: int, info: dict | None = None
) -> list[int]:
    """Shuffles the records (seeded), writes them round-robin over `paths`.

    Each file is streamed to a temporary name and renamed when complete (its
    `.info.json` is written atomically by `data.fileio` just before), so
    a failure never leaves partial output under a final name.
    """
    import tensorflow as tf

    order = np.random.default_rng(random_seed).permutation(len(records))
    counts = []
    for shard, path in enumerate(paths):
        directory = os.path.dirname(path)
        if directory:
            tf.io.gfile.makedirs(directory)
        temporary = f"{path}.tmp-{uuid.uuid4().hex[:12]}"  # As data.fileio names them.
        try:
            with tf.io.TFRecordWriter(temporary) as writer:
                shard_order = order[shard :: len(paths)]
                for index in shard_order:
                    writer.write(records[index])
            if info is not None:
                shard_info = dict(info, num_instances=int(len(shard_order)))
                # json.dumps as before (no trailing newline): output unchanged.
                fileio.write_atomic(path + INFO_SUFFIX, json.dumps(shard_info, indent=2))
            tf.io.gfile.rename(temporary, path, overwrite=True)
        except BaseException:
            if tf.io.gfile.exists(temporary):
                tf.io.gfile.remove(temporary)
            raise
        counts.append(len(shard_order))
    return counts


# ---------------------------------------------------------------------------------------------
# The whole pipeline, in memory bounded whatever the corpus size.
#
# 1. The text is read and tokenized in chunks of CHUNK_BYTES into a stored corpus on disk
#    (`data.corpus_store`); only the document index stays in memory.
# 2. Workers create the instances of fixed tasks (`instance_workers.process_task`), each
#    record going to one of the buckets at random (seeded per task); this process appends
#    them, in task order, to the bucket files, so their contents do not depend on the number
#    of workers.
# 3. If all records fit in the memory budget, they are put back in (dupe, document) order,
#    shuffled at once and dealt round-robin (`write_records`: the files of the in-memory path).
#    Otherwise each bucket is shuffled on its own (a two-pass shuffle: records dealt to piles at
#    random, each pile shuffled, is a uniformly random order) and dealt round-robin to its
#    output files; a bucket larger than the budget is split into piles on disk first.
#
# The work directory beside the first output keeps what each stage finished: a killed run
# started again with the same command resumes (the corpus if complete, the buckets from the
# last task recorded, the outputs of finished buckets kept) and removes it when done.
# ---------------------------------------------------------------------------------------------

CHUNK_BYTES = 4 << 20  # of text tokenized at once (larger chunks are no faster)
SAVE_SECONDS = 10.0  # between resumable points of the bucket stage
MAX_BUCKETS = 256  # open bucket files (an output file of bucket b is one with index % B == b)


def _fingerprint(input_files, hf_datasets, hf_max_documents, tokenizer, options, outputs):
    """What the outputs are a function of: a work directory is resumed only for the same."""
    files = []
    for path in input_files:
        if text_corpus.is_remote(path):
            import tensorflow as tf

            stat = tf.io.gfile.stat(path)
            files.append([path, stat.length, stat.mtime_nsec])
        else:
            stat = os.stat(path)
            files.append([os.path.abspath(path), stat.st_size, stat.st_mtime_ns])
    vocab = getattr(tokenizer, "vocab_file", None) or getattr(tokenizer, "model_file", None)
    return {
        "inputs": files,
        "hf_datasets": list(hf_datasets),
        "hf_max_documents": hf_max_documents,
        "tokenizer": [type(tokenizer).__name__, vocab, getattr(tokenizer, "do_lower_case", None)],
        "options": dataclasses.asdict(options),
        "outputs": [p if text_corpus.is_remote(p) else os.path.abspath(p) for p in outputs],
    }


def work_directory(output_files: Sequence[str]) -> str:
    """Where a run keeps its stages (removed when it is done): beside the first output, or in
    the local temporary directory when the outputs are remote (bucket files are appended to,
    cut back and read at offsets: a local disk's operations)."""
    first = output_files[0]
    if text_corpus.is_remote(first):
        digest = hashlib.sha1(first.encode()).hexdigest()[:16]
        return os.path.join(tempfile.gettempdir(), f"create_pretraining_data-{digest}.work")
    first = os.path.abspath(first)
    return os.path.join(os.path.dirname(first), f".{os.path.basename(first)}.work")


class _State:
    """The work directory's record of finished stages (state.json, written atomically)."""

    def __init__(self, directory: str, fingerprint: dict):
        self.path = os.path.join(directory, "state.json")
        self.values = {}
        if os.path.exists(self.path):
            with open(self.path) as f:
                stored = json.load(f)
            if stored.get("fingerprint") == fingerprint:
                self.values = stored
                logging.info("Resuming the run in %s", directory)
        if not self.values:
            shutil.rmtree(directory, ignore_errors=True)
            os.makedirs(directory)
            self.values = {"fingerprint": fingerprint}
            self.save()

    def __getitem__(self, key):
        return self.values.get(key)

    def update(self, **values) -> None:
        self.values.update(values)
        self.save()

    def save(self) -> None:
        fileio.write_json_atomic(self.path, self.values)


def store_corpus(documents, tokenizer, directory: str, total_bytes: float = 0) -> dict:
    """Tokenizes `documents` (an iterable) in chunks into a stored corpus; returns its sizes."""
    progress = Progress(
        "read + tokenize", total=total_bytes / 1e6, unit="MB", total_bytes=total_bytes
    )
    read_bytes = 0.0

    def chunks():
        chunk, chunk_bytes = [], 0
        for document in documents:
            chunk.append(document)
            chunk_bytes += sum(len(s) + 1 for s in document)
            if chunk_bytes >= CHUNK_BYTES:
                yield chunk
                chunk, chunk_bytes = [], 0
        if chunk:
            yield chunk

    def store(tokenized) -> None:
        nonlocal read_bytes
        writer.append(tokenized)
        read = float(tokenized.document_bytes.sum())
        read_bytes += read
        progress.update(read / 1e6, read)

    # Chunks tokenized on threads (the tokenizers run outside the GIL), stored in order;
    # at most threads + 1 chunks are held at once.
    threads = corpus_tokenization.THREADS
    tokenize = functools.partial(
        corpus_tokenization.tokenize_corpus, tokenizer=tokenizer, progress=False
    )
    with (
        corpus_store.CorpusWriter(directory) as writer,
        concurrent.futures.ThreadPoolExecutor(threads) as pool,
    ):
        pending = collections.deque()
        for chunk in chunks():
            pending.append(pool.submit(tokenize, chunk))
            if len(pending) > threads:
                store(pending.popleft().result())
        while pending:
            store(pending.popleft().result())
    progress.done()
    return {
        "documents": writer.documents,
        "sentences": writer.sentences,
        "tokens": writer.tokens,
        "bytes": read_bytes,
    }


def _bucket_path(directory: str, bucket: int) -> str:
    return os.path.join(directory, f"bucket-{bucket:05d}")


def _write_chunk(f, blob: bytes, lengths: np.ndarray, indices: np.ndarray) -> None:
    """A bucket file is chunks: record count (uint64), lengths (uint32 each), indices in the
    (dupe, document) order of all records (uint64 each), the records."""
    f.write(np.array([len(lengths)], "<u8").tobytes())
    f.write(lengths.astype("<u4").tobytes())
    f.write(indices.astype("<u8").tobytes())
    f.write(blob)


def _read_chunks(path: str):
    """Yields (blob, lengths, indices) of each chunk of a bucket file."""
    with open(path, "rb") as f:
        while header := f.read(8):
            count = int(np.frombuffer(header, "<u8")[0])
            lengths = np.frombuffer(f.read(4 * count), "<u4").astype(np.int64)
            indices = np.frombuffer(f.read(8 * count), "<u8").astype(np.int64)
            yield f.read(int(lengths.sum())), lengths, indices


def _split(blob: bytes, lengths: np.ndarray) -> list[bytes]:
    offsets = np.concatenate([[0], np.cumsum(lengths)]).tolist()
    return [blob[offsets[i] : offsets[i + 1]] for i in range(len(lengths))]


def _records_in_order(paths: Sequence[str], count: int) -> list[bytes]:
    """All records of the bucket files, back in (dupe, document) order."""
    records: list[bytes] = [b""] * count
    for path in paths:
        for blob, lengths, indices in _read_chunks(path):
            for index, record in zip(indices.tolist(), _split(blob, lengths)):
                records[index] = record
    return records


def worker_pool(num_workers: int, initargs: tuple):
    """Processes for `instance_workers.process_task`, from a fork server: a fresh process
    (never a fork of this one, whose TensorFlow threads may hold locks a child would inherit)
    that imports neither TensorFlow nor the tokenizers (`tf_startup.processes_without_tensorflow`),
    so workers start in a fraction of a second."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["data.instance_workers"])
    with tf_startup.processes_without_tensorflow():  # The fork server starts with the pool.
        return context.Pool(num_workers, start_worker, initargs)


def write_buckets(
    corpus_dir: str,
    options: InstanceOptions,
    vocab: Vocab,
    directory: str,
    num_buckets: int,
    state: _State,
    pool=None,
    num_workers: int = 1,
    corpus_memory_bytes: float = 0,
) -> int:
    """Stage 2: every task's records appended to the bucket files; returns the record count.

    Tasks run on `pool` (`worker_pool` of `num_workers` started with the same arguments) or,
    without one, in this process, which then holds the corpus in memory if that takes at most
    `corpus_memory_bytes`. Resumes after the last task recorded in `state` (bucket files
    cut back to its sizes).
    """
    corpus = corpus_store.StoredCorpus(corpus_dir)
    tasks = instance_tasks(corpus.num_documents, options.dupe_factor)
    done = state["tasks_done"] or 0
    sizes = state["bucket_sizes"] or [0] * num_buckets
    records = state["records"] or 0
    os.makedirs(directory, exist_ok=True)
    paths = [_bucket_path(directory, b) for b in range(num_buckets)]
    if any(
        size > (os.path.getsize(p) if os.path.exists(p) else 0) for p, size in zip(paths, sizes)
    ):
        # Records recorded but lost (a machine crash: bucket files are not synced to disk).
        logging.warning("Bucket files in %s are shorter than recorded: made again.", directory)
        done, records, sizes = 0, 0, [0] * num_buckets
    files = []
    for path, size in zip(paths, sizes):
        f = open(path, "ab")  # noqa: SIM115 (closed below)
        f.truncate(size)
        files.append(f)
    progress = Progress(
        "create instances",
        total=len(tasks),
        unit="tasks",
        total_bytes=float(corpus.document_bytes.sum()) * options.dupe_factor,
    )
    progress.update(done)
    last_saved = time.perf_counter()

    # Tasks in flight at most (results must not pile up faster than they are written).
    slots, stopped = threading.Semaphore(16 * max(1, num_workers)), threading.Event()

    def feed():
        for task in tasks[done:]:
            slots.acquire()
            if stopped.is_set():  # The pool is closing (an error): feed nothing more.
                return
            yield task

    def consume(results):
        nonlocal done, records, last_saved
        for (_, start, end), blob, lengths, buckets, order in results:
            slots.release()
            bounds = np.searchsorted(buckets, np.arange(num_buckets + 1))
            offsets = np.concatenate([[0], np.cumsum(lengths)])
            indices = records + order
            for bucket in np.flatnonzero(np.diff(bounds)):
                lo, hi = bounds[bucket], bounds[bucket + 1]
                chunk = blob[offsets[lo] : offsets[hi]]
                _write_chunk(files[bucket], chunk, lengths[lo:hi], indices[lo:hi])
            done, records = done + 1, records + len(lengths)
            progress.update(1, float(corpus.document_bytes[start:end].sum()))
            if time.perf_counter() - last_saved >= SAVE_SECONDS:  # A resumable point.
                save()
                last_saved = time.perf_counter()

    def save():
        # Flushed, not synced (a sync would write to disk files that are read back from the
        # page cache and removed soon after): a killed process loses nothing the kernel
        # holds, and what a crashed machine lost is made again (above).
        for f in files:
            f.flush()
        sizes = [os.fstat(f.fileno()).st_size for f in files]
        state.update(tasks_done=done, records=records, bucket_sizes=sizes)

    try:
        if pool is None:
            start_worker(corpus_dir, options, vocab, num_buckets, corpus_memory_bytes)
            consume(map(_process_task, feed()))
        else:
            try:
                consume(pool.imap(_process_task, feed(), chunksize=2))
            finally:  # Unblocks the pool's feeding thread, so the pool can close.
                stopped.set()
                slots.release()
        save()
    finally:
        if isinstance(STATE.get("corpus"), corpus_store.StoredCorpus):
            STATE["corpus"].close()
        STATE.clear()
        for f in files:
            f.close()
        corpus.close()
    progress.done()
    return records


def _shuffled_records(path: str, rng: np.random.Generator, budget: int, spill_dir: str):
    """Yields the records of a bucket file in a uniformly random order, holding at most about
    `budget` bytes: a larger file is first dealt at random to piles on disk."""
    size = os.path.getsize(path)
    if size <= budget:
        records = [r for blob, lengths, _ in _read_chunks(path) for r in _split(blob, lengths)]
        for i in rng.permutation(len(records)):
            yield records[i]
        return
    piles = 2 * -(-size // budget)
    os.makedirs(spill_dir, exist_ok=True)
    pile_paths = [os.path.join(spill_dir, f"pile-{i:04d}") for i in range(piles)]
    pile_files = [open(p, "wb") for p in pile_paths]  # noqa: SIM115 (closed below)
    try:
        for blob, lengths, indices in _read_chunks(path):
            choice = rng.integers(piles, size=len(lengths))
            order = np.argsort(choice, kind="stable")
            offsets = np.concatenate([[0], np.cumsum(lengths)])
            records = [blob[offsets[i] : offsets[i + 1]] for i in order]
            bounds = np.searchsorted(choice[order], np.arange(piles + 1))
            for pile in np.flatnonzero(np.diff(bounds)):
                lo, hi = bounds[pile], bounds[pile + 1]
                mine = order[lo:hi]
                chunk = b"".join(records[lo:hi])
                _write_chunk(pile_files[pile], chunk, lengths[mine], indices[mine])
    finally:
        for f in pile_files:
            f.close()
    for i, pile in enumerate(pile_paths):
        yield from _shuffled_records(pile, rng, budget, os.path.join(spill_dir, f"{i:04d}"))
        os.remove(pile)


def write_outputs(
    directory: str,
    output_files: Sequence[str],
    num_buckets: int,
    random_seed: int,
    budget: int,
    state: _State,
    info: dict | None = None,
) -> list[int]:
    """Stage 3: each bucket shuffled and dealt round-robin to its output files (those whose
    index is the bucket's modulo the bucket count); returns the records per output file.
    Buckets recorded as written in `state` are kept."""
    import tensorflow as tf

    counts = state["records_per_file"] or [0] * len(output_files)
    written = set(state["buckets_written"] or [])
    for bucket in range(num_buckets):
        if bucket in written:
            continue
        paths = list(output_files[bucket::num_buckets])
        temporaries = [f"{p}.tmp-{uuid.uuid4().hex[:12]}" for p in paths]
        rng = np.random.default_rng([random_seed, bucket, BUCKET_SALT])
        spill = os.path.join(directory, f"spill-{bucket:05d}")
        mine = [0] * len(paths)
        try:
            for p in paths:
                if os.path.dirname(p):
                    tf.io.gfile.makedirs(os.path.dirname(p))
            writers = [tf.io.TFRecordWriter(t) for t in temporaries]
            try:
                records = _shuffled_records(_bucket_path(directory, bucket), rng, budget, spill)
                for i, record in enumerate(records):
                    writers[i % len(paths)].write(record)
                    mine[i % len(paths)] += 1
            finally:
                for w in writers:
                    w.close()
            for path, temporary, count in zip(paths, temporaries, mine):
                if info is not None:
                    shard_info = dict(info, num_instances=count)
                    # json.dumps as before (no trailing newline).
                    fileio.write_atomic(path + INFO_SUFFIX, json.dumps(shard_info, indent=2))
                tf.io.gfile.rename(temporary, path, overwrite=True)
        except BaseException:
            for t in temporaries:
                if tf.io.gfile.exists(t):
                    tf.io.gfile.remove(t)
            raise
        shutil.rmtree(spill, ignore_errors=True)
        for k, count in enumerate(mine):
            counts[bucket + k * num_buckets] = count
        written.add(bucket)
        state.update(buckets_written=sorted(written), records_per_file=counts)
        os.remove(_bucket_path(directory, bucket))
    return counts


def record_info(options: InstanceOptions, vocab: Vocab, tokenizer) -> dict | None:
    """What an output file of unmasked records says about itself (its `.info.json`, without
    `num_instances`), or None for masked records (they carry their masks)."""
    if options.is_masked:
        return None
    return dict(
        dataclasses.asdict(options),
        masked=options.is_masked,
        vocab_size=vocab.size,
        cls_id=vocab.cls_id,
        sep_id=vocab.sep_id,
        mask_id=vocab.mask_id,
        pad_id=vocab.pad_id,
        do_lower_case=getattr(tokenizer, "do_lower_case", None),
    )


def create_pretraining_data(
    input_files: Sequence[str],
    output_files: Sequence[str],
    tokenizer,
    options: InstanceOptions,
    num_workers: int = 1,
    hf_datasets: Sequence[str] = (),
    hf_max_documents: int = 0,
    memory_megabytes: float = 128,
) -> dict:
    """Runs the whole pipeline; returns statistics (counts, seconds, rates).

    Memory stays bounded whatever the corpus size: about `memory_megabytes` of records are
    held at once (plus the document index, 16 bytes per document), see the stages above.
    While instances are made, the workers hold the tokenized corpus in memory if it fits
    their share of the same budget (`memory_megabytes / num_workers` each), else read it
    from disk.
    """
    start = time.perf_counter()
    total = float(sum(text_corpus.file_size(p) for p in input_files))  # Before any writing.
    work = work_directory(output_files)
    fingerprint = _fingerprint(
        input_files, hf_datasets, hf_max_documents, tokenizer, options, output_files
    )
    state = _State(work, fingerprint)
    corpus_dir = os.path.join(work, "corpus")
    vocab = Vocab.from_tokenizer(tokenizer)
    num_buckets = min(len(output_files), MAX_BUCKETS)
    bucket_dir = os.path.join(work, "buckets")
    budget = max(1, int(memory_megabytes * 2**20))
    corpus_memory = budget / max(1, num_workers)  # Records are not held while tasks run.
    instances_done = state["corpus"] is not None and state["tasks_done"] == len(
        instance_tasks(state["corpus"]["documents"], options.dupe_factor)
    )
    with contextlib.ExitStack() as stack:
        pool = None
        if num_workers > 1 and not instances_done:  # Workers start while the text is tokenized.
            args = (corpus_dir, options, vocab, num_buckets, corpus_memory)
            pool = stack.enter_context(worker_pool(num_workers, args))
        try:
            if not state["corpus"]:
                documents = text_corpus.iter_documents(
                    input_files, hf_datasets, hf_max_documents=hf_max_documents
                )
                state.update(corpus=store_corpus(documents, tokenizer, corpus_dir, total))
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)  # Bad input: nothing worth resuming.
            raise
        if not state["corpus"]["documents"]:
            shutil.rmtree(work, ignore_errors=True)
            raise ValueError(f"No documents found in {list(input_files) + list(hf_datasets)}.")
        tokenize_seconds = time.perf_counter() - start
        if not instances_done:
            write_buckets(
                corpus_dir,
                options,
                vocab,
                bucket_dir,
                num_buckets,
                state,
                pool,
                num_workers,
                corpus_memory,
            )
    instances_seconds = time.perf_counter() - start - tokenize_seconds
    info = record_info(options, vocab, tokenizer)
    records, corpus = state["records"], state["corpus"]
    if sum(state["bucket_sizes"]) <= budget and not state["buckets_written"]:
        # Everything fits: the whole set shuffled at once, exactly as the in-memory path does
        # (`write_records`), so small corpora give the same files as before buckets existed.
        buckets = [_bucket_path(bucket_dir, b) for b in range(num_buckets)]
        in_order = _records_in_order(buckets, records)
        counts = write_records(in_order, output_files, options.random_seed, info=info)
    else:
        counts = write_outputs(
            bucket_dir, output_files, num_buckets, options.random_seed, budget, state, info
        )
    input_bytes = corpus["bytes"]
    shutil.rmtree(work, ignore_errors=True)
    seconds = time.perf_counter() - start
    stats = dict(
        documents=corpus["documents"],
        instances=records,
        seconds=seconds,
        tokenize_seconds=tokenize_seconds,  # read and tokenize into the stored corpus
        instances_seconds=instances_seconds,  # create, mask, serialize, write the buckets
        write_seconds=seconds - tokenize_seconds - instances_seconds,  # shuffle and write
        input_megabytes=input_bytes / 1e6,
        mb_per_second=input_bytes / 1e6 / seconds,
        instances_per_second=records / seconds,
        records_per_file=counts,
    )
    logging.info(
        "Wrote %d instances from %d documents to %d file(s) in %.1fs "
        "(%.2f input MB/s, %.0f instances/s).",
        records,
        corpus["documents"],
        len(output_files),
        seconds,
        stats["mb_per_second"],
        stats["instances_per_second"],
    )
    return stats
