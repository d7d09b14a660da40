"""Benchmark: pretraining-data creation, parallel vs a pure-Python baseline.

The baseline is a plain single-process, pure-Python implementation of the same
algorithm, written the way google-research/bert `create_pretraining_data.py`
works: a Python BasicTokenizer + greedy WordPiece per sentence, instances and
masks built token by token with `random.Random`, one tf.train.Example per
instance. The project implementation (`data.create_pretraining_data`) runs
with --num_workers processes. Both read the same files and write the same
number of shards; the table reports wall and CPU seconds (this process plus
its worker processes), input MB/s and instances/s, and the wall-clock speedup.

  python -m benchmarks.pretraining_data --vocab_file=.../vocab.txt \
      --input_file='../shared/data/text/*.txt' --num_workers=2 \
      --output_json=/tmp/pretraining_data.json --output_markdown=/tmp/pretraining_data.md
"""

import collections
import dataclasses
import json
import os
import random
import resource
import sys
import tempfile
import time
import unicodedata

from absl import app, flags, logging

from data import cli

_DEFAULT_TEXT = os.path.normpath(
    os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "text", "*.txt")
)


@dataclasses.dataclass
class PretrainingDataOptions:
    """Options of `python -m benchmarks.pretraining_data`, one flag each."""

    input_file: str = cli.option(_DEFAULT_TEXT, "Input text globs.")
    vocab_file: str | None = cli.option(None, "WordPiece vocab (uncased).")  # required
    num_workers: int = cli.option(2, "Workers of the project implementation.")
    dupe_factor: int = cli.option(10, "dupe_factor for both implementations.")
    skip_baseline: bool = cli.option(False, "Only time the project implementation.")
    output_json: str | None = cli.option(None, "Write the rows as JSON here.")
    output_markdown: str | None = cli.option(None, "Write the table as markdown here.")


# -----------------------------------------------------------------------------
# Pure-Python baseline.
# -----------------------------------------------------------------------------


def _is_punctuation(char):
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(cp):
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


class PurePythonWordPiece:
    """BERT's BasicTokenizer + greedy longest-match-first WordPiece, in Python."""

    def __init__(self, vocab_file, do_lower_case=True):
        self.vocab = collections.OrderedDict()
        with open(vocab_file, encoding="utf-8") as f:
            for line in f:
                token = line.strip()
                if token:
                    self.vocab[token] = len(self.vocab)
        self.words = list(self.vocab)
        self.do_lower_case = do_lower_case

    def _basic(self, text):
        chars = []
        for char in text:
            cp = ord(char)
            category = unicodedata.category(char)
            if cp == 0 or cp == 0xFFFD or (category in ("Cc", "Cf") and char not in "\t\n\r"):
                continue
            if _is_cjk(cp):
                chars.append(f" {char} ")
            elif char in " \t\n\r" or category == "Zs":
                chars.append(" ")
            else:
                chars.append(char)
        words = []
        for token in "".join(chars).split():
            if self.do_lower_case:
                token = "".join(
                    c
                    for c in unicodedata.normalize("NFD", token.lower())
                    if unicodedata.category(c) != "Mn"
                )
            current = []
            for char in token:
                if _is_punctuation(char):
                    if current:
                        words.append("".join(current))
                        current = []
                    words.append(char)
                else:
                    current.append(char)
            if current:
                words.append("".join(current))
        return words

    def _wordpiece(self, word):
        if len(word) > 100:
            return ["[UNK]"]
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    break
                end -= 1
            if end == start:
                return ["[UNK]"]
            pieces.append(piece)
            start = end
        return pieces

    def tokenize(self, text):
        return [p for w in self._basic(text) for p in self._wordpiece(w)]


def _baseline_truncate(tokens_a, tokens_b, max_num_tokens, rng):
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        trunc = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del trunc[0]
        else:
            trunc.pop()


def _baseline_mask(tokens, options, vocab_words, rng):
    candidates = []
    for i, token in enumerate(tokens):
        if token in ("[CLS]", "[SEP]"):
            continue
        if options.do_whole_word_mask and candidates and token.startswith("##"):
            candidates[-1].append(i)
        else:
            candidates.append([i])
    rng.shuffle(candidates)
    output = list(tokens)
    num_to_predict = min(
        options.max_predictions_per_seq, max(1, int(round(len(tokens) * options.masked_lm_prob)))
    )
    masked = []
    for word in candidates:
        if len(masked) >= num_to_predict:
            break
        if len(masked) + len(word) > num_to_predict:
            continue
        for index in word:
            if rng.random() < 0.8:
                replacement = "[MASK]"
            elif rng.random() < 0.5:
                replacement = tokens[index]
            else:
                replacement = vocab_words[rng.randint(0, len(vocab_words) - 1)]
            output[index] = replacement
            masked.append((index, tokens[index]))
    masked.sort()
    return output, [m[0] for m in masked], [m[1] for m in masked]


def baseline_instances(documents, document_index, options, vocab_words, rng):
    """The original per-document instance creation, with token strings."""
    document = documents[document_index]
    max_num_tokens = options.max_seq_length - 3
    target = max_num_tokens
    if rng.random() < options.short_seq_prob:
        target = rng.randint(2, max_num_tokens)
    instances, chunk, length, i = [], [], 0, 0
    while i < len(document):
        chunk.append(document[i])
        length += len(document[i])
        if i == len(document) - 1 or length >= target:
            a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
            tokens_a = [t for s in chunk[:a_end] for t in s]
            tokens_b = []
            if len(chunk) == 1 or rng.random() < 0.5:
                is_random_next = True
                for _ in range(10):
                    other = rng.randint(0, len(documents) - 1)
                    if other != document_index:
                        break
                random_document = documents[other]
                for sentence in random_document[rng.randint(0, len(random_document) - 1) :]:
                    tokens_b.extend(sentence)
                    if len(tokens_b) >= target - len(tokens_a):
                        break
                i -= len(chunk) - a_end
            else:
                is_random_next = False
                tokens_b = [t for s in chunk[a_end:] for t in s]
            _baseline_truncate(tokens_a, tokens_b, max_num_tokens, rng)
            tokens = ["[CLS]"] + tokens_a + ["[SEP]"] + tokens_b + ["[SEP]"]
            segment_ids = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
            tokens, positions, labels = _baseline_mask(tokens, options, vocab_words, rng)
            instances.append((tokens, segment_ids, is_random_next, positions, labels))
            chunk, length = [], 0
        i += 1
    return instances


def run_baseline(input_files, output_files, vocab_file, options) -> dict[str, float]:
    """Single-process pure-Python creation; returns seconds and counts."""
    import tensorflow as tf

    start = time.perf_counter()
    tokenizer = PurePythonWordPiece(vocab_file)
    documents, input_bytes = [[]], 0
    for path in input_files:
        with open(path, encoding="utf-8") as f:
            for line in f:
                input_bytes += len(line.encode("utf-8"))
                line = line.strip()
                if not line:
                    documents.append([])
                    continue
                tokens = tokenizer.tokenize(line)
                if tokens:
                    documents[-1].append(tokens)
    documents = [d for d in documents if d]
    tokenized = time.perf_counter()
    rng = random.Random(options.random_seed)
    rng.shuffle(documents)
    instances = []
    for _ in range(options.dupe_factor):
        for index in range(len(documents)):
            instances.extend(baseline_instances(documents, index, options, tokenizer.words, rng))
    rng.shuffle(instances)
    records = []
    vocab, p, s = tokenizer.vocab, options.max_predictions_per_seq, options.max_seq_length
    for tokens, segment_ids, is_random_next, positions, labels in instances:
        ids = [vocab[t] for t in tokens]
        mask = [1] * len(ids)
        pad = s - len(ids)
        label_ids = [vocab[t] for t in labels]
        weights = [1.0] * len(label_ids)
        fill = p - len(label_ids)
        feature = collections.OrderedDict(
            input_ids=ids + [0] * pad,
            input_mask=mask + [0] * pad,
            segment_ids=segment_ids + [0] * pad,
            masked_lm_positions=positions + [0] * fill,
            masked_lm_ids=label_ids + [0] * fill,
        )
        features = {
            k: tf.train.Feature(int64_list=tf.train.Int64List(value=v)) for k, v in feature.items()
        }
        features["masked_lm_weights"] = tf.train.Feature(
            float_list=tf.train.FloatList(value=weights + [0.0] * fill)
        )
        features["next_sentence_labels"] = tf.train.Feature(
            int64_list=tf.train.Int64List(value=[1 if is_random_next else 0])
        )
        example = tf.train.Example(features=tf.train.Features(feature=features))
        records.append(example.SerializeToString())
    serialized = time.perf_counter()
    writers = [tf.io.TFRecordWriter(p) for p in output_files]
    for n, record in enumerate(records):
        writers[n % len(writers)].write(record)
    for writer in writers:
        writer.close()
    seconds = time.perf_counter() - start
    return dict(
        seconds=seconds,
        instances=len(instances),
        input_megabytes=input_bytes / 1e6,
        # Stages: read + tokenize; create, mask and serialize; write.
        stage_seconds=(tokenized - start, serialized - tokenized, start + seconds - serialized),
    )


def run_project(input_files, output_files, vocab_file, options, num_workers):
    """The project implementation, timed in-process (tokenizer setup included)."""
    from data import pretraining_records, tokenization

    start = time.perf_counter()
    tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
    stats = pretraining_records.create_pretraining_data(
        input_files, output_files, tokenizer, options, num_workers=num_workers
    )
    seconds = time.perf_counter() - start
    # Stages as the baseline's: read + tokenize (tokenizer set-up included); create, mask
    # and serialize; write.
    setup_and_tokenize = seconds - stats["instances_seconds"] - stats["write_seconds"]
    return dict(
        seconds=seconds,
        instances=stats["instances"],
        input_megabytes=stats["input_megabytes"],
        stage_seconds=(setup_and_tokenize, stats["instances_seconds"], stats["write_seconds"]),
    )


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def benchmark(
    input_files: list[str],
    vocab_file: str,
    num_workers: int = 2,
    dupe_factor: int = 10,
    num_output_shards: int = 2,
    skip_baseline: bool = False,
) -> list[dict]:
    """Runs the baseline and the project implementation; returns table rows."""
    from data import pretraining_instances

    options = pretraining_instances.InstanceOptions(dupe_factor=dupe_factor)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:

        def outputs(name):
            return [os.path.join(tmp, f"{name}-{i}") for i in range(num_output_shards)]

        # Warm-up: the in-graph tokenizer builds its tables once per process.
        run_project(
            input_files[:1],
            outputs("warmup"),
            vocab_file,
            pretraining_instances.InstanceOptions(dupe_factor=1),
            1,
        )
        runs = (
            []
            if skip_baseline
            else [
                (
                    "pure-Python baseline (1 process)",
                    lambda: run_baseline(input_files, outputs("base"), vocab_file, options),
                )
            ]
        )
        for workers in sorted({1, num_workers}):
            runs.append(
                (
                    f"project ({workers} worker{'s' if workers > 1 else ''})",
                    lambda w=workers: run_project(
                        input_files, outputs(f"p{w}"), vocab_file, options, w
                    ),
                )
            )
        for name, run in runs:
            logging.info("Running %s ...", name)
            cpu_before = _cpu_seconds()
            result = run()
            rows.append(
                dict(
                    implementation=name,
                    seconds=result["seconds"],
                    cpu_seconds=_cpu_seconds() - cpu_before,
                    instances=result["instances"],
                    mb_per_second=result["input_megabytes"] / result["seconds"],
                    instances_per_second=result["instances"] / result["seconds"],
                    stage_seconds=result["stage_seconds"],
                )
            )
    base = rows[0]["seconds"] if not skip_baseline else None
    for row in rows:
        row["speedup"] = base / row["seconds"] if base else None
    return rows


def format_table(rows: list[dict], title: str) -> str:
    lines = [
        f"### {title}",
        "",
        "| implementation | wall s | CPU s | instances | input MB/s | instances/s | speedup "
        "| read + tokenize s | create, mask, serialize s | write s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        speedup = f"{r['speedup']:.1f}x" if r["speedup"] else "-"
        lines.append(
            f"| {r['implementation']} | {r['seconds']:.2f} | {r['cpu_seconds']:.2f} | "
            f"{r['instances']} | {r['mb_per_second']:.3f} | "
            f"{r['instances_per_second']:.0f} | {speedup} | "
            + " | ".join(f"{t:.2f}" for t in r["stage_seconds"])
            + " |"
        )
    return "\n".join(lines)


def main(_):
    from data import text_corpus

    options = cli.from_flags(PretrainingDataOptions)
    files = text_corpus.expand_file_patterns(options.input_file)
    rows = benchmark(
        files,
        options.vocab_file,
        options.num_workers,
        options.dupe_factor,
        skip_baseline=options.skip_baseline,
    )
    megabytes = sum(os.path.getsize(f) for f in files) / 1e6
    title = (
        f"Pretraining-data creation: {len(files)} file(s), {megabytes:.2f} MB, "
        f"dupe_factor={options.dupe_factor}, max_seq_length=128, {os.cpu_count()} CPU cores"
    )
    table = format_table(rows, title)
    print(table)
    if options.output_json:
        with open(options.output_json, "w") as f:
            json.dump(dict(title=title, files=files, rows=rows), f, indent=2)
    if options.output_markdown:
        with open(options.output_markdown, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    cli.define_flags(PretrainingDataOptions, module_name=sys.argv[0])
    flags.mark_flag_as_required("vocab_file")
    app.run(main)
