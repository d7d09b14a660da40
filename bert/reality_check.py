r"""The batch-size scaling study: LAMB vs AdamW, each tuned alike at every batch size.

For each batch size and each optimizer it runs one quasi-random search (`bert.search`, the
same number of trials and the same sequence for every cell) at a fixed budget of training
examples, so a batch twice as large gets half the steps, as in both papers. It then reports
per (optimizer, batch): the best held-out masked-LM accuracy, and the fewest steps any trial
needed to reach a target accuracy (from each trial's learning curve).

  python -m bert.reality_check --preset=cpu            # embedded data, tiny model, < 1 h on 2 cores
  python -m bert.reality_check --preset=tpu --input_file='gs://b/seq128/*' \
      --output_dir=gs://b/reality --storage=postgresql://... --strategy=tpu --tpu=my-tpu

A preset is a JSON file in configs/reality_check/ (search spaces, seed experiments, batch
sizes, budget, trials, target); flags override its fields. Several processes started with the
same flags (and a shared --storage) split each cell's trials. Outputs in output_dir:
reality_check.{json,md,png} and one search directory per cell (<optimizer>_b<batch>/).

The library is `bert.studies.scaling`.
"""

import os
import sys

import tensorflow as tf
from absl import app

from bert.studies import scaling
from bert.studies.scaling import RealityCheckOptions  # noqa: F401 (the program's flags)
from bert.training import options as opts


def main(argv):
    del argv
    options = opts.from_flags(RealityCheckOptions)
    opts.set_threads(options.threads)  # before the embedded data's TensorFlow ops
    tf.io.gfile.makedirs(options.output_dir)
    rows = opts.exit_if_preempted(lambda: scaling.run(options), "rerun the same command to resume")
    if rows:
        with tf.io.gfile.GFile(os.path.join(options.output_dir, "reality_check.md")) as f:
            print(f.read())


if __name__ == "__main__":
    opts.define_flags(RealityCheckOptions, module_name=sys.argv[0])
    app.run(main)
