r"""Benchmark: what one trial of a scaling-study cell costs, and how to spend 2 cores on it.

Every variant runs the same search (`python -m bert.search`, the cpu preset's LAMB space and
tiny model, phase 1 at sequence 64, on the real text of ../shared/data or the embedded corpus)
with the same trials, batch and steps, one after the other in this run:

- phase path: every trial a run_pretraining phase (`--cell_max_examples=0`): it builds the
  model, traces and compiles its step, checkpoints and evaluates on its own.
- cell path: the trials of the cell share one compiled program (`bert.studies.cell`).
- 2 workers x 1 thread: the cell path in two processes with `--threads=1` share the study.
- noise scale off / on: the cell path with 2 micro-batches per update
  (`--gradient_accumulation_steps=2`), without and with `--log_gradient_noise_scale`.

The table gives each variant's wall seconds (processes started to last one done), trials
per hour and its ratio to the phase path, and the trials' own compile and step seconds as the
study recorded them.

  python -m benchmarks.trial_cost --trials=4 --batch=16 --steps=512   # -> trial_cost_b16.{json,md}
  python -m benchmarks.trial_cost --trials=4 --batch=128 --steps=256 \
      --variants='cell path,2 workers x 1 thread,noise scale off: 2 micro-batches'
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from absl import app, flags

from benchmarks import common

FLAGS = flags.FLAGS
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))


def define_flags():
    flags.DEFINE_string(
        "data_dir",
        SHARED_DATA if os.path.isdir(SHARED_DATA) else None,
        "Folder with text/*.txt (default: ../shared/data; none: the embedded corpus).",
    )
    flags.DEFINE_integer("trials", 4, "Trials per variant (even: split between 2 workers).")
    flags.DEFINE_integer("batch", 16, "Global batch of every trial.")
    flags.DEFINE_integer("steps", 512, "Steps of every trial.")
    flags.DEFINE_list("variants", list(VARIANTS), "Variants to run, in this order.")
    flags.DEFINE_string("output_dir", os.path.join(REPO, "benchmarks"), "Where the table goes.")


# name -> (processes, extra flags of each process)
VARIANTS = {
    "phase path": (1, ["--cell_max_examples=0"]),
    "cell path": (1, []),
    "2 workers x 1 thread": (2, ["--threads=1"]),
    "noise scale off: 2 micro-batches": (
        1,
        ["--gradient_accumulation_steps=2", "--log_gradient_noise_scale=false"],
    ),
    "noise scale on: 2 micro-batches": (
        1,
        ["--gradient_accumulation_steps=2", "--log_gradient_noise_scale=true"],
    ),
}


def study_inputs(work: str, data_dir: str | None) -> tuple:
    """(records, bert_config) as the cpu preset's study makes them."""
    from bert.studies import scaling

    options = scaling.RealityCheckOptions(output_dir=work, data_dir=data_dir)
    return scaling.study_data(options, scaling.load_preset("cpu"))


def search_command(records: str, config: str, model_dir: str, trials: int, batch: int, steps: int):
    from bert.studies import analysis, scaling

    preset = scaling.load_preset("cpu")
    evals = analysis.log_spaced_steps(steps, preset.evaluations, first=min(steps, 8))
    return [
        sys.executable, "-m", "bert.search",
        f"--search_space={preset.search_spaces['lamb']}",
        f"--experiment={preset.experiments['lamb']}", "--phase=1",
        f"--input_file={records}", f"--bert_config_file={config}", f"--model_dir={model_dir}",
        f"--num_trials={trials}", f"--train_batch_size={batch}", f"--num_train_steps={steps}",
        f"--num_warmup_steps={max(1, round(preset.warmup_fraction * steps))}",
        f"--max_seq_length={preset.max_seq_length}",
        f"--max_predictions_per_seq={preset.max_predictions_per_seq}",
        f"--heldout_examples={preset.heldout_examples}",
        f"--eval_batch_size={preset.eval_batch_size}",
        f"--eval_steps={','.join(map(str, evals))}",
        # The phase path evaluates every N steps instead: about as many evaluations.
        f"--eval_every_steps={max(1, steps // len(evals))}",
        f"--save_checkpoints_steps={steps // 2}", "--keep_checkpoint_max=1",
        "--steps_per_loop=50",
    ]  # fmt: skip


def run_variant(name: str, work: str, inputs: tuple, trials: int, batch: int, steps: int):
    processes, extra = VARIANTS[name]
    model_dir = os.path.join(work, "".join(c if c.isalnum() else "_" for c in name))
    command = search_command(*inputs, model_dir, trials, batch, steps) + extra
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    start = time.perf_counter()
    running = [
        subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for _ in range(processes)
    ]
    for p in running:
        out, _ = p.communicate()
        if p.returncode:
            raise RuntimeError(f"{name}: exit code {p.returncode}\n{out.decode()[-3000:]}")
    wall = time.perf_counter() - start
    with open(os.path.join(model_dir, "results.json")) as f:
        results = json.load(f)["trials"]
    return {
        "variant": name,
        "processes": processes,
        "wall_seconds": wall,
        "trials": len(results),
        "trials_per_hour": 3600 * len(results) / wall,
        "compile_seconds": sum(t.get("compile_seconds") or 0 for t in results),
        "trial_seconds": sum(t.get("seconds") or 0 for t in results),
        "steps_per_second": [t.get("steps_per_second") for t in results],
        "gradient_noise_scale": [t.get("gradient_noise_scale") for t in results],
    }


def cell_seconds(row: dict, trials: int) -> float:
    """Seconds a cell of `trials` trials would take, from the measured trials: the phase path
    compiles in every trial, the cell path once per worker; workers run side by side."""
    compiles = trials / row["trials"] if row["variant"] == "phase path" else 1.0
    steady = (row["trial_seconds"] - row["compile_seconds"]) / row["trials"]
    return (compiles * row["compile_seconds"] + trials * steady) / row["processes"]


def to_markdown(rows: list, config: dict, cell_trials: int = 12) -> str:
    machine = config["machine"]
    base = next((r for r in rows if r["variant"] == "phase path"), rows[0])
    lines = [
        f"# Cost of a scaling-study trial ({config['trials']} trials of {config['steps']} steps "
        f"at batch {config['batch']}, tiny model, sequence 64, {config['text']})",
        "",
        f"Machine: {machine.get('cpu', '?')}, {machine['cpu_count']} cores. "
        f"Command: `{config['command']}`.",
        "",
        f"| variant | processes | wall s | trials/hour | vs {base['variant']} | compile s (sum) "
        f"| trial s (sum) | steps/s (median) | {cell_trials}-trial cell s | vs {base['variant']} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        rates = sorted(s for s in r["steps_per_second"] if s)
        median = rates[len(rates) // 2] if rates else float("nan")
        cell = cell_seconds(r, cell_trials)
        lines.append(
            f"| {r['variant']} | {r['processes']} | {r['wall_seconds']:.1f} | "
            f"{r['trials_per_hour']:.0f} | {r['trials_per_hour'] / base['trials_per_hour']:.2f}x | "
            f"{r['compile_seconds']:.1f} | {r['trial_seconds']:.1f} | {median:.1f} | "
            f"{cell:.0f} | {cell_seconds(base, cell_trials) / cell:.2f}x |"
        )
    lines += [
        "",
        "Wall seconds include starting the processes, reading the data and writing the study's "
        "report; trial seconds are the trials' own (summed over workers). steps/s of a trial "
        f"counts its evaluations' time too. A {cell_trials}-trial cell (as in the cpu preset) "
        "is projected from the measured trials: the phase path compiles in every trial, the "
        "cell path once per worker, and workers run side by side.",
    ]
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    with tempfile.TemporaryDirectory() as work:
        inputs = study_inputs(work, FLAGS.data_dir)
        rows = [
            run_variant(v, work, inputs, FLAGS.trials, FLAGS.batch, FLAGS.steps)
            for v in FLAGS.variants
        ]
    config = {
        "trials": FLAGS.trials,
        "batch": FLAGS.batch,
        "steps": FLAGS.steps,
        "text": "real text" if FLAGS.data_dir else "embedded corpus",
        "machine": common.machine(),
        "versions": common.versions(),
        "command": "python -m benchmarks.trial_cost "
        + " ".join(f"--{k}={getattr(FLAGS, k)}" for k in ("trials", "batch", "steps")),
    }
    common.write_results(
        {"config": config, "rows": rows},
        to_markdown(rows, config),
        os.path.join(FLAGS.output_dir, f"trial_cost_b{FLAGS.batch}.json"),
        os.path.join(FLAGS.output_dir, f"trial_cost_b{FLAGS.batch}.md"),
    )


if __name__ == "__main__":
    define_flags()
    app.run(main)
