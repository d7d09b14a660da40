"""Where a training step's time goes: stage ablations and an XLA op profile.

Two views of the project's XLA-compiled BERT pretraining step (the
`benchmarks.train_step` setup: MLM over 20 positions + NSP, seq 128, vocab
30522, dropout 0.1, AdamW):

1. Stages, timed in one process in interleaved rounds (medians), each one
   XLA-compiled on its own: encoder forward; forward + losses; forward +
   backward (every gradient consumed, so none is pruned); the full step
   (+ optimizer update); and the trainer's own loop with 1 and with N steps per
   host call (host/loop overhead).
2. XLA ops: a TensorFlow profile of N steps with XLA's per-thunk trace events,
   each thunk mapped through the optimized HLO's op metadata to a part of the
   model (vocabulary projection, attention matmuls, other matmuls, LayerNorm,
   softmax, dropout, GELU, losses, optimizer, embeddings...). Matmul thunks
   may run while another thunk runs, so shares are of summed thunk time, not
   exactly of wall time.

  python -m benchmarks.step_profile --config=mini --output_markdown=/tmp/profile.md
"""

import collections
import dataclasses
import functools
import glob
import os
import re
import statistics
import sys
import tempfile
import time

from absl import app

from data import cli

# (category, regex on the HLO op_name / instruction name), first match wins.
CATEGORIES = (
    ("vocabulary projection (matmuls)", r"mlm_head(_\d+)?/MatMul"),
    ("attention matmuls", r" dot\(.*lhs_batch_dims"),  # the only batched dots
    ("other matmuls", r" dot\("),
    ("MLM/NSP losses and accuracy", r"SparseSoftmaxCrossEntropy|Equal"),
    # XLA's tiled partial reductions carry no op metadata: bias and LayerNorm
    # parameter gradients, gradient norms, row maxima and sums of the logits.
    ("reductions (gradient sums, norms, row max)", r"reduce-window"),
    ("LayerNorm", r"layer_norm"),
    ("attention softmax", r"Softmax"),
    ("dropout", r"dropout|BitwiseXor|RightShift"),
    ("GELU", r"Gelu|Erf"),
    ("optimizer update and clipping", r"adamw|lamb|AssignVariable|AssignAdd|Sqrt|Square"),
    ("embeddings (lookup, scatter)", r"embeddings|UnsortedSegmentSum|scatter|gather"),
)


@dataclasses.dataclass
class StepProfileOptions:
    """Options of `python -m benchmarks.step_profile`, one flag each."""

    config: str = cli.option("mini", "Model size: mini, base or tiny.")
    batch_size: int = cli.option(0, "Batch size (0: the train_step benchmark's).")
    rounds: int = cli.option(5, "Interleaved timed rounds of the stage ablation.")
    steps: int = cli.option(5, "Steps per round, and per host call of the loop rows.")
    xla_profile: bool = cli.option(True, "Also profile the XLA ops.")
    output_markdown: str | None = cli.option(None, "Write the tables as markdown here.")


def _enable_xla_trace(dump_dir: str):
    """XLA flags for per-thunk trace events and an HLO dump (before TF starts XLA)."""
    extra = f"--xla_cpu_enable_xprof_traceme=true --xla_dump_to={dump_dir} --xla_dump_hlo_as_text"
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + extra).strip()


def _stage_functions(step):
    """name -> zero-argument XLA-compiled function, for a `train_step.ProjectTrainStep`."""
    import tensorflow as tf

    from benchmarks.train_step import random_batch
    from bert.tasks import pretraining

    trainer, model = step.trainer, step.trainer.model

    def forward(batch):
        weight = tf.reduce_sum(batch["masked_lm_weights"])
        outputs = model(pretraining.model_inputs(batch), training=True)
        return pretraining.pretraining_losses(outputs, batch, weight, step.batch_size)["loss"]

    def encoder(batch):
        # The encoder work of the trainer's step: the last layer on the read rows only.
        outputs = model.encoder.encode(
            batch, output_positions=batch["masked_lm_positions"], training=True
        )
        return tf.reduce_sum(outputs["sequence_output"]) + tf.reduce_sum(outputs["pooled_output"])

    def backward(batch):
        with tf.GradientTape() as tape:
            loss = forward(batch)
        grads = tape.gradient(loss, model.trainable_variables)
        # Every gradient feeds the result, so XLA prunes none of them.
        return loss + tf.add_n([tf.reduce_sum(tf.convert_to_tensor(g)) for g in grads])

    def full(batch):
        return trainer.train_step(batch)["loss"]

    # The batch is an argument, as in the trainer: a constant one would let XLA
    # fold the attention mask and the gather indices.
    batch = {k: tf.constant(v) for k, v in random_batch(step.batch_size).items()}
    stages = {
        "encoder forward": encoder,
        "forward + losses": forward,
        "forward + backward": backward,
        "full step (+ optimizer)": full,
    }
    return {
        name: functools.partial(tf.function(fn, jit_compile=True), batch)
        for name, fn in stages.items()
    }


def stage_ablation(step, rounds: int, steps: int) -> list[dict]:
    """Median seconds per step of each stage and of the trainer loop, interleaved."""
    functions = _stage_functions(step)
    loop_steps = {"trainer loop, 1 step per host call": 1, f"trainer loop, {steps} per call": steps}

    def run(name):
        if name in loop_steps:
            per_call = loop_steps[name]
            return sum(step.run(per_call) for _ in range(steps // per_call)) / steps
        start = time.perf_counter()
        for _ in range(steps):
            out = functions[name]()
        float(out)
        return (time.perf_counter() - start) / steps

    names = list(functions) + list(loop_steps)
    for name in names:  # Compile and warm up.
        run(name)
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            times[name].append(run(name))
    return [dict(stage=name, seconds=statistics.median(times[name])) for name in names]


def _hlo_metadata(dump_dir: str) -> dict[str, str]:
    """Instruction name -> 'op_type op_name instruction text' of the trainer's step module.

    Instruction names are per module, so they must come from the module that was
    profiled: the trainer's compiled step (the stage functions compile too).
    """
    from bert.training.trainer import Trainer

    pattern = f"*{Trainer.STEP_FUNCTION_NAME}*cpu_after_optimizations.txt"
    files = glob.glob(os.path.join(dump_dir, pattern))
    if not files:
        raise FileNotFoundError(f"{dump_dir}: no optimized HLO of the trainer's step")
    with open(max(files, key=os.path.getsize)) as f:
        text = f.read()
    info = {}
    for line in text.splitlines():
        match = re.match(r"\s+(?:ROOT )?%(\S+) = ", line)
        if match:
            meta = re.search(r'op_type="([^"]*)" op_name="([^"]*)"', line)
            info[match.group(1)] = (f"{meta.group(1)} {meta.group(2)} " if meta else "") + line[
                :300
            ]
    return info


def categorize(text: str) -> str:
    for name, pattern in CATEGORIES:
        if re.search(pattern, text):
            return name
    return "other elementwise and copies"


def xla_op_profile(step, steps: int) -> list[dict]:
    """Summed XLA thunk milliseconds per step, by model part."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    dump_dir = os.environ["XLA_FLAGS"].split("--xla_dump_to=")[1].split()[0]
    step.run(steps)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        step.run(steps)
        tf.profiler.experimental.stop()
        paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
        space = xplane_pb2.XSpace()
        with open(paths[0], "rb") as f:
            space.ParseFromString(f.read())
    events = (
        (plane.event_metadata[event.metadata_id].name, event.duration_ps)
        for plane in space.planes
        for line in plane.lines
        for event in line.events
    )
    return parts_per_step(events, _hlo_metadata(dump_dir), steps)


def parts_per_step(events, info: dict[str, str], steps: int) -> list[dict]:
    """Milliseconds per step and share of each model part, largest first, from profiler
    events (name, duration in picoseconds) over `steps` steps; only the events named in
    `info` (instruction -> HLO text, see `_hlo_metadata`) are XLA thunks and count."""
    totals = collections.Counter()
    for name, duration_ps in events:
        if name in info:
            totals[categorize(info[name])] += duration_ps / 1e9 / steps
    total = sum(totals.values())
    return [dict(part=part, ms_per_step=ms, share=ms / total) for part, ms in totals.most_common()]


def profile(
    config: str = "mini",
    batch_size: int = 0,
    rounds: int = 5,
    steps: int = 5,
    xla_profile: bool = True,
) -> dict:
    """Both views for one config; run in a fresh process when xla_profile is on."""
    dump = tempfile.TemporaryDirectory(prefix="step_profile_hlo_") if xla_profile else None
    if dump:
        _enable_xla_trace(dump.name)
    from benchmarks import train_step

    batch_size = batch_size or train_step.CONFIGS[config][1]
    step = train_step.ProjectTrainStep(config, batch_size, steps_per_loop=steps)
    result = dict(config=config, batch_size=batch_size, stages=stage_ablation(step, rounds, steps))
    if dump:
        result["xla_ops"] = xla_op_profile(step, steps)
        dump.cleanup()
    return result


def to_markdown(result: dict) -> str:
    lines = [
        f"### Where the step time goes ({result['config']}, batch {result['batch_size']})",
        "",
        "| stage (each XLA-compiled alone) | ms/step |",
        "| --- | ---: |",
    ]
    lines += [f"| {r['stage']} | {r['seconds'] * 1e3:.1f} |" for r in result["stages"]]
    if "xla_ops" in result:
        lines += [
            "",
            "| part of the model (XLA thunks) | ms/step | share |",
            "| --- | ---: | ---: |",
        ]
        lines += [
            f"| {r['part']} | {r['ms_per_step']:.1f} | {100 * r['share']:.1f}% |"
            for r in result["xla_ops"]
        ]
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    from benchmarks import common

    options = cli.from_flags(StepProfileOptions)
    # A fresh process: the XLA trace flags must be set before XLA starts.
    result = common.run_isolated(
        "benchmarks.step_profile",
        "profile",
        config=options.config,
        batch_size=options.batch_size,
        rounds=options.rounds,
        steps=options.steps,
        xla_profile=options.xla_profile,
    )
    text = to_markdown(result)
    print(text)
    if options.output_markdown:
        common.write_atomic(options.output_markdown, text)


if __name__ == "__main__":
    cli.define_flags(StepProfileOptions, module_name=sys.argv[0])
    app.run(main)
