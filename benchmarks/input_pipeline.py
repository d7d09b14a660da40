"""Benchmark: examples/s of the pretraining input pipeline (data.pretraining_input).

Generates pretraining TFRecords (random token ids with realistic lengths and
masks, exactly the original features), then times `build_dataset` with static
masks (masked records) and dynamic masking (unmasked records):

  python -m benchmarks.input_pipeline --batch_size=32 --seq_length=128 \
      --output_json=/tmp/input_pipeline.json --output_markdown=/tmp/input_pipeline.md

`examples_per_second(...)` is the function to reuse (e.g. next to a trainer's
step rate).
"""

import dataclasses
import json
import os
import sys
import tempfile
import time

import numpy as np
from absl import app

from data import cli


@dataclasses.dataclass
class InputPipelineOptions:
    """Options of `python -m benchmarks.input_pipeline`, one flag each."""

    batch_size: int = cli.option(32, "Per-pipeline batch size.")
    seq_length: int = cli.option(128, "Sequence length.")
    max_predictions_per_seq: int = cli.option(20, "Masked positions per sequence.")
    num_batches: int = cli.option(300, "Timed batches per configuration.")
    output_json: str | None = cli.option(None, "Write the rows as JSON here.")
    output_markdown: str | None = cli.option(None, "Write the table as markdown here.")


def write_generated_records(
    directory: str,
    num_files: int = 4,
    records_per_file: int = 2048,
    seq_length: int = 128,
    max_predictions_per_seq: int = 20,
    masked: bool = True,
    vocab_size: int = 30522,
    seed: int = 0,
) -> str:
    """Writes random pretraining records; returns a glob pattern for them."""
    import tensorflow as tf

    from data import pretraining_instances as cpd

    rng = np.random.default_rng(seed)
    name = "masked" if masked else "unmasked"
    for shard in range(num_files):
        n = records_per_file
        lengths = np.where(rng.random(n) < 0.9, seq_length, rng.integers(8, seq_length, n))
        a_lengths = np.maximum(2, (lengths * rng.uniform(0.2, 0.8, n)).astype(np.int64))
        ids = rng.integers(1000, vocab_size, (n, seq_length)).astype(np.int32)
        grid = np.arange(seq_length)[None, :]
        ids[:, 0] = 101
        ids[grid == a_lengths[:, None] - 1] = 102
        ids[grid == lengths[:, None] - 1] = 102
        ids[grid >= lengths[:, None]] = 0
        p = max_predictions_per_seq
        if masked:
            options = cpd.InstanceOptions(max_seq_length=seq_length, max_predictions_per_seq=p)
            vocab = cpd.Vocab(
                size=vocab_size,
                cls_id=101,
                sep_id=102,
                mask_id=103,
                pad_id=0,
                is_continuation=np.zeros([vocab_size], bool),
            )
            ids, positions, labels, weights = cpd.mask_instances(ids, lengths, options, vocab, rng)
        else:
            positions = labels = np.zeros((n, p), np.int32)
            weights = np.zeros((n, p), np.float32)
        instances = cpd.Instances(
            ids, lengths, a_lengths, rng.random(n) < 0.5, positions, labels, weights
        )
        with tf.io.TFRecordWriter(os.path.join(directory, f"{name}-{shard:05d}")) as writer:
            for record in cpd.serialize_instances(instances):
                writer.write(record)
    return os.path.join(directory, f"{name}-*")


def examples_per_second(
    file_pattern: str,
    batch_size: int = 32,
    seq_length: int = 128,
    max_predictions_per_seq: int = 20,
    dynamic_masking: bool = False,
    num_batches: int = 300,
    warmup_batches: int = 30,
    vocab_size: int = 30522,
    seed: int = 1,
) -> float:
    """Examples/s of build_dataset(is_training=True) over `num_batches` batches."""
    from data import pretraining_input

    dataset = pretraining_input.build_dataset(
        file_pattern,
        batch_size,
        seq_length,
        max_predictions_per_seq,
        is_training=True,
        seed=seed,
        dynamic_masking=dynamic_masking,
        vocab_size=vocab_size,
    )
    iterator = iter(dataset)
    for _ in range(warmup_batches):
        next(iterator)
    start = time.perf_counter()
    for _ in range(num_batches):
        next(iterator)
    return num_batches * batch_size / (time.perf_counter() - start)


def benchmark(
    batch_size: int = 32,
    seq_length: int = 128,
    max_predictions_per_seq: int = 20,
    num_batches: int = 300,
) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for dynamic in (False, True):
            pattern = write_generated_records(
                tmp,
                seq_length=seq_length,
                max_predictions_per_seq=max_predictions_per_seq,
                masked=not dynamic,
            )
            rate = examples_per_second(
                pattern,
                batch_size,
                seq_length,
                max_predictions_per_seq,
                dynamic_masking=dynamic,
                num_batches=num_batches,
            )
            rows.append(
                dict(
                    masking="dynamic (in tf.data)" if dynamic else "static (in records)",
                    batch_size=batch_size,
                    seq_length=seq_length,
                    examples_per_second=rate,
                )
            )
    return rows


def format_table(rows: list[dict], title: str) -> str:
    lines = [
        f"### {title}",
        "",
        "| masking | batch | seq | examples/s |",
        "| --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['masking']} | {r['batch_size']} | {r['seq_length']} | "
            f"{r['examples_per_second']:.0f} |"
        )
    return "\n".join(lines)


def main(_):
    options = cli.from_flags(InputPipelineOptions)
    rows = benchmark(
        options.batch_size,
        options.seq_length,
        options.max_predictions_per_seq,
        options.num_batches,
    )
    title = f"Pretraining input pipeline ({os.cpu_count()} CPU cores)"
    table = format_table(rows, title)
    print(table)
    if options.output_json:
        with open(options.output_json, "w") as f:
            json.dump(dict(title=title, rows=rows), f, indent=2)
    if options.output_markdown:
        with open(options.output_markdown, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    cli.define_flags(InputPipelineOptions, module_name=sys.argv[0])
    app.run(main)
