r"""BERT pretraining, one phase per run: masked-LM + next-sentence prediction.

Phase 1 (sequence 128) and phase 2 (sequence 512, started from phase 1's weights with
the learning rate re-warmed from zero) take their batch, length, optimizer and schedule
from an experiment file in configs/; any flag given on the command line overrides it.

  python -m bert.run_pretraining --experiment=lamb_64k_32k --phase=1 \
      --input_file='gs://bucket/data/seq128/*.tfrecord' --model_dir=gs://bucket/lamb/phase1 \
      --strategy=tpu --tpu=my-tpu
  python -m bert.run_pretraining --experiment=lamb_64k_32k --phase=2 \
      --input_file='gs://bucket/data/seq512/*.tfrecord' --model_dir=gs://bucket/lamb/phase2 \
      --init_checkpoint=gs://bucket/lamb/phase1 --strategy=tpu --tpu=my-tpu

A killed job restarted with the same flags resumes from its latest checkpoint.

The options and the driver live in `bert.tasks.pretraining_phase` (`PretrainingOptions`,
`run_phase`, re-exported here for older imports); this module only parses flags and exits.
"""

import json
import sys

from absl import app

from bert.tasks.pretraining_phase import PretrainingOptions, run_phase
from bert.training import options as opts

__all__ = ["PretrainingOptions", "main", "run_phase"]


def main(argv):
    del argv
    results = opts.exit_if_preempted(lambda: run_phase(opts.from_flags(PretrainingOptions)))
    if "eval" in results:
        print(json.dumps(results["eval"]))


if __name__ == "__main__":
    opts.define_flags(PretrainingOptions, module_name=sys.argv[0])
    app.run(main)
