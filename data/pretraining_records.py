"""Pretraining records end to end: read, tokenize, create instances in parallel, write.

`create_pretraining_data` is the whole pipeline of `python -m data.create_pretraining_data`.
Instances are created by worker processes over fixed tasks of DOCUMENTS_PER_TASK documents
(`generate_records`); all records are then shuffled with the random seed and dealt
round-robin to the output files (`write_records`), each unmasked file with its
`<file>.info.json`.
"""

import dataclasses
import gc
import json
import multiprocessing
import os
import time
import uuid
from collections.abc import Sequence

import numpy as np
from absl import logging

from data import fileio, text_corpus
from data.corpus_tokenization import tokenize_corpus
from data.pretraining_input import INFO_SUFFIX
from data.pretraining_instances import (
    InstanceOptions,
    TokenizedCorpus,
    Vocab,
    create_instances,
    serialize_instances,
)
from data.progress import Progress

# Set in the parent before forking; worker processes inherit them.
_WORKER_STATE: dict[str, object] = {}


def _process_chunk(task: tuple[int, int, int]):
    """Worker: serialized records of documents [start, end) for one dupe."""
    dupe, start, end = task
    instances = create_instances(
        _WORKER_STATE["corpus"], dupe, start, end, _WORKER_STATE["options"], _WORKER_STATE["vocab"]
    )
    records = serialize_instances(instances)
    # One blob and its lengths pickle far faster than many small bytes objects.
    return task, b"".join(records), np.array([len(r) for r in records], np.int64)


# Documents per task. Masks are drawn per task, so this is part of the
# algorithm's definition (fixed, never derived from the number of workers).
DOCUMENTS_PER_TASK = 16


def generate_records(
    corpus: TokenizedCorpus, options: InstanceOptions, vocab: Vocab, num_workers: int = 1
) -> list[bytes]:
    """Serialized records of all dupes and documents, in (dupe, document) order."""
    tasks = [
        (dupe, start, min(start + DOCUMENTS_PER_TASK, corpus.num_documents))
        for dupe in range(options.dupe_factor)
        for start in range(0, corpus.num_documents, DOCUMENTS_PER_TASK)
    ]
    total_bytes = float(corpus.document_bytes.sum()) * options.dupe_factor
    progress = Progress(
        "create instances",
        total=corpus.num_documents * options.dupe_factor,
        unit="docs",
        total_bytes=total_bytes,
    )
    _WORKER_STATE.update(corpus=corpus, options=options, vocab=vocab)
    records: list[bytes] = []

    def consume(results):
        for (_, start, end), blob, lengths in results:
            offsets = np.concatenate([[0], np.cumsum(lengths)]).tolist()
            records.extend(blob[offsets[i] : offsets[i + 1]] for i in range(len(lengths)))
            progress.update(end - start, float(corpus.document_bytes[start:end].sum()))

    try:
        if num_workers <= 1:
            consume(map(_process_chunk, tasks))
        else:
            # fork: workers share the tokenized corpus without copying it.
            # gc.freeze keeps the children's garbage collector from touching
            # (and so copying) every page of the parent's heap.
            gc.freeze()
            try:
                with multiprocessing.get_context("fork").Pool(num_workers) as pool:
                    # Batches of tasks per message: fewer round trips to this process.
                    consume(pool.imap(_process_chunk, tasks, chunksize=8))
            finally:
                gc.unfreeze()
    finally:
        _WORKER_STATE.clear()
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


def create_pretraining_data(
    input_files: Sequence[str],
    output_files: Sequence[str],
    tokenizer,
    options: InstanceOptions,
    num_workers: int = 1,
    hf_datasets: Sequence[str] = (),
    hf_max_documents: int = 0,
) -> dict:
    """Runs the whole pipeline; returns statistics (counts, seconds, rates)."""
    start = time.perf_counter()
    documents = text_corpus.read_documents(
        input_files, hf_datasets, hf_max_documents=hf_max_documents
    )
    if not documents:
        raise ValueError(f"No documents found in {list(input_files) + list(hf_datasets)}.")
    read_seconds = time.perf_counter() - start
    corpus = tokenize_corpus(documents, tokenizer)
    tokenize_seconds = time.perf_counter() - start - read_seconds
    vocab = Vocab.from_tokenizer(tokenizer)
    records = generate_records(corpus, options, vocab, num_workers)
    instances_seconds = time.perf_counter() - start - read_seconds - tokenize_seconds
    info = dict(
        dataclasses.asdict(options),
        masked=options.is_masked,
        vocab_size=vocab.size,
        cls_id=vocab.cls_id,
        sep_id=vocab.sep_id,
        mask_id=vocab.mask_id,
        pad_id=vocab.pad_id,
        do_lower_case=getattr(tokenizer, "do_lower_case", None),
    )
    counts = write_records(
        records, output_files, options.random_seed, info=None if options.is_masked else info
    )
    seconds = time.perf_counter() - start
    input_bytes = float(corpus.document_bytes.sum())
    stats = dict(
        documents=corpus.num_documents,
        instances=len(records),
        seconds=seconds,
        read_seconds=read_seconds,
        tokenize_seconds=tokenize_seconds,
        instances_seconds=instances_seconds,  # create, mask and serialize
        write_seconds=seconds - read_seconds - tokenize_seconds - instances_seconds,
        input_megabytes=input_bytes / 1e6,
        mb_per_second=input_bytes / 1e6 / seconds,
        instances_per_second=len(records) / seconds,
        records_per_file=counts,
    )
    logging.info(
        "Wrote %d instances from %d documents to %d file(s) in %.1fs "
        "(%.2f input MB/s, %.0f instances/s).",
        len(records),
        corpus.num_documents,
        len(output_files),
        seconds,
        stats["mb_per_second"],
        stats["instances_per_second"],
    )
    return stats
