# Copyright 2026 The bert-large-batch Authors. Apache-2.0.
"""What one CPU core can do for SQuAD fine-tuning: MiniLM-L6 step rates without any input.

For each precision, the same step runs XLA-compiled and as a plain TF graph (oneDNN kernels),
side by side, each in its own process pinned to one core (one thread):

- *train*: forward + `bert.run_squad.squad_loss` + gradients + the project's AdamW (bias
  correction, eps 1e-8, clip 1.0), batch 16, as run_squad's training step computes it;
- *forward*: the prediction forward pass, batch 16.

Every window is full (no padding), so tokens/s is the ceiling of features/s x real tokens per
window: it bounds what any padding scheme or input pipeline can reach on this core. The first
call of each length (tracing, XLA compilation) is timed apart; the rate is the median of the
next `--steps` calls. `benchmarks/squad_peer.py` measures the whole fine-tuning against the
Hugging Face peer; this module says how far from the core's limit it is, and why prediction
runs as a TF graph off TPU (run_squad's `--predict_jit_compile`).

  python -m benchmarks.squad_step_rates     # ~6 min on 2 cores: squad_step_rates.{json,md}
  python -m benchmarks.squad_step_rates --precisions=fp32 --lengths=128 --steps=2
"""

import os
import re
import time
from collections.abc import Sequence

from absl import app, flags

from benchmarks import common

_HERE = os.path.dirname(os.path.abspath(__file__))
BATCH_SIZE = 16
FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_list("lengths", ["128", "224", "384"], "Window lengths (tokens, all real).")
    flags.DEFINE_list("precisions", ["fp32", "bf16"], "fp32, and/or bf16 (mixed_bfloat16).")
    flags.DEFINE_list("parts", ["train", "forward"], "Steps to time.")
    flags.DEFINE_integer("steps", 5, "Timed calls per length after the first.")
    flags.DEFINE_list("cores", ["0", "1"], "Cores of the XLA and the TF graph process.")
    flags.DEFINE_string("model_dir", None, "BERT checkpoint (default: the MiniLM-L6 package).")
    flags.DEFINE_string(
        "output_json", os.path.join(_HERE, "squad_step_rates.json"), "Results as JSON."
    )
    flags.DEFINE_string(
        "output_markdown", os.path.join(_HERE, "squad_step_rates.md"), "Results as markdown."
    )


def step_rates(
    core: int,
    model_dir: str,
    part: str,
    precision: str,
    jit_compile: bool,
    lengths: Sequence[int],
    steps: int,
) -> list[dict]:
    """Times `part` ('train' or 'forward') at each length on one core; returns a row each."""
    os.sched_setaffinity(0, {core})
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    import bert
    from benchmarks import train_step
    from bert import checkpoints
    from bert.tasks import squad as squad_task
    from bert.training import options

    options.set_mixed_precision({"fp32": "none"}.get(precision, precision))
    config = checkpoints.resolve_config(model_dir)
    model = bert.build_squad_model(config)
    checkpoints.initialize_from_checkpoint(model, model_dir)
    spec = {k: tf.TensorSpec([BATCH_SIZE, None], tf.int32) for k in ("input_ids", "input_mask")}
    spec["segment_ids"] = spec["input_ids"]
    if part == "train":
        optimizer, _ = squad_task.create_optimizer_and_schedule(
            "adamw", "warmup_poly", 5e-5, 1000, 100, {"bias_correction": True, "epsilon": 1e-8}
        )
        variables = squad_task.trainable_variables(model)
        labels = tf.TensorSpec([BATCH_SIZE], tf.int32)

        def step(inputs, start_positions, end_positions):
            batch = dict(inputs, start_positions=start_positions, end_positions=end_positions)
            with tf.GradientTape() as tape:
                loss = squad_task.squad_loss(model(inputs, training=True), batch, BATCH_SIZE)
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

        signature = [spec, labels, labels]
    else:

        def step(inputs):
            return model(inputs, training=False)["start_logits"]

        signature = [spec]
    step = tf.function(step, jit_compile=jit_compile, input_signature=signature)
    # Model FLOPs a token: 2 per matmul weight and 4 x length x hidden per layer of attention
    # (scores and weighted sum) forward; a training step is 3 forward passes' worth.
    matmul_weights = sum(  # The encoder layers' (the pooler is not run for SQuAD).
        int(np.prod(w.shape)) for w in model.weights if re.match(r"layer_\d+/.*kernel$", w.path)
    )
    passes = 3 if part == "train" else 1
    rng = np.random.default_rng(0)
    rows = []
    for length in lengths:
        shape = (BATCH_SIZE, length)
        inputs = {
            "input_ids": tf.constant(rng.integers(1000, config.vocab_size, shape), tf.int32),
            "input_mask": tf.ones(shape, tf.int32),
            "segment_ids": tf.constant(np.arange(length) >= length // 4, tf.int32)[None]
            * tf.ones(shape, tf.int32),
        }
        args = [inputs]
        if part == "train":
            args += [tf.constant(rng.integers(0, length, BATCH_SIZE), tf.int32)] * 2
        start = time.perf_counter()
        step(*args).numpy()
        first = time.perf_counter() - start
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            step(*args).numpy()
            times.append(time.perf_counter() - start)
        seconds = float(np.median(times))
        flops_per_token = passes * (
            2 * matmul_weights + 4 * length * config.hidden_size * config.num_hidden_layers
        )
        rows.append(
            {
                "part": part,
                "precision": precision,
                "xla": jit_compile,
                "length": length,
                "first_call_seconds": first,
                "step_seconds": seconds,
                "tokens_per_second": BATCH_SIZE * length / seconds,
                "model_flops_per_second": flops_per_token * BATCH_SIZE * length / seconds,
            }
        )
    # The same core's fp32 GEMM peak (best 2048^2 matmul, TF and XLA), after the steps.
    peak = train_step.gemm_peak_flops(size=2048, repeats=5)["peak"]
    for row in rows:
        row["core_gemm_peak_flops"] = peak
    return rows


def run(
    model_dir: str,
    lengths: Sequence[int],
    precisions: Sequence[str],
    parts: Sequence[str],
    steps: int,
    cores: Sequence[int],
) -> dict:
    """Each (part, precision): XLA on cores[0] and the TF graph on cores[1], at the same time."""
    start, load_start, rows = time.time(), os.getloadavg(), []
    for part in parts:
        for precision in precisions:
            handles = [
                common.start_isolated(
                    "benchmarks.squad_step_rates",
                    "step_rates",
                    core=int(core),
                    model_dir=model_dir,
                    part=part,
                    precision=precision,
                    jit_compile=jit,
                    lengths=list(lengths),
                    steps=steps,
                )
                for jit, core in zip((True, False), cores)
            ]
            for handle in handles:
                rows += handle.result()
    return {
        "versions": common.versions(),
        "machine": common.machine(),
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "seconds": time.time() - start,
        "batch_size": BATCH_SIZE,
        "rows": rows,
    }


def to_markdown(results: dict) -> str:
    m, v = results["machine"], results["versions"]
    lines = [
        "# MiniLM-L6 SQuAD step rates on one core (no input pipeline, no padding)",
        "",
        f"Machine: {m.get('cpu', '?')}, {m['cpu_count']} cores; {m['platform']}.",
        "Software: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        (
            f"Batch {results['batch_size']}; load average at start "
            f"{'/'.join(f'{x:.1f}' for x in results['load_average_start'])}, at end "
            f"{'/'.join(f'{x:.1f}' for x in results['load_average_end'])}; "
            f"total {results['seconds'] / 60:.1f} min. XLA and TF graph of one part and "
            "precision ran at the same time, one core each."
        ),
        "",
        (
            "| step | precision | length | XLA tokens/s | TF graph tokens/s | graph / XLA "
            "| model GFLOP/s, XLA / graph | first call s, XLA / graph |"
        ),
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    by_key: dict[tuple, dict] = {
        (r["part"], r["precision"], r["length"], r["xla"]): r for r in results["rows"]
    }
    for part, precision, length, xla in by_key:
        if not xla:
            continue
        a, b = by_key[part, precision, length, True], by_key.get((part, precision, length, False))
        graph = b["tokens_per_second"] if b else None
        lines.append(
            f"| {part} | {precision} | {length} | {a['tokens_per_second']:.0f} | "
            + (f"{graph:.0f} | {graph / a['tokens_per_second']:.2f} | " if b else "n/a | | ")
            + f"{a['model_flops_per_second'] / 1e9:.0f} / "
            + (f"{b['model_flops_per_second'] / 1e9:.0f} | " if b else "n/a | ")
            + f"{a['first_call_seconds']:.1f} / "
            + (f"{b['first_call_seconds']:.1f} |" if b else "n/a |")
        )
    peaks = sorted({r["core_gemm_peak_flops"] / 1e9 for r in results["rows"]})
    lines += [
        "",
        (
            f"fp32 GEMM peak of a core (best 2048x2048 matmul, TF or XLA, measured by each "
            f"process after its steps): {peaks[0]:.0f}-{peaks[-1]:.0f} GFLOP/s. Model FLOPs a "
            "token: 2 per matmul weight + 4 x length x hidden per layer (attention) forward, x3 "
            "for training."
        ),
    ]
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    results = run(
        common.minilm_model_dir(FLAGS.model_dir),
        [int(n) for n in FLAGS.lengths],
        FLAGS.precisions,
        FLAGS.parts,
        FLAGS.steps,
        [int(c) for c in FLAGS.cores],
    )
    common.write_results(results, to_markdown(results), FLAGS.output_json, FLAGS.output_markdown)


if __name__ == "__main__":
    define_flags()
    app.run(main)
