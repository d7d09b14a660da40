r"""Plots learning-rate schedules: the original BERT schedule vs the corrected one.

With --config (an experiment JSON from configs/), for every phase the
schedule of the config is overlaid with its counterpart from the same peak
learning rate, warmup and total steps:
  original_bert in the config -> corrected warmup_poly (warmup to the peak, decay
                                 from the end of warmup, no jump);
  warmup_poly / warmup_cosine -> original_bert (decay counted from step 0, so the
                                 rate drops when warmup ends).
A last panel puts phase 1 and phase 2 (with its re-warmup) on one step axis.

Without --config, one phase from the original BERT flags:
  python -m optimization.plot_schedule --learning_rate=5e-3 --num_train_steps=14063 \
      --num_warmup_steps=3125 --output=/tmp/schedule.png
  python -m optimization.plot_schedule --config=configs/lamb_64k_32k.json \
      --output=/tmp/lamb_64k_32k.png
"""

import dataclasses
import sys

from absl import app

from data import cli
from optimization.schedule_plots import (  # noqa: F401 (re-exported)
    counterparts,
    load_phases,
    plot,
    schedule_values,
)

option = cli.option


@dataclasses.dataclass(frozen=True)
class PlotScheduleOptions:
    """The program's flags."""

    config: str | None = option(None, "Experiment config JSON (configs/*.json).")
    output: str | None = option(None, "Where to write the PNG.")
    learning_rate: float | None = option(None, "Peak learning rate (without --config).")
    num_train_steps: int | None = option(None, "Total steps of the phase (without --config).")
    num_warmup_steps: int | None = option(None, "Warmup steps (without --config).")
    power: float = option(1.0, "Polynomial decay power (without --config).")


def main(argv):
    del argv
    options = cli.from_flags(PlotScheduleOptions)
    if not options.output:
        raise app.UsageError("--output is required")
    if options.config:
        phases, title = load_phases(options.config)
    else:
        if None in (options.learning_rate, options.num_train_steps, options.num_warmup_steps):
            raise app.UsageError(
                "give --config, or --learning_rate, --num_train_steps and --num_warmup_steps"
            )
        phases = [
            {
                "name": "phase",
                "num_train_steps": options.num_train_steps,
                "schedule": {
                    "kind": "original_bert",
                    "peak_lr": options.learning_rate,
                    "total_steps": options.num_train_steps,
                    "warmup_steps": options.num_warmup_steps,
                    "power": options.power,
                },
            }
        ]
        title = ""
    plot(phases, options.output, title)
    print(f"wrote {options.output}")


if __name__ == "__main__":
    cli.define_flags(PlotScheduleOptions, module_name=sys.argv[0])
    app.run(main)
