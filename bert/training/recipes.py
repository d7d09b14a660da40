"""The untuned LAMB batch sweep of You et al.'s Table 4 as experiment configs.

`python -m bert.recipes` (`write_table4_configs`) writes configs/lamb_table4/b512.json ...
b32k.json. The files are committed, so `--experiment=lamb_table4/b4k` works without this step;
tests/test_configs.py checks that they are what this module builds.
"""

import json
import os

import optimization
from bert.training.experiment import CONFIG_DIR
from data import fileio

TABLE4_DIR = "lamb_table4"
TABLE4_BATCHES = (512, 1024, 2048, 4096, 8192, 16384, 32768)
# Fixed epochs: 15,625 updates at batch 32,768 (Table 1), so 15,625 * 32,768 / B at batch B.
EPOCH_SAMPLES = 15625 * 32768
# Table 4's warmup (ratio x steps) is 3,125 steps at every batch; phase 2 likewise re-warms
# up over lamb_32k's 781 steps at every batch.
PHASE2_WARMUP_STEPS = 781

_PAPER = "papers/003_9517fb6331474ddb.txt"
SOURCES = [
    (
        "You et al., Large Batch Optimization for Deep Learning: Training BERT in 76 minutes "
        f"(arXiv:1904.00962), {_PAPER}:222-226 (Table 4, untuned LAMB, fixed epochs): batch 512 "
        "... 32K, learning rate 5/(2^x x 10^3) for x = 3.0, 2.5, ..., 0.0, warmup ratio 1/320 "
        "... 1/5 of the run's steps (0.2 x 15,625 = 3,125 at 32K); built with "
        "optimization.lamb_scaling."
    ),
    (
        f"Steps per batch: {_PAPER}:186-192 (Table 1: 1000k at 512 ... 15625 at 32K); the first "
        f"9/10 of the epochs at sequence 128, the last 1/10 at 512 ({_PAPER}:176, :182); "
        f"14,063 + 1,562 at 32K ({_PAPER}:174)."
    ),
    (
        f"Optimizer as lamb_32k: b1 0.9, b2 0.999 ({_PAPER}:168), eps 1e-6, weight decay 0.01 "
        f"({_PAPER}:491), r = m/(sqrt(v) + eps) (epsilon_inside_sqrt false, see lamb_32k), bias "
        "correction on; schedule as lamb_32k: google-research/bert's linear warmup then decay "
        f"power 1 from step 0 ({_PAPER}:168)."
    ),
    (
        "Assumed where the paper is silent: phase 2 is the last steps // 10 steps (the paper's "
        "14,063 + 1,562 at 32K); Table 4's one rate per batch in both phases; its warmup in "
        "phase 1; phase 2 re-warms up over 781 steps at every batch, lamb_32k's (Nado et al. "
        "Table 7, papers/001_ed7a99c70c109f5e.txt:1363), kept in steps as Table 4's warmup is; "
        "LayerNorm/bias excluded from decay and global-norm clipping 1.0 as BERT."
    ),
]


def table4_name(batch: int) -> str:
    """b512, b1k, ..., b32k: the file name (without .json) in configs/lamb_table4/."""
    return f"b{batch // 1024}k" if batch >= 1024 else f"b{batch}"


def _phase(name, batch, seq_length, predictions, steps, lr, warmup):
    return {
        "name": name,
        "train_batch_size": batch,
        "max_seq_length": seq_length,
        "max_predictions_per_seq": predictions,
        "num_train_steps": steps,
        "optimizer": {
            "name": "lamb",
            "beta_1": 0.9,
            "beta_2": 0.999,
            "epsilon": 1e-06,
            "epsilon_inside_sqrt": False,
            "weight_decay": 0.01,
            "exclude_from_weight_decay": ["LayerNorm", "layer_norm", "bias"],
            "bias_correction": True,
            "clipnorm": 1.0,
        },
        "schedule": {
            "kind": "original_bert",
            "peak_lr": lr,
            "total_steps": steps,
            "warmup_steps": warmup,
            "power": 1.0,
        },
    }


def table4_config(batch: int) -> dict:
    """The Table 4 run at `batch`, in both phases, as an experiment dict."""
    lr, warmup_ratio = optimization.lamb_scaling(batch)
    steps = EPOCH_SAMPLES // batch
    # The last 1/10 of the epochs at length 512 (Table 1); rounds to 14,063 + 1,562 at 32K.
    phase2 = steps // 10
    phase1 = steps - phase2
    warmup = round(warmup_ratio * steps)
    return {
        "description": (
            f"Untuned LAMB (You et al., Table 4), BERT-Large, batch {batch:,} in both phases: "
            f"lr {lr:.6g}, {phase1:,} + {phase2:,} steps, warmup 1/{round(1 / warmup_ratio)} "
            f"of all {steps:,} = {warmup:,} then re-warmup {PHASE2_WARMUP_STEPS}."
        ),
        "sources": list(SOURCES),
        "model": "large",
        "phases": [
            _phase("phase1", batch, 128, 20, phase1, lr, warmup),
            _phase("phase2", batch, 512, 80, phase2, lr, PHASE2_WARMUP_STEPS),
        ],
    }


def table4_configs() -> dict:
    """{path relative to configs/: experiment dict} for every batch of Table 4."""
    return {
        os.path.join(TABLE4_DIR, table4_name(b) + ".json"): table4_config(b) for b in TABLE4_BATCHES
    }


def to_json(config: dict) -> str:
    return json.dumps(config, indent=2) + "\n"


def write_table4_configs() -> list:
    """Writes the Table 4 sweep under configs/; returns the paths written."""
    paths = []
    for relative, config in table4_configs().items():
        path = os.path.join(CONFIG_DIR, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fileio.write_atomic(path, to_json(config))
        paths.append(path)
    return paths
