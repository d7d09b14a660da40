"""Benchmark: one optimizer step over BERT-Base-shaped variables, ours vs Keras.

No model: the variables have the shapes of BERT-Base's ~110M parameters
(embeddings, 12 transformer layers, pooler) and the gradients are fixed random
tensors. Each optimizer's `apply_gradients` is compiled with XLA
(`tf.function(jit_compile=True)`), warmed up, then timed; the table gives
ms/step and the ratio to Keras's own optimizer of the same family.

  python -m benchmarks.optimizer_step --num_steps=10 \
      --output_json=/tmp/optimizer_step.json --output_markdown=/tmp/optimizer_step.md
"""

import dataclasses
import sys
import time

from absl import app, logging

from data import cli
from data.fileio import write_atomic, write_json_atomic


@dataclasses.dataclass
class OptimizerStepOptions:
    """Options of `python -m benchmarks.optimizer_step`, one flag each."""

    num_steps: int = cli.option(10, "Timed steps per optimizer.")
    warmup_steps: int = cli.option(2, "Untimed steps (compilation) per optimizer.")
    output_json: str | None = cli.option(None, "Where to write the results as JSON.")
    output_markdown: str | None = cli.option(
        None, "Where to write the results as a markdown table."
    )


Shapes = list[tuple[str, tuple[int, ...]]]


def bert_shapes(
    vocab_size=30522, hidden=768, layers=12, intermediate=3072, max_positions=512, type_vocab=2
) -> Shapes:
    """(name, shape) of every BERT encoder variable (BERT-Base by default, 109.5M parameters)."""
    shapes = [
        ("embeddings/word_embeddings", (vocab_size, hidden)),
        ("embeddings/position_embeddings", (max_positions, hidden)),
        ("embeddings/token_type_embeddings", (type_vocab, hidden)),
        ("embeddings/LayerNorm/gamma", (hidden,)),
        ("embeddings/LayerNorm/beta", (hidden,)),
    ]
    for i in range(layers):
        p = f"encoder/layer_{i}"
        for part in (
            "attention/self/query",
            "attention/self/key",
            "attention/self/value",
            "attention/output/dense",
        ):
            shapes += [(f"{p}/{part}/kernel", (hidden, hidden)), (f"{p}/{part}/bias", (hidden,))]
        shapes += [
            (f"{p}/attention/output/LayerNorm/gamma", (hidden,)),
            (f"{p}/attention/output/LayerNorm/beta", (hidden,)),
            (f"{p}/intermediate/dense/kernel", (hidden, intermediate)),
            (f"{p}/intermediate/dense/bias", (intermediate,)),
            (f"{p}/output/dense/kernel", (intermediate, hidden)),
            (f"{p}/output/dense/bias", (hidden,)),
            (f"{p}/output/LayerNorm/gamma", (hidden,)),
            (f"{p}/output/LayerNorm/beta", (hidden,)),
        ]
    shapes += [("pooler/dense/kernel", (hidden, hidden)), ("pooler/dense/bias", (hidden,))]
    return shapes


def tiny_shapes() -> Shapes:
    return bert_shapes(vocab_size=50, hidden=8, layers=1, intermediate=16, max_positions=16)


def _optimizers():
    """(label, family, factory) with matching hyperparameters (BERT/LAMB values)."""
    import keras

    import optimization

    exclude = ["LayerNorm", "layer_norm", "bias"]

    def keras_peer(optimizer_class):
        def make():
            opt = optimizer_class(
                learning_rate=1e-3,
                weight_decay=0.01,
                beta_1=0.9,
                beta_2=0.999,
                epsilon=1e-6,
                global_clipnorm=1.0,
            )
            opt.exclude_from_weight_decay(var_names=exclude)
            return opt

        return make

    return [
        ("keras AdamW", "adamw", keras_peer(keras.optimizers.AdamW)),
        (
            "ours adamw",
            "adamw",
            lambda: optimization.create_optimizer("adamw", 1e-3, weight_decay=0.01, clipnorm=1.0),
        ),
        ("keras Lamb", "lamb", keras_peer(keras.optimizers.Lamb)),
        (
            "ours lamb",
            "lamb",
            lambda: optimization.create_optimizer("lamb", 1e-3, weight_decay=0.01, clipnorm=1.0),
        ),
    ]


def run_benchmark(shapes: Shapes, num_steps: int = 10, warmup_steps: int = 2) -> list[dict]:
    """Times one jit-compiled `apply_gradients` per optimizer; returns table rows."""
    import numpy as np
    import tensorflow as tf

    num_params = int(sum(np.prod(s) for _, s in shapes))
    rng = np.random.default_rng(0)
    grads = [tf.constant(rng.normal(scale=1e-3, size=s).astype(np.float32)) for _, s in shapes]
    rows = []
    baseline = {}
    for label, family, factory in _optimizers():
        # tf.Variable names keep the BERT paths so the exclusion regexes apply.
        variables = [
            tf.Variable(tf.random.normal(s, stddev=0.02, seed=1), name=n) for n, s in shapes
        ]
        opt = factory()
        opt.build(variables)

        @tf.function(jit_compile=True)
        def step(opt=opt, variables=variables):
            opt.apply_gradients(zip(grads, variables))

        for _ in range(warmup_steps):
            step()
        float(tf.reduce_sum(variables[-1]))  # Wait for the device.
        start = time.perf_counter()
        for i in range(num_steps):
            step()
            logging.log_every_n(logging.INFO, "%s: step %d/%d", 5, label, i + 1, num_steps)
        float(tf.reduce_sum(variables[-1]))
        ms = 1000.0 * (time.perf_counter() - start) / num_steps
        baseline.setdefault(family, ms)
        rows.append(
            {
                "optimizer": label,
                "family": family,
                "ms_per_step": ms,
                "ratio_to_keras": ms / baseline[family],
                "num_params": num_params,
                "num_variables": len(shapes),
                "num_steps": num_steps,
            }
        )
        print(f"{label:12s} {ms:9.2f} ms/step  ratio {ms / baseline[family]:.2f}", flush=True)
    return rows


def to_markdown(rows: list[dict]) -> str:
    lines = [
        f"One optimizer step, {rows[0]['num_params']:,} parameters in "
        f"{rows[0]['num_variables']} variables, XLA-compiled, {rows[0]['num_steps']} timed "
        "steps (global-norm clip 1.0, weight decay 0.01, LayerNorm/bias excluded).",
        "",
        "| optimizer | ms/step | ratio to Keras |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {r['optimizer']} | {r['ms_per_step']:.2f} | {r['ratio_to_keras']:.2f} |" for r in rows
    ]
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    options = cli.from_flags(OptimizerStepOptions)
    rows = run_benchmark(bert_shapes(), options.num_steps, options.warmup_steps)
    table = to_markdown(rows)
    print(table)
    if options.output_json:
        write_json_atomic(options.output_json, rows)
    if options.output_markdown:
        write_atomic(options.output_markdown, table)


if __name__ == "__main__":
    cli.define_flags(OptimizerStepOptions, module_name=sys.argv[0])
    app.run(main)
