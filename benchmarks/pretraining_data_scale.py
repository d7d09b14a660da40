r"""Benchmark: pretraining-data creation as the corpus grows, memory and throughput.

The real text of ../shared/data/text (1.85 MB) repeated 1, 10 and 100 times is turned into
records (dupe 5, sequence 128 and 512) by the project (`data.create_pretraining_data`,
--num_workers workers, default memory budget) and, at the smaller scales, by the pipeline
before buckets (every record held in memory, then shuffled: `generate_records` of today, and
the program issue 25 was filed against, commit AS_FILED run from a git work tree), by the
pure-Python baseline of `benchmarks.pretraining_data` (google-research/bert's algorithm and
data flow: every instance held in memory until the final shuffle), and by the Beam pipeline on
the DirectRunner (`data.pretraining_beam`, the text split into 8 files at document
boundaries, 2 worker processes). Each run is its own process; the table gives its wall seconds,
instances/s, and peak RSS (the process's own and its largest worker's, from getrusage).
With --repeats, the project and the in-memory paths run that many times, interleaved, at
the baseline scales (the median is given: this machine's speed varies by tens of percent).

  python -m benchmarks.pretraining_data_scale --scale=1,10,100 --seq_lengths=128,512 \
      --baseline_scales=1,10 --beam_scales=1,10 --repeats=3
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

from absl import app, flags

from benchmarks import common

FLAGS = flags.FLAGS
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT_DIR = os.path.normpath(os.path.join(REPO, "..", "shared", "data", "text"))


def define_flags():
    flags.DEFINE_list("scale", ["1", "10"], "Times the real text is repeated.")
    flags.DEFINE_list("seq_lengths", ["128"], "max_seq_length of the records.")
    flags.DEFINE_list("baseline_scales", ["1", "10"], "Scales the baseline also runs at.")
    flags.DEFINE_list("beam_scales", [], "Scales the Beam pipeline (DirectRunner) runs at.")
    flags.DEFINE_integer("num_workers", 2, "Workers of the project's runs.")
    flags.DEFINE_integer(
        "repeats",
        1,
        "Runs of the project and the in-memory paths at the baseline scales, interleaved "
        "(the table gives the median; this machine's speed varies from minute to minute).",
    )
    flags.DEFINE_integer("dupe_factor", 5, "dupe_factor of every run.")
    flags.DEFINE_string("vocab_file", None, "WordPiece vocabulary (default: MiniLM's uncased).")
    flags.DEFINE_string("output_dir", os.path.join(REPO, "benchmarks"), "Where the table goes.")


def one_run(kind: str, text: str, vocab: str, out: str, seq: int, dupe: int, workers: int):
    """One run (in a process of its own): statistics, CPU seconds and peak RSS."""
    import resource
    import time

    from data import pretraining_instances

    options = pretraining_instances.InstanceOptions(
        max_seq_length=seq,
        max_predictions_per_seq={128: 20, 512: 80}.get(seq, round(0.15 * seq)),  # BERT's
        dupe_factor=dupe,
    )
    outputs = [f"{out}-{i}" for i in range(4)]
    os.makedirs(os.path.dirname(out), exist_ok=True)
    start = time.perf_counter()
    stages = {}  # the project's seconds per stage (in the JSON: where the time goes)
    if kind == "project":
        from data import pretraining_records, tokenization

        tokenizer = tokenization.FullTokenizer(vocab, do_lower_case=True)
        stats = pretraining_records.create_pretraining_data(
            [text], outputs, tokenizer, options, workers
        )
        instances = stats["instances"]
        stages = {k: stats[k] for k in ("tokenize_seconds", "instances_seconds", "write_seconds")}
    elif kind == "as-filed":  # the program issue 25 was filed against, as a user runs it
        subprocess.run(
            [
                sys.executable,
                "-m",
                "data.create_pretraining_data",
                f"--input_file={text}",
                f"--output_file={','.join(outputs)}",
                f"--vocab_file={vocab}",
                "--do_lower_case",
                f"--max_seq_length={seq}",
                f"--max_predictions_per_seq={options.max_predictions_per_seq}",
                f"--dupe_factor={dupe}",
                f"--num_workers={workers}",
            ],
            cwd=as_filed_tree(os.path.dirname(os.path.dirname(out))),
            check=True,
            capture_output=True,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        )
        instances = None  # counted below, after the clock
    elif kind == "in-memory":  # before buckets: every record held, then shuffled
        from data import corpus_tokenization, pretraining_records, text_corpus, tokenization

        tokenizer = tokenization.FullTokenizer(vocab, do_lower_case=True)
        corpus = corpus_tokenization.tokenize_corpus(text_corpus.read_documents([text]), tokenizer)
        vocabulary = pretraining_records.Vocab.from_tokenizer(tokenizer)
        records = pretraining_records.generate_records(corpus, options, vocabulary, workers)
        pretraining_records.write_records(records, outputs, options.random_seed)
        instances = len(records)
    elif kind == "beam":
        from data import pretraining_beam

        pretraining_beam.run(
            split_text(text, BEAM_FILES),
            out,
            len(outputs),
            dict(vocab_file=vocab, do_lower_case=True),
            options,
            "DirectRunner",
            [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"],
        )
        instances = None  # counted below, after the clock
    else:
        from benchmarks import pretraining_data

        instances = pretraining_data.run_baseline([text], outputs, vocab, options)["instances"]
    seconds = time.perf_counter() - start
    if instances is None:
        import tensorflow as tf

        # Beam names its shards; the as-filed program writes the files it was given.
        shards = (
            outputs
            if kind == "as-filed"
            else [f"{out}-{i:05d}-of-{len(outputs):05d}" for i in range(len(outputs))]
        )
        instances = sum(1 for _ in tf.data.TFRecordDataset(shards))
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "seconds": seconds,
        "instances": instances,
        # The as-filed program is a child process: its peak is the children's (this process
        # only counted its records, after the clock); its own workers are not told apart.
        "peak_rss_mb": (children if kind == "as-filed" else own).ru_maxrss / 1024,
        "worker_peak_rss_mb": None if kind == "as-filed" else children.ru_maxrss / 1024,
        "cpu_seconds": own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime,
        **stages,
    }


AS_FILED = "7314b4b"  # The commit issue 25 was filed against (every record held in memory).
NAMES = {
    "project": "project ({workers} workers)",
    "in-memory": "in memory, before buckets ({workers} workers)",
    "as-filed": f"as filed: commit {AS_FILED}'s program, in memory ({{workers}} workers)",
    "baseline": "pure-Python baseline (1 process)",
    "beam": "Beam, DirectRunner ({workers} processes)",
}
REPEATED = ("project", "in-memory", "as-filed")  # compared side by side: --repeats runs each


def as_filed_tree(directory: str) -> str:
    """A work tree of this repository at AS_FILED in `directory` (made once)."""
    tree = os.path.join(directory, "as_filed")
    if not os.path.exists(tree):
        result = subprocess.run(
            ["git", "-C", REPO, "worktree", "add", "--detach", tree, AS_FILED],
            capture_output=True,
            text=True,
        )
        if result.returncode:
            raise RuntimeError(
                f"The as-filed rows need commit {AS_FILED} of this repository's history "
                f"(a full clone): git worktree add failed: {result.stderr.strip()}"
            )
    return tree


BEAM_FILES = 8  # the Beam pipeline tokenizes one file per element: a corpus of several files


def split_text(path: str, parts: int) -> list[str]:
    """The text file cut at document boundaries into `parts` files of about equal size."""
    with open(path, encoding="utf-8") as f:
        documents = f.read().rstrip("\n").split("\n\n")
    bounds = [round(i * len(documents) / parts) for i in range(parts + 1)]
    paths = []
    for i in range(parts):
        part = f"{path}.part{i}"
        with open(part, "w", encoding="utf-8") as f:
            f.write("\n\n".join(documents[bounds[i] : bounds[i + 1]]) + "\n")
        paths.append(part)
    return paths


def scaled_text(directory: str, scale: int) -> str:
    """The real text repeated `scale` times (documents stay separated by a blank line)."""
    parts = []
    for name in sorted(os.listdir(TEXT_DIR)):
        if name.endswith(".txt"):
            with open(os.path.join(TEXT_DIR, name), encoding="utf-8") as f:
                parts.append(f.read().rstrip("\n") + "\n\n")
    path = os.path.join(directory, f"text_x{scale}.txt")
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(scale):
            f.write("".join(parts))
    return path


def to_markdown(rows: list, config: dict) -> str:
    machine = config["machine"]
    lines = [
        f"# Pretraining data as the corpus grows (dupe {config['dupe_factor']}, "
        f"{config['num_workers']} workers)",
        "",
        f"Machine: {machine.get('cpu', '?')}, {machine['cpu_count']} cores. "
        f"Command: `{config['command']}`.",
        "",
        "| implementation | seq | scale | input MB | wall s | runs s | instances | instances/s "
        "| peak RSS MB | worker peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        # The baseline starts no worker (what getrusage counts there is not one of its own).
        workers = r["worker_peak_rss_mb"]
        workers = "-" if workers is None or "baseline" in r["implementation"] else f"{workers:,.0f}"
        runs = r.get("runs_seconds", [r["seconds"]])
        runs = ", ".join(f"{x:.1f}" for x in runs) if len(runs) > 1 else "-"
        lines.append(
            f"| {r['implementation']} | {r['seq']} | {r['scale']}x | {r['input_mb']:.1f} | "
            f"{r['seconds']:.1f} | {runs} | {r['instances']:,} | "
            f"{r['instances'] / r['seconds']:,.0f} | "
            f"{r['peak_rss_mb']:,.0f} | {workers} |"
        )
    lines += [
        "",
        "Peak RSS is getrusage's ru_maxrss of the run's process and of its largest child process "
        "(the in-memory path's forked workers; the as-filed program's largest process, its "
        "workers included; the project's workers come from a fork server "
        "and may not all be counted; the baseline has none; Beam's are its SDK worker "
        "processes, while its runner process holds the data between stages, as the "
        "DirectRunner does), the highest of its runs. Wall seconds include starting the "
        "workers; with several runs (runs s, interleaved), the median's.",
    ]
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    vocab = FLAGS.vocab_file or os.path.join(common.minilm_model_dir(), "vocab.txt")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for scale in map(int, FLAGS.scale):
            text = scaled_text(work, scale)
            kinds = ["project"] + (
                ["in-memory", "as-filed", "baseline"] if str(scale) in FLAGS.baseline_scales else []
            )
            kinds += ["beam"] if str(scale) in FLAGS.beam_scales else []
            for seq in map(int, FLAGS.seq_lengths):
                runs = {kind: [] for kind in kinds}
                for repeat in range(FLAGS.repeats):
                    for kind in kinds:  # Interleaved: a slow spell of the machine hits all.
                        if repeat and not (
                            kind in REPEATED and str(scale) in FLAGS.baseline_scales
                        ):
                            continue
                        out = os.path.join(work, f"{kind}_{scale}_{seq}_{repeat}", "train")
                        result = common.run_isolated(
                            "benchmarks.pretraining_data_scale",
                            "one_run",
                            kind=kind,
                            text=text,
                            vocab=vocab,
                            out=out,
                            seq=seq,
                            dupe=FLAGS.dupe_factor,
                            workers=FLAGS.num_workers,
                        )
                        shutil.rmtree(os.path.dirname(out))
                        runs[kind].append(result)
                        print(kind, json.dumps(result), flush=True)
                for kind in kinds:
                    rows.append(
                        dict(
                            # The median run by wall time, the highest peak RSS of all.
                            sorted(runs[kind], key=lambda r: r["seconds"])[len(runs[kind]) // 2],
                            peak_rss_mb=max(r["peak_rss_mb"] for r in runs[kind]),
                            runs_seconds=[r["seconds"] for r in runs[kind]],
                            implementation=NAMES[kind].format(workers=FLAGS.num_workers),
                            seq=seq,
                            scale=scale,
                            input_mb=os.path.getsize(text) / 1e6,
                        )
                    )
            os.remove(text)
        tree = os.path.join(work, "as_filed")  # as_filed_tree's, if a run made it
        if os.path.exists(tree):
            subprocess.run(["git", "-C", REPO, "worktree", "remove", "--force", tree], check=True)
    config = {
        "dupe_factor": FLAGS.dupe_factor,
        "num_workers": FLAGS.num_workers,
        "machine": common.machine(),
        "versions": common.versions(),
        "command": "python -m benchmarks.pretraining_data_scale "
        f"--scale={','.join(FLAGS.scale)} --seq_lengths={','.join(FLAGS.seq_lengths)} "
        f"--baseline_scales={','.join(FLAGS.baseline_scales)}"
        + (f" --beam_scales={','.join(FLAGS.beam_scales)}" if FLAGS.beam_scales else "")
        + (f" --repeats={FLAGS.repeats}" if FLAGS.repeats > 1 else ""),
    }
    common.write_results(
        {"config": config, "rows": rows},
        to_markdown(rows, config),
        os.path.join(FLAGS.output_dir, "pretraining_data_scale.json"),
        os.path.join(FLAGS.output_dir, "pretraining_data_scale.md"),
    )


if __name__ == "__main__":
    define_flags()
    app.run(main)
