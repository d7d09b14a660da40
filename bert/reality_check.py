r"""The batch-size scaling study: steps to a target for LAMB and AdamW, each tuned alike.

For each batch size and each optimizer it runs one quasi-random search (a cell; the same
points for every batch of one optimizer). Every batch gets a step budget (not a share of a
fixed example budget, which would demand perfect scaling) and log-spaced evaluations; after
the study, targets are read from the stored curves and each cell reports the steps its best
trial needed, with bootstrap and sub-study intervals, seed repeats, censoring, the gradient
noise scale, and a fit of S(B) = S_min (1 + B_crit / B) per optimizer.

  python -m bert.reality_check --preset=cpu --data_dir=../shared/data   # real text, 2 cores
  python -m bert.reality_check --preset=tpu --dry_run                    # the plan and its cost
  python -m bert.reality_check --preset=tpu --input_file='gs://b/seq128/*' \
      --output_dir=gs://b/reality --storage=postgresql://... --strategy=tpu --tpu=my-tpu

A preset is a JSON file in configs/reality_check/; flags override its fields. --workers
starts that many processes on this machine that share every cell's trials; processes started
by hand with the same flags and a shared --storage do the same across machines. Outputs in
output_dir: reality_check.{json,md,png} and one search directory per cell
(<optimizer>_b<batch>/). `--update_readme=README.md` copies a finished study's summary into
the README (between its reality-check markers).

The library is `bert.studies.scaling`.
"""

import os
import sys

import tensorflow as tf
from absl import app

from bert.studies import scaling, scaling_report
from bert.studies.scaling import RealityCheckOptions  # noqa: F401 (the program's flags)
from bert.training import options as opts


def main(argv):
    del argv
    options = opts.from_flags(RealityCheckOptions)
    if options.update_readme:
        scaling_report.update_readme(options.output_dir, options.update_readme)
        print(f"{options.update_readme}: scaling study from {options.output_dir}")
        return
    opts.set_threads(options.threads)  # before the embedded data's TensorFlow ops
    tf.io.gfile.makedirs(options.output_dir)
    command = " ".join(["python -m bert.reality_check", *sys.argv[1:]])
    rows = opts.exit_if_preempted(
        lambda: scaling.run(options, command), "rerun the same command to resume"
    )
    if rows:
        with tf.io.gfile.GFile(os.path.join(options.output_dir, "reality_check.md")) as f:
            print(f.read())


if __name__ == "__main__":
    opts.define_flags(RealityCheckOptions, module_name=sys.argv[0])
    app.run(main)
