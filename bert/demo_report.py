"""The demo's report: its table, plots, and the README section regenerated from a run.

`report.md` of a run is the source of the README's demo numbers: it says which command ran,
when, on which machine and how long it took, then gives the table. `update_readme` copies
it into README.md between two markers (the first time, in place of the hand-typed section
that starts with README_LEAD), so the README's numbers always come from a named run.
"""

import datetime
import json
import os
import platform
import random
import re

from data import fileio, plotting, squad_metric

BEGIN = "<!-- demo-report: from a run's report.md, by `python -m bert.demo --update_readme` -->"
END = "<!-- /demo-report -->"
README_LEAD = "The main job, `bash scripts/demo.sh`"  # The hand-typed section it replaces.


def format_table(rows: list) -> str:
    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    header = (
        "| optimizer | stage | steps | batch | seq len | final loss | MLM acc | EM | F1 | "
        "wall s |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [header]
    for r in rows:
        lines.append(
            f"| {r['optimizer']} | {r['stage']} | {fmt(r['steps'], 'd')} | {r['batch']} | "
            f"{r['seq_len']} | {fmt(r['final_loss'], '.3f')} | "
            f"{fmt(r['mlm_accuracy'], '.3f')} | {fmt(r['exact_match'], '.1f')} | "
            f"{fmt(r['f1'], '.1f')} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines)


def machine() -> str:
    """This machine in a few words: CPU model, cores, OS and the load at the time."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = re.findall(r"^model name\s*:\s*(.+)$", f.read(), re.M)
        cpu = names[0].strip() if names else cpu
    except OSError:
        pass
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return f"{os.cpu_count()} CPU cores ({cpu}), {platform.system()}{load}"


def trivial_baselines(dev_file: str) -> tuple:
    """F1 of random short spans and of the first sentence of each paragraph (seeded)."""
    with open(dev_file) as f:
        dataset = json.load(f)["data"]
    rng = random.Random(0)
    random_spans, first_sentence = {}, {}
    for article in dataset:
        for paragraph in article["paragraphs"]:
            words = paragraph["context"].split()
            for qa in paragraph["qas"]:
                n = rng.randint(1, 3)
                start = rng.randrange(0, max(1, len(words) - n))
                random_spans[qa["id"]] = " ".join(words[start : start + n])
                first_sentence[qa["id"]] = paragraph["context"].split(". ")[0]
    return (
        squad_metric.evaluate(dataset, random_spans)["f1"],
        squad_metric.evaluate(dataset, first_sentence)["f1"],
    )


def report_markdown(
    rows: list, command: str, description: str, seconds: float, dev_file: str | None = None
) -> str:
    """report.md: what ran, when and where, the table, and the dev set's trivial baselines."""
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    lines = [
        f"The main job, `{command}` ({description}), run on {date} on {machine()}: "
        f"{seconds / 60:.1f} min wall.",
        "",
        format_table(rows),
    ]
    if dev_file and os.path.exists(dev_file):
        random_f1, first_f1 = trivial_baselines(dev_file)
        lines += [
            "",
            f"On the dev questions, random short spans score F1 {random_f1:.1f} and the first "
            f"sentence of the paragraph F1 {first_f1:.1f}.",
        ]
    return "\n".join(lines) + "\n"


def plot(results: dict, out: str) -> list:
    """Training loss per phase, and the learning rate over both phases (original vs corrected)."""
    import numpy as np

    from optimization.schedule_plots import counterparts, schedule_values

    plt = plotting.pyplot()
    paths = [os.path.join(out, "training_loss.png"), os.path.join(out, "learning_rate.png")]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), squeeze=False)
    for optimizer, result in results.items():
        for ax, (phase, log) in zip(axes[0], result["logs"].items()):
            ax.plot([e["step"] for e in log], [e["loss"] for e in log], marker=".", label=optimizer)
            ax.set_title(f"{phase}: training loss (masked-LM + next-sentence)")
            ax.set_xlabel("update step")
            ax.set_ylabel("loss")
            ax.grid(alpha=0.3)
            ax.legend()
    plotting.save_png(fig, paths[0], dpi=100)

    fig, ax = plt.subplots(figsize=(12, 4))
    for optimizer, result in results.items():
        start = 0
        for phase in result["recipe"]["phases"]:
            steps = phase["num_train_steps"]
            x = start + np.arange(steps + 1)
            for (label, schedule), style in zip(counterparts(phase["schedule"]), ["-", "--"]):
                y = schedule_values(schedule, steps)
                ax.plot(x, y, style, label=f"{optimizer} {phase['name']}: {label}")
            logged = result["logs"].get(phase["name"], [])
            ax.plot(
                [start + e["step"] - 1 for e in logged],
                [e["learning_rate"] for e in logged],
                "k.",
                markersize=4,
            )
            start += steps
            ax.axvline(start, color="gray", linewidth=0.8, linestyle=":")
    ax.set_title("learning rate over both phases (dots: logged by the trainer; phase 2 re-warms)")
    ax.set_xlabel("global update step")
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    plotting.save_png(fig, paths[1], dpi=100)
    return paths


def update_readme(report_file: str, readme_file: str) -> None:
    """Puts `report_file` (a run's report.md) into `readme_file` between BEGIN and END.

    Without the markers yet, the hand-typed section is replaced: the paragraph starting with
    README_LEAD and the table after it.
    """
    with open(report_file, encoding="utf-8") as f:
        report = f.read().strip()
    if not report.startswith("The main job,") or "\n| optimizer | stage |" not in report:
        raise ValueError(f"{report_file}: not a demo report.md (no run line and table)")
    with open(readme_file, encoding="utf-8") as f:
        readme = f.read()
    section = f"{BEGIN}\n{report}\n{END}"
    if BEGIN in readme and END in readme:
        start, end = readme.index(BEGIN), readme.index(END) + len(END)
    elif README_LEAD in readme:
        start = readme.index(README_LEAD)
        table = readme.index("\n| optimizer | stage |", start)
        end = table + 1
        lines = readme[end:].split("\n")
        end += sum(len(line) + 1 for line in _leading_table_lines(lines)) - 1
    else:
        raise ValueError(
            f"{readme_file}: found neither the {BEGIN!r} markers nor a paragraph starting "
            f"with {README_LEAD!r} to replace"
        )
    fileio.write_atomic(readme_file, readme[:start] + section + readme[end:])


def _leading_table_lines(lines: list) -> list:
    table = []
    for line in lines:
        if not line.startswith("|"):
            break
        table.append(line)
    return table
