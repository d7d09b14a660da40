"""The demo's stages: its options, its data, and the commands a user runs on a TPU pod.

`run_optimizer` runs phase 1, phase 2 and SQuAD fine-tuning for one optimizer, each as its
own command (`python -m bert.run_pretraining ...`, printed before it starts), with the demo
recipe `configs/<model>_<optimizer>.json` scaled by `phase_steps_scale`. The data is the
embedded default (`data.synthetic_dataset`) or real text and SQuAD under `data_dir`; the
vocabulary and records come from `data.corpus_records`.
"""

import dataclasses
import glob
import json
import os
import subprocess
import sys
import time

from data import cli, corpus_records, fileio

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
option = cli.option


@dataclasses.dataclass(frozen=True)
class DemoOptions:
    """The flags of `python -m bert.demo`."""

    output_dir: str = option("out/demo", "Where everything is written.")
    data_dir: str | None = option(
        None,
        "Real data instead of the embedded default: DATA_DIR/text/*.txt and "
        "DATA_DIR/squad/*.json (e.g. ../shared/data).",
    )
    squad_train_file: str | None = option(None, "SQuAD training JSON (or a Hugging Face name).")
    squad_predict_file: str | None = option(None, "SQuAD evaluation JSON (or a Hugging Face name).")
    hf_dataset: tuple[str, ...] = option(
        (),
        "Hugging Face pretraining sources (when online), e.g. "
        "wikimedia/wikipedia:20231101.en; passed to data.create_pretraining_data.",
    )
    optimizer: str = option(
        "lamb", "Pretraining optimizer: a recipe configs/<model>_<optimizer>.json."
    )
    compare: bool = option(False, "Run LAMB and AdamW and print them side by side.")
    model: str = option("tiny", "Model size of the demo recipes.", choices=("tiny", "mini"))
    vocab_size: int = option(2000, "WordPiece vocabulary to learn.")
    dupe_factor: int = option(5, "Duplications of the corpus with different masks.")
    phase_steps_scale: float = option(1.0, "Multiply both phases' steps (quick runs, tests).")
    squad_epochs: float = option(3.0, "Fine-tuning epochs.")
    squad_learning_rate: float = option(3e-4, "Fine-tuning peak learning rate.")
    squad_max_seq_length: int = option(192, "Fine-tuning window length.")
    seed: int = option(0, "Seed of data generation and training.")
    update_readme: str | None = option(
        None,
        "Instead of running the demo: put the table of this report.md (a finished run's, "
        "e.g. out/demo/report.md) into README.md and exit.",
    )


def run(stage: str, args: list) -> float:
    """Runs one stage as its own command (as a user would), streaming its output.

    The child inherits this process's environment, so its start-up is quiet exactly when
    this one's is (`data.tf_startup`).
    """
    cmd = [sys.executable, "-m", *args]
    print(f"\n=== {stage}\n$ {' '.join(cmd[1:])}", flush=True)
    start = time.time()
    proc = subprocess.run(cmd, cwd=REPO)
    if proc.returncode:
        raise RuntimeError(
            f"stage '{stage}' failed with exit code {proc.returncode}: {' '.join(cmd)}"
        )
    return time.time() - start


def prepare_data(options: DemoOptions, out: str) -> dict:
    """Corpus files and SQuAD files: the embedded default, or `options.data_dir`."""
    if options.data_dir:
        text = sorted(glob.glob(os.path.join(options.data_dir, "text", "*.txt")))
        squad_dir = os.path.join(options.data_dir, "squad")
        train = options.squad_train_file or os.path.join(squad_dir, "train-v1.1-subset.json")
        dev = options.squad_predict_file or os.path.join(
            squad_dir, "dev-v1.1-answerable-subset.json"
        )
        if not text and not options.hf_dataset:
            raise FileNotFoundError(f"no pretraining text: {options.data_dir}/text/*.txt is empty")
        return {"text": text, "squad_train": train, "squad_dev": dev}
    from data import synthetic_dataset

    paths = synthetic_dataset.generate_default_dataset(os.path.join(out, "data"), seed=options.seed)
    return {
        "text": [paths["corpus"]],
        "squad_train": options.squad_train_file or paths["squad_train"],
        "squad_dev": options.squad_predict_file or paths["squad_dev"],
    }


def write_experiment(options: DemoOptions, optimizer: str, vocab_file: str, out: str) -> tuple:
    """The demo recipe (configs/<model>_<optimizer>.json) with the learned vocabulary size."""
    from bert.modeling.config import BertConfig
    from bert.training import experiment as experiment_lib

    base = experiment_lib.resolve_config_path(f"{options.model}_{optimizer}")
    with open(base) as f:
        recipe = json.load(f)
    config = BertConfig.preset(options.model)
    config.vocab_size = corpus_records.vocab_size_of(vocab_file)
    config_file = os.path.join(out, f"bert_config_{options.model}.json")
    config.to_json_file(config_file)
    recipe["model"] = config_file
    for phase in recipe["phases"]:
        steps = max(2, int(round(phase["num_train_steps"] * options.phase_steps_scale)))
        phase["num_train_steps"] = steps
        schedule = phase["schedule"] = experiment_lib.shared_schedule_names(phase["schedule"])
        if "total_steps" in schedule:  # Keep the warmup fraction.
            fraction = schedule["warmup_steps"] / schedule["total_steps"]
            schedule["warmup_steps"] = min(steps - 1, max(1, int(round(fraction * steps))))
            schedule["total_steps"] = steps
    path = os.path.join(out, f"experiment_{optimizer}.json")
    fileio.write_json_atomic(path, recipe)
    return path, recipe


def read_jsonl(path: str) -> list:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def run_optimizer(
    options: DemoOptions, optimizer: str, data: dict, vocab_file: str, out: str
) -> dict:
    """Phase 1, phase 2 and SQuAD for one optimizer; returns report rows and logs."""
    run_dir = os.path.join(out, optimizer)
    os.makedirs(run_dir, exist_ok=True)
    experiment, recipe = write_experiment(options, optimizer, vocab_file, run_dir)
    records = corpus_records.create_records(
        data["text"],
        vocab_file,
        out,
        recipe["phases"],
        options.dupe_factor,
        options.seed,
        options.hf_dataset,
    )
    rows, logs = [], {}
    previous = None
    for number, phase in enumerate(recipe["phases"], start=1):
        model_dir = os.path.join(run_dir, phase["name"])
        steps = phase["num_train_steps"]
        args = [
            "bert.run_pretraining",
            f"--experiment={experiment}",
            f"--phase={number}",
            f"--input_file={records[phase['name']]}",
            f"--model_dir={model_dir}",
            f"--steps_per_loop={max(1, min(25, steps // 4))}",
            f"--save_checkpoints_steps={steps}",
            "--max_eval_steps=10",
            f"--seed={options.seed}",
        ]
        if previous:
            args.append(f"--init_checkpoint={previous}")
        seconds = run(f"{optimizer}: pretraining {phase['name']}", args)
        log = read_jsonl(os.path.join(model_dir, "train_log.jsonl"))
        evaluation = _read_json(os.path.join(model_dir, "eval_results.json"))
        logs[phase["name"]] = log
        rows.append(
            {
                "optimizer": optimizer,
                "stage": phase["name"],
                "steps": steps,
                "batch": phase["train_batch_size"],
                "seq_len": phase["max_seq_length"],
                "final_loss": log[-1]["loss"],
                "mlm_accuracy": evaluation["mlm_accuracy"],
                "exact_match": None,
                "f1": None,
                "seconds": seconds,
            }
        )
        previous = model_dir

    squad_dir = os.path.join(run_dir, "squad")
    window = options.squad_max_seq_length
    args = [
        "bert.run_squad",
        f"--init_checkpoint={previous}",
        f"--bert_config_file={recipe['model']}",
        f"--vocab_file={vocab_file}",
        "--do_lower_case=true",
        f"--train_file={data['squad_train']}",
        f"--predict_file={data['squad_dev']}",
        "--do_train",
        "--do_predict",
        f"--output_dir={squad_dir}",
        "--train_batch_size=32",
        "--predict_batch_size=64",
        f"--learning_rate={options.squad_learning_rate}",
        f"--num_train_epochs={options.squad_epochs}",
        "--warmup_proportion=0.1",
        f"--max_seq_length={window}",
        f"--doc_stride={window // 2}",
        "--max_query_length=48",
        f"--seed={options.seed}",
    ]
    seconds = run(f"{optimizer}: SQuAD fine-tuning and evaluation", args)
    squad = _read_json(os.path.join(squad_dir, "eval_results.json"))
    rows.append(
        {
            "optimizer": optimizer,
            "stage": "squad",
            "steps": squad.get("global_step"),
            "batch": 32,
            "seq_len": window,
            "final_loss": squad.get("final_loss"),
            "mlm_accuracy": None,
            "exact_match": squad["exact_match"],
            "f1": squad["f1"],
            "seconds": seconds,
        }
    )
    return {"rows": rows, "logs": logs, "recipe": recipe}
