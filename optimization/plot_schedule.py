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

import io
import json

from absl import app, flags

from data.fileio import write_atomic

FLAGS = flags.FLAGS


def define_flags():
    """Command-line flags (defined only when run as a program)."""
    flags.DEFINE_string("config", None, "Experiment config JSON (configs/*.json).")
    flags.DEFINE_string("output", None, "Where to write the PNG.")
    flags.DEFINE_float("learning_rate", None, "Peak learning rate (without --config).")
    flags.DEFINE_integer("num_train_steps", None, "Total steps of the phase (without --config).")
    flags.DEFINE_integer("num_warmup_steps", None, "Warmup steps (without --config).")
    flags.DEFINE_float("power", 1.0, "Polynomial decay power (without --config).")


def counterparts(schedule_config):
    """(label, schedule) pairs: the config's schedule and its original/corrected counterpart."""
    from optimization import schedules

    kwargs = dict(schedule_config)
    kind = kwargs.pop("kind")
    kwargs = schedules.canonical_args(kind, kwargs)
    kwargs.pop("step_offset", None)  # Plots are phase-local.
    own = schedules.create_schedule(kind, **kwargs)
    shared = {k: kwargs[k] for k in ("peak_lr", "warmup_steps", "total_steps") if k in kwargs}
    if kind == "original_bert":
        other = schedules.create_schedule(
            "warmup_poly",
            init_lr=0.0,
            final_lr=0.0,
            warmup_power=1.0,
            decay_power=kwargs.get("power", 1.0),
            **shared,
        )
        return [("original_bert (as given)", own), ("corrected warmup_poly", other)]
    if kind in ("warmup_poly", "warmup_cosine"):
        other = schedules.create_schedule(
            "original_bert", power=kwargs.get("decay_power", 1.0), **shared
        )
        return [(f"{kind} (as given)", own), ("original_bert counterpart", other)]
    return [(f"{kind} (as given)", own)]


def _values(schedule, num_steps):
    import numpy as np
    import tensorflow as tf

    return np.asarray(schedule(tf.range(num_steps + 1, dtype=tf.int64)))


def plot(phases, output, title=""):
    """phases: list of dicts with name, num_train_steps, schedule (and train_batch_size)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    n = len(phases) + (1 if len(phases) > 1 else 0)
    fig, axes = plt.subplots(n, 1, figsize=(10, 3.2 * n), squeeze=False)
    axes = axes[:, 0]
    for ax, phase in zip(axes, phases):
        steps = phase["num_train_steps"]
        for (label, schedule), style in zip(counterparts(phase["schedule"]), ["-", "--"]):
            ax.plot(np.arange(steps + 1), _values(schedule, steps), style, label=label)
        batch = phase.get("train_batch_size")
        ax.set_title(f"{phase['name']}: {steps:,} steps" + (f", batch {batch:,}" if batch else ""))
        ax.set_xlabel("update step (phase-local)")
        ax.set_ylabel("learning rate")
        ax.legend()
        ax.grid(alpha=0.3)
    if len(phases) > 1:
        ax = axes[-1]
        start = 0
        for phase in phases:
            steps = phase["num_train_steps"]
            for (label, schedule), style in zip(counterparts(phase["schedule"]), ["-", "--"]):
                ax.plot(
                    start + np.arange(steps + 1),
                    _values(schedule, steps),
                    style,
                    label=f"{phase['name']}: {label}",
                )
            start += steps
            ax.axvline(start, color="gray", linewidth=0.8, linestyle=":")
        ax.set_title("all phases on one axis (each phase re-warms from its own step 0)")
        ax.set_xlabel("global update step")
        ax.set_ylabel("learning rate")
        ax.legend()
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=110)
    finally:
        plt.close(fig)
    write_atomic(output, buffer.getvalue())


def load_phases(path):
    """Phases of an experiment config; ValueError naming the file and field otherwise."""
    with open(path) as f:
        try:
            config = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
    phases = config.get("phases")
    if not isinstance(phases, list) or not phases:
        raise ValueError(f"{path}: 'phases' must be a non-empty list")
    for i, phase in enumerate(phases):
        for field in ("name", "num_train_steps", "schedule"):
            if field not in phase:
                raise ValueError(f"{path}: phases[{i}] has no '{field}'")
        if "kind" not in phase["schedule"]:
            raise ValueError(f"{path}: phases[{i}].schedule has no 'kind'")
    return phases, config.get("description", "")


def main(argv):
    del argv
    if not FLAGS.output:
        raise app.UsageError("--output is required")
    if FLAGS.config:
        phases, title = load_phases(FLAGS.config)
    else:
        if None in (FLAGS.learning_rate, FLAGS.num_train_steps, FLAGS.num_warmup_steps):
            raise app.UsageError(
                "give --config, or --learning_rate, --num_train_steps and --num_warmup_steps"
            )
        phases = [
            {
                "name": "phase",
                "num_train_steps": FLAGS.num_train_steps,
                "schedule": {
                    "kind": "original_bert",
                    "peak_lr": FLAGS.learning_rate,
                    "total_steps": FLAGS.num_train_steps,
                    "warmup_steps": FLAGS.num_warmup_steps,
                    "power": FLAGS.power,
                },
            }
        ]
        title = ""
    plot(phases, FLAGS.output, title)
    print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
