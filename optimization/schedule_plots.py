"""Learning-rate schedules as pictures: a config's schedule beside its original/corrected twin.

`counterparts` pairs a phase's schedule with its counterpart from the same peak learning
rate, warmup and total steps (original BERT <-> corrected warmup_poly); `plot` draws every
phase of an experiment and, for several phases, all of them on one step axis. Used by
`python -m optimization.plot_schedule` and the demo's learning-rate plot.
"""

from data import config_files, plotting


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


def schedule_values(schedule, num_steps):
    """The schedule's learning rate at steps 0..num_steps (a numpy array)."""
    import numpy as np
    import tensorflow as tf

    return np.asarray(schedule(tf.range(num_steps + 1, dtype=tf.int64)))


def plot(phases, output, title=""):
    """phases: list of dicts with name, num_train_steps, schedule (and train_batch_size)."""
    import numpy as np

    plt = plotting.pyplot()

    n = len(phases) + (1 if len(phases) > 1 else 0)
    fig, axes = plt.subplots(n, 1, figsize=(10, 3.2 * n), squeeze=False)
    axes = axes[:, 0]
    for ax, phase in zip(axes, phases):
        steps = phase["num_train_steps"]
        for (label, schedule), style in zip(counterparts(phase["schedule"]), ["-", "--"]):
            ax.plot(np.arange(steps + 1), schedule_values(schedule, steps), style, label=label)
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
                    schedule_values(schedule, steps),
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
    plotting.save_png(fig, output)


def load_phases(path):
    """Phases of an experiment config; ValueError naming the file and field otherwise."""
    config = config_files.read_json(path)
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
