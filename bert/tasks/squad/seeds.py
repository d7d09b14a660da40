"""The spread of SQuAD fine-tuning over seeds (Nado et al. report mean and spread).

`--seeds=1,2,3` fine-tunes once per seed from the same --init_checkpoint, each run a complete
output_dir/seed_<n>/ (export in export_dir/seed_<n>/), then writes the mean, sample standard
deviation, min and max of EM and F1 per predict file to output_dir/seed_spread.json.
"""

import dataclasses
import os

import numpy as np
from absl import logging

from bert.tasks.squad import fine_tuning
from bert.training import options as opts
from data import fileio


def seed_spread(results_by_seed: dict) -> dict:
    """EM and F1 over seeds per predict file: mean, sample standard deviation (n - 1; 0 for
    one seed), min, max and the values in seed order, as Nado et al. report fine-tuning spread.

    `results_by_seed` is {seed: {file stem: scores}}.
    """
    seeds = list(results_by_seed)
    spread = {}
    for name in results_by_seed[seeds[0]]:
        spread[name] = {}
        for metric in ("exact_match", "f1"):
            values = np.array([results_by_seed[seed][name][metric] for seed in seeds])
            spread[name][metric] = {
                "mean": float(values.mean()),
                "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                "min": float(values.min()),
                "max": float(values.max()),
                "values": values.tolist(),
            }
    return {"seeds": seeds, "predict_files": spread}


def run_seeds(options, hparams: dict, strategy) -> dict:
    """One fine-tuning per --seeds seed, all from the same checkpoint, each a complete
    output_dir/seed_<n>/ (so a killed seed resumes there); writes the spread of their EM/F1
    to output_dir/seed_spread.json and returns it."""
    import keras

    results_by_seed = {}
    for seed in options.seed_list:
        keras.backend.clear_session()  # A fresh model, named as in a run of its own.
        keras.utils.set_random_seed(seed)
        opts.set_mixed_precision(options.mixed_precision)  # clear_session resets the policy.
        export_dir = options.export_dir and os.path.join(options.export_dir, f"seed_{seed}")
        seed_options = dataclasses.replace(
            options,
            seed=seed,
            seeds="",
            output_dir=os.path.join(options.output_dir, f"seed_{seed}"),
            export_dir=export_dir,
        )
        logging.info("Seed %d: fine-tuning in %s", seed, seed_options.output_dir)
        results_by_seed[seed] = fine_tuning.run_one(seed_options, hparams, strategy)
    spread = seed_spread(results_by_seed)
    fileio.write_json_atomic(os.path.join(options.output_dir, "seed_spread.json"), spread)
    for name, metrics in spread["predict_files"].items():
        logging.info(
            "Spread over seeds %s on %s: %s",
            spread["seeds"],
            name,
            ", ".join(
                f"{metric} mean {m['mean']:.2f} std {m['std']:.2f} min {m['min']:.2f} "
                f"max {m['max']:.2f}"
                for metric, m in metrics.items()
            ),
        )
    return spread
