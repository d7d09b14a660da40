r"""Quasi-random hyperparameter search over one pretraining phase (Nado et al.'s protocol).

A search space is a JSON file in configs/search/. The trials are the first `--num_trials`
points of a scrambled Halton (or Sobol) sequence over the space, drawn by Optuna's
QMCSampler. Every trial (model_dir/trials/point_NNNN) is scored by masked-LM accuracy on a
held-out slice of the training data (the first `--heldout_examples` records, never trained
on). Trials of at most `--cell_max_examples` examples share one compiled program per worker
(reset between trials, no checkpoints); larger ones are ordinary `run_pretraining` phases.

  python -m bert.search --search_space=configs/search/nado_adamw.json --num_trials=30 --dry_run
  python -m bert.search --search_space=configs/search/nado_adamw.json --num_trials=30 \
      --experiment=adam_32k --phase=1 --input_file='gs://b/seq128/*' --model_dir=gs://b/search1

The flags are run_pretraining's (each trial is a phase) plus the search's own; --model_dir
is the study's directory and --experiment/--phase default to the search space's. Workers
pointed at one study (`study.db` in model_dir, or a database URL in --storage) share its
trials; a killed worker's trial is requeued (a large trial's rerun resumes from its last
checkpoint).
When every trial has finished the study writes results.{json,csv,md}, results.png and
best_experiment.json (`run_pretraining --experiment=` takes it).

The library is `bert.studies` (`search`, `space`, `report`).
"""

import json
import sys

from absl import app

from bert.studies import search
from bert.studies.search import SearchOptions  # noqa: F401 (the search's own flags)
from bert.studies.space import (  # noqa: F401 (their import path before bert.studies)
    Parameter,
    SearchSpace,
    load_search_space,
    quasi_random_points,
)
from bert.training import options as opts
from data import cli


def main(argv):
    del argv
    pretraining, options = cli.from_flags_all(search.OPTION_CLASSES)
    summary = opts.exit_if_preempted(
        lambda: search.run(pretraining, options),
        "the point is requeued; rerun the same command to resume",
    )
    if summary:
        print(json.dumps({k: v for k, v in summary.items() if k != "trials"}))


if __name__ == "__main__":
    cli.define_flags_all(search.OPTION_CLASSES, module_name=sys.argv[0])
    app.run(main)
