"""Benchmark: one BERT pretraining step, this project vs KerasHub, and the GEMM peak.

A training step is forward + backward + optimizer update of masked-LM (20
masked positions) + next-sentence prediction at sequence length 128, vocab
30522, with dropout 0.1 as in BERT pretraining.

* project: the real trainer, `bert.training.Trainer` with the `PretrainingTask` on a
  OneDeviceStrategy (XLA-compiled step, `steps_per_loop` steps per host call)
  with `bert.build_pretraining_model` and `optimization.create_optimizer`.
  The timed call is the trainer's own compiled loop function, the one
  `trainer.train()` calls, fed from an in-memory tf.data batch.
* keras_hub: `keras_hub.models.BertBackbone` + `keras_hub.layers.MaskedLMHead`
  (tied to the token embedding) + a Dense(2) next-sentence head, trained with
  `keras.optimizers.AdamW` in a `tf.function(jit_compile=True)` step, driven by
  the same kind of `steps_per_loop` graph loop (its best settings on CPU).

Each implementation runs in its own process (own memory, own thread pools);
the parent interleaves timed rounds A B A B ... so a shared machine's load
hits both alike, and reports medians, the ratio and each process's peak RSS.

Model FLOPs per sequence (S tokens, P masked positions, L layers, hidden H,
intermediate I, vocab V; a multiply-add is 2 FLOPs; backward = 2x forward):

    6 * S * L * (4*H*H + 2*H*I)        encoder projections and feed-forward
  + 6 * L * 2 * S*S*H                  attention scores QK^T and context PV
  + 6 * P * (H*H + H*V)                masked-LM transform and vocabulary matmul
  + 6 * (H*H + 2*H)                    pooler and next-sentence head

Embedding lookups, LayerNorm, softmax, GELU, dropout and the optimizer update
count 0 (this is "model FLOPs", the PaLM MFU convention). Model-FLOP
utilization (MFU) = sequences/s * FLOPs/sequence / the fp32 GEMM peak, which
is measured on the same machine in the same run: the best of tf.matmul on
two [N, N] float32 matrices, with and without XLA.

The project's pretraining model runs its last layer on the R = P + 1 rows the
heads read ([CLS] and the masked positions): keys and values for all S
tokens, queries, attention output and feed-forward for R rows only. Its last
layer then costs 6 * (2*S*H*H + R*(2*H*H + 2*H*I) + 2*R*S*H) instead of
6 * (S*(4*H*H + 2*H*I) + 2*S*S*H). The table's HFU column ("hardware FLOP
utilization") divides these executed FLOPs by the peak; MFU keeps the model
count for both implementations, so MFU ratios equal throughput ratios.

  python -m benchmarks.train_step --configs=mini,base \
      --output_json=/tmp/train_step.json --output_markdown=/tmp/train_step.md
"""

import dataclasses
import json
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time

from absl import app

from benchmarks import common
from data import cli

# name -> (preset, batch size) of the issue: mini L4/H256/A4/I1024, base L12/H768.
CONFIGS = {"mini": ("mini", 32), "base": ("base", 8), "tiny": ("tiny", 4)}
SEQ_LENGTH = 128
NUM_PREDICTIONS = 20
VOCAB_SIZE = 30522


@dataclasses.dataclass
class TrainStepOptions:
    """Options of `python -m benchmarks.train_step`, one flag each."""

    configs: tuple[str, ...] = cli.option(("mini", "base"), f"Model sizes, of {sorted(CONFIGS)}.")
    rounds: int = cli.option(4, "Timed rounds per implementation (interleaved A B A B).")
    steps_per_round: int = cli.option(0, "Steps per timed round (0: about 10 s).")
    steps_per_loop: int = cli.option(0, "Steps per host call (0: steps_per_round).")
    optimizer: str = cli.option("adamw", "Project optimizer: adamw or lamb.")
    gemm_size: int = cli.option(4096, "Matrix size of the GEMM-peak measurement.")
    output_json: str | None = cli.option(None, "Write the results as JSON here.")
    output_markdown: str | None = cli.option(None, "Write the table as markdown here.")


# -----------------------------------------------------------------------------
# FLOPs and peak


def model_flops_per_sequence(
    config,
    seq_length: int = SEQ_LENGTH,
    num_predictions: int = NUM_PREDICTIONS,
    last_layer_rows: int | None = None,
) -> float:
    """Training FLOPs of one sequence (formulas in the module docstring).

    With `last_layer_rows` = R, the FLOPs executed when the last layer runs
    its queries, attention output and feed-forward on R rows only.
    """
    s, p = seq_length, num_predictions
    h, i, n, v = (
        config.hidden_size,
        config.intermediate_size,
        config.num_hidden_layers,
        config.vocab_size,
    )

    def layer(rows):
        projections = 2 * s * h * h + rows * (2 * h * h + 2 * h * i)
        return 6 * (projections + 2 * rows * s * h)

    last = layer(s if last_layer_rows is None else last_layer_rows)
    masked_lm = 6 * p * (h * h + h * v)
    pooler_nsp = 6 * (h * h + 2 * h)
    return float((n - 1) * layer(s) + last + masked_lm + pooler_nsp)


def gemm_peak_flops(size: int = 4096, repeats: int = 10) -> dict[str, float]:
    """Best fp32 FLOP/s of an [N, N] x [N, N] tf.matmul, without and with XLA."""
    import tensorflow as tf

    a = tf.random.normal([size, size], seed=1)
    b = tf.random.normal([size, size], seed=2)
    result = {}
    for name, jit in (("eager_tf", False), ("xla", True)):
        matmul = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)), jit_compile=jit)
        float(matmul(a, b))  # Compile and warm up.
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            float(matmul(a, b))
            best = min(best, time.perf_counter() - start)
        result[name] = 2.0 * size**3 / best
    result["peak"] = max(result.values())
    return result


# -----------------------------------------------------------------------------
# The two implementations (each built inside its worker process)


def benchmark_bert_config(name: str, dropout: float = 0.1):
    import bert

    config = bert.BertConfig.preset(CONFIGS[name][0])
    return dataclasses.replace(
        config,
        vocab_size=VOCAB_SIZE,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )


def random_batch(
    batch_size: int,
    seq_length: int = SEQ_LENGTH,
    num_predictions: int = NUM_PREDICTIONS,
    vocab_size: int = VOCAB_SIZE,
    seed: int = 0,
) -> dict:
    """One pretraining batch of random ids with the input pipeline's features."""
    import numpy as np

    rng = np.random.default_rng(seed)
    b, s, p = batch_size, seq_length, num_predictions
    lengths = rng.integers(s // 2, s + 1, b)
    mask = (np.arange(s)[None, :] < lengths[:, None]).astype(np.int32)
    positions = np.sort(
        np.stack([rng.choice(np.arange(1, n - 1), p, replace=False) for n in lengths]), axis=1
    ).astype(np.int32)
    return {
        "input_ids": (rng.integers(1000, vocab_size, (b, s)) * mask).astype(np.int32),
        "input_mask": mask,
        "segment_ids": ((np.arange(s)[None, :] >= lengths[:, None] // 2) * mask).astype(np.int32),
        "masked_lm_positions": positions,
        "masked_lm_ids": rng.integers(1000, vocab_size, (b, p)).astype(np.int32),
        "masked_lm_weights": np.ones((b, p), np.float32),
        "next_sentence_labels": rng.integers(0, 2, b).astype(np.int32),
    }


class ProjectTrainStep:
    """The project's PretrainingTrainer on one device; `run(n)` times n steps."""

    def __init__(
        self,
        config_name: str,
        batch_size: int,
        steps_per_loop: int,
        optimizer: str = "adamw",
        dropout: float = 0.1,
    ):
        import tensorflow as tf

        import bert
        import optimization
        from bert.tasks import pretraining
        from bert.training import trainer as trainer_lib

        self.config = benchmark_bert_config(config_name, dropout)
        self.batch_size = batch_size
        self._model_dir = tempfile.TemporaryDirectory(prefix="train_step_bench_")
        strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
        with strategy.scope():
            model = bert.build_pretraining_model(self.config)
            schedule = optimization.create_schedule(
                "warmup_poly",
                init_lr=0.0,
                peak_lr=1e-4,
                final_lr=0.0,
                warmup_steps=100,
                total_steps=10**6,
                warmup_power=1,
                decay_power=1,
            )
            opt = optimization.create_optimizer(
                optimizer, schedule, weight_decay=0.01, clipnorm=1.0
            )
        batch = random_batch(batch_size)

        def dataset_fn(ctx):
            size = ctx.get_per_replica_batch_size(batch_size)
            return tf.data.Dataset.from_tensors({k: v[:size] for k, v in batch.items()}).repeat()

        options = trainer_lib.TrainerOptions(
            model_dir=self._model_dir.name,
            num_train_steps=10**9,
            train_batch_size=batch_size,
            steps_per_loop=steps_per_loop,
            save_checkpoints_steps=10**9,
            jit_compile=True,
        )
        self.trainer = trainer_lib.Trainer(
            strategy, model, opt, schedule, pretraining.PretrainingTask(), options
        )
        self.num_params = model.count_params()
        # Exactly what `trainer.train()` runs between two host wake-ups.
        self._iterator = self.trainer.make_iterator(dataset_fn)

    def run(self, num_steps: int) -> float:
        start = time.perf_counter()
        loss = self.trainer.run_steps(self._iterator, num_steps)["loss"]
        seconds = time.perf_counter() - start
        if loss != loss:
            raise FloatingPointError("project loss is NaN")
        return seconds


class KerasHubTrainStep:
    """KerasHub BertBackbone + MaskedLMHead + NSP Dense with Keras AdamW, XLA step."""

    def __init__(
        self,
        config_name: str,
        batch_size: int,
        steps_per_loop: int,
        optimizer: str = "adamw",
        dropout: float = 0.1,
    ):
        del steps_per_loop, optimizer
        import keras
        import keras_hub
        import tensorflow as tf

        config = benchmark_bert_config(config_name, dropout)
        self.batch_size = batch_size
        backbone = keras_hub.models.BertBackbone(
            vocabulary_size=config.vocab_size,
            num_layers=config.num_hidden_layers,
            num_heads=config.num_attention_heads,
            hidden_dim=config.hidden_size,
            intermediate_dim=config.intermediate_size,
            dropout=dropout,
            max_sequence_length=config.max_position_embeddings,
            num_segments=config.type_vocab_size,
        )
        mlm_head = keras_hub.layers.MaskedLMHead(
            vocabulary_size=config.vocab_size,
            token_embedding=backbone.token_embedding,
            intermediate_activation="gelu",
            layer_norm_epsilon=config.layer_norm_eps,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="mlm_head",
        )
        nsp_head = keras.layers.Dense(2, name="nsp_head")
        inputs = dict(backbone.input)
        positions = keras.Input(shape=(None,), dtype="int32", name="mask_positions")
        outputs = backbone(inputs)
        model = keras.Model(
            inputs={**inputs, "mask_positions": positions},
            outputs={
                "mlm_logits": mlm_head(outputs["sequence_output"], mask_positions=positions),
                "nsp_logits": nsp_head(outputs["pooled_output"]),
            },
        )
        opt = keras.optimizers.AdamW(
            learning_rate=1e-4,
            weight_decay=0.01,
            beta_1=0.9,
            beta_2=0.999,
            epsilon=1e-6,
            global_clipnorm=1.0,
        )
        opt.exclude_from_weight_decay(var_names=["LayerNorm", "layer_norm", "bias"])
        opt.build(model.trainable_variables)
        self.num_params = model.count_params()
        mlm_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        nsp_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

        @tf.function(jit_compile=True)
        def train_step(batch):
            features = {
                "token_ids": batch["input_ids"],
                "segment_ids": batch["segment_ids"],
                "padding_mask": batch["input_mask"],
                "mask_positions": batch["masked_lm_positions"],
            }
            with tf.GradientTape() as tape:
                out = model(features, training=True)
                loss = mlm_loss(
                    batch["masked_lm_ids"],
                    out["mlm_logits"],
                    sample_weight=batch["masked_lm_weights"],
                ) + nsp_loss(batch["next_sentence_labels"], out["nsp_logits"])
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        @tf.function
        def train_loop(iterator, num_steps):
            loss = train_step(next(iterator))
            for _ in tf.range(num_steps - 1):
                loss = train_step(next(iterator))
            return loss

        batch = random_batch(batch_size)
        self._iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
        self._train_loop = train_loop

    def run(self, num_steps: int) -> float:
        import tensorflow as tf

        start = time.perf_counter()
        loss = float(self._train_loop(self._iterator, tf.constant(num_steps, tf.int32)))
        seconds = time.perf_counter() - start
        if loss != loss:
            raise FloatingPointError("KerasHub loss is NaN")
        return seconds


IMPLEMENTATIONS = {"project": ProjectTrainStep, "keras_hub": KerasHubTrainStep}


# -----------------------------------------------------------------------------
# Worker processes


def _worker(conn, kind: str, kwargs: dict):
    """Builds one implementation and answers ("run", n) / ("gemm", size) / ("rss",)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        step = IMPLEMENTATIONS[kind](**kwargs)
        conn.send(("ready", step.num_params))
        while True:
            command = conn.recv()
            if command[0] == "run":
                conn.send(("ok", step.run(command[1])))
            elif command[0] == "gemm":
                conn.send(("ok", gemm_peak_flops(command[1])))
            elif command[0] == "rss":
                conn.send(("ok", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))
            else:
                conn.send(("ok", None))
                return
    except Exception as e:  # Report to the parent instead of hanging it.
        import traceback

        conn.send(("error", f"{kind}: {e!r}\n{traceback.format_exc()}"))


class Worker:
    """A spawned process running one implementation; `call(...)` sends a command."""

    def __init__(self, kind: str, **kwargs):
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker, args=(child, kind, kwargs), daemon=True)
        self.process.start()
        self.num_params = self._receive()

    def _receive(self):
        status, value = self.conn.recv()
        if status == "error":
            raise RuntimeError(value)
        return value

    def call(self, *command):
        self.conn.send(command)
        return self._receive()

    def close(self):
        try:
            self.conn.send(("stop",))
            self.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            pass
        self.process.join(timeout=30)


def benchmark_config(
    config_name: str,
    rounds: int = 4,
    steps_per_round: int = 0,
    steps_per_loop: int = 0,
    optimizer: str = "adamw",
    implementations=("project", "keras_hub"),
    gemm_size: int = 4096,
    batch_size: int | None = None,
    log=print,
) -> dict:
    """Interleaved timing of the implementations on one config; returns a result dict."""
    batch_size = batch_size or CONFIGS[config_name][1]
    config = benchmark_bert_config(config_name)
    flops = model_flops_per_sequence(config)
    executed = dict(
        project=model_flops_per_sequence(config, last_layer_rows=NUM_PREDICTIONS + 1),
        keras_hub=flops,
    )
    load_before = os.getloadavg()
    workers = {}
    try:
        for kind in implementations:
            log(f"[{config_name}] building {kind} ...")
            workers[kind] = Worker(
                kind,
                config_name=config_name,
                batch_size=batch_size,
                steps_per_loop=steps_per_loop or steps_per_round or 1,
                optimizer=optimizer,
            )
        # Warm up (compile) and size the rounds to about 10 s of the slowest.
        warm = {kind: w.call("run", 1) for kind, w in workers.items()}
        warm = {kind: w.call("run", 1) for kind, w in workers.items()}
        if not steps_per_round:
            steps_per_round = max(1, min(50, round(10.0 / max(warm.values()))))
        times = {kind: [] for kind in workers}
        for r in range(rounds):
            for kind, w in workers.items():
                seconds = w.call("run", steps_per_round)
                times[kind].append(seconds)
                log(
                    f"[{config_name}] round {r + 1}/{rounds} {kind}: "
                    f"{steps_per_round * batch_size / seconds:.2f} seq/s"
                )
        rss = {kind: w.call("rss") for kind, w in workers.items()}
        params = {kind: w.num_params for kind, w in workers.items()}
        # The GEMM peak, in each worker after its peak RSS was read.
        gemm = {kind: w.call("gemm", gemm_size) for kind, w in workers.items()}
    finally:
        for w in workers.values():
            w.close()
    peak_flops = max(g["peak"] for g in gemm.values())
    results = {}
    for kind, seconds in times.items():
        per_second = [steps_per_round * batch_size / s for s in seconds]
        median = statistics.median(per_second)
        results[kind] = dict(
            sequences_per_second=median,
            all_sequences_per_second=per_second,
            step_seconds=batch_size / median,
            model_tflops_per_second=median * flops / 1e12,
            mfu=median * flops / peak_flops,
            executed_flops_per_sequence=executed[kind],
            hfu=median * executed[kind] / peak_flops,
            peak_rss_bytes=rss[kind],
            num_params=params[kind],
        )
    row = dict(
        config=config_name,
        batch_size=batch_size,
        seq_length=SEQ_LENGTH,
        num_predictions=NUM_PREDICTIONS,
        vocab_size=config.vocab_size,
        layers=config.num_hidden_layers,
        hidden=config.hidden_size,
        heads=config.num_attention_heads,
        intermediate=config.intermediate_size,
        optimizer=optimizer,
        steps_per_round=steps_per_round,
        rounds=rounds,
        model_flops_per_sequence=flops,
        gemm_peak_flops=peak_flops,
        gemm=gemm,
        load_average=dict(before=load_before, after=os.getloadavg()),
        results=results,
    )
    if "project" in results and "keras_hub" in results:
        row["ratio"] = (
            results["project"]["sequences_per_second"]
            / results["keras_hub"]["sequences_per_second"]
        )
    return row


def to_markdown(rows: list[dict]) -> str:
    lines = [
        "| config | batch | implementation | seq/s (median) | step s | model TFLOP/s | "
        "MFU | HFU | peak RSS GB | ratio project/KerasHub |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        for kind, r in row["results"].items():
            ratio = f"{row['ratio']:.2f}x" if kind == "project" and "ratio" in row else ""
            lines.append(
                f"| {row['config']} (L{row['layers']}/H{row['hidden']}) | {row['batch_size']} | "
                f"{kind} | {r['sequences_per_second']:.2f} | {r['step_seconds']:.3f} | "
                f"{r['model_tflops_per_second']:.3f} | {100 * r['mfu']:.1f}% | "
                f"{100 * r['hfu']:.1f}% | "
                f"{r['peak_rss_bytes'] / 2**30:.2f} | {ratio} |"
            )
    lines.append("")
    for row in rows:
        best = {k: max(g[k] for g in row["gemm"].values()) for k in ("xla", "eager_tf")}
        executed = ""
        if "project" in row["results"]:
            gflop = row["results"]["project"]["executed_flops_per_sequence"] / 1e9
            executed = f" ({gflop:.2f} executed by the project)"
        lines.append(
            f"- {row['config']}: {row['model_flops_per_sequence'] / 1e9:.2f} model GFLOP/sequence"
            f"{executed}; "
            f"fp32 GEMM peak {row['gemm_peak_flops'] / 1e9:.0f} GFLOP/s (XLA "
            f"{best['xla'] / 1e9:.0f}, TF {best['eager_tf'] / 1e9:.0f}); "
            f"{row['rounds']} interleaved rounds of {row['steps_per_round']} steps; load average "
            f"{row['load_average']['before'][0]:.1f} before, {row['load_average']['after'][0]:.1f} "
            f"after; optimizer {row['optimizer']} (KerasHub: keras AdamW)."
        )
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    options = cli.from_flags(TrainStepOptions)
    rows = []
    for name in options.configs:
        if name not in CONFIGS:
            raise ValueError(
                f"--configs: unknown config {name!r}; expected some of {sorted(CONFIGS)}"
            )
        rows.append(
            benchmark_config(
                name,
                options.rounds,
                options.steps_per_round,
                options.steps_per_loop,
                options.optimizer,
                gemm_size=options.gemm_size,
            )
        )
    table = to_markdown(rows)
    print(table)
    if options.output_json:
        common.write_atomic(
            options.output_json,
            json.dumps(
                dict(rows=rows, versions=common.versions(), machine=common.machine()), indent=2
            )
            + "\n",
        )
    if options.output_markdown:
        common.write_atomic(options.output_markdown, table)


if __name__ == "__main__":
    cli.define_flags(TrainStepOptions, module_name=sys.argv[0])
    app.run(main)
