"""A text corpus made ready for pretraining: a learned vocabulary and records per length.

The demo and the scaling study prepare their data alike: learn a WordPiece vocabulary from
the corpus, then write pretraining TFRecords (two files) for each sequence length. Each step
keeps what an earlier run left, so a rerun starts training at once. `embedded_records` does
both for the embedded synthetic corpus (generated, nothing downloaded).
"""

import os
from collections.abc import Sequence

from data import fileio

DEFAULT_VOCAB_SIZE = 2000


def learn_vocab(text_files: Sequence[str], out: str, vocab_size: int) -> str:
    """A WordPiece vocabulary of `vocab_size` learned from the corpus (kept if already there)."""
    from data import vocab_learning

    vocab_file = os.path.join(out, "vocab.txt")
    if os.path.exists(vocab_file):
        return vocab_file
    lines = []
    for path in text_files:
        with open(path, encoding="utf-8") as f:
            lines.extend(line for line in f.read().split("\n") if line)
    vocab = vocab_learning.learn_wordpiece_vocab(lines, vocab_size, do_lower_case=True)
    fileio.write_atomic(vocab_file, "\n".join(vocab) + "\n")
    print(f"learned a WordPiece vocabulary of {len(vocab)} entries -> {vocab_file}")
    return vocab_file


def vocab_size_of(vocab_file: str) -> int:
    """Entries of a vocabulary file (its non-empty lines)."""
    with open(vocab_file, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def create_records(
    text_files: Sequence[str],
    vocab_file: str,
    out: str,
    phases: Sequence[dict],
    dupe_factor: int,
    seed: int,
    hf_datasets: Sequence[str] = (),
) -> dict:
    """Pretraining TFRecords (two files) for each phase's sequence length: name -> glob.

    `phases` are dicts with "name", "max_seq_length" and "max_predictions_per_seq".
    """
    from data import tokenization
    from data.pretraining_instances import InstanceOptions
    from data.pretraining_records import create_pretraining_data

    tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
    records = {}
    for phase in phases:
        seq, pred = phase["max_seq_length"], phase["max_predictions_per_seq"]
        prefix = os.path.join(out, "records", f"seq{seq}")
        files = [f"{prefix}-{i:02d}-of-02.tfrecord" for i in range(2)]
        records[phase["name"]] = f"{prefix}-*.tfrecord"
        if all(os.path.exists(p) for p in files):
            continue
        os.makedirs(os.path.dirname(prefix), exist_ok=True)
        stats = create_pretraining_data(
            text_files,
            files,
            tokenizer,
            InstanceOptions(
                max_seq_length=seq,
                max_predictions_per_seq=pred,
                dupe_factor=dupe_factor,
                random_seed=seed,
            ),
            num_workers=2,
            hf_datasets=list(hf_datasets),
        )
        print(
            f"sequence {seq}: {stats['instances']} instances from {stats['documents']} documents "
            f"in {stats['seconds']:.1f}s"
        )
    return records


def embedded_records(
    out: str,
    seed: int,
    max_seq_length: int,
    max_predictions_per_seq: int,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    dupe_factor: int = 5,
) -> tuple:
    """The embedded corpus as records with a learned vocabulary: (records glob, vocab file).

    Everything goes to `out` (corpus, vocab.txt, records/seq<N>-*.tfrecord).
    """
    from data import synthetic_dataset

    paths = synthetic_dataset.generate_default_dataset(out, seed=seed)
    vocab_file = learn_vocab([paths["corpus"]], out, vocab_size=vocab_size)
    phase = {
        "name": "phase1",
        "max_seq_length": max_seq_length,
        "max_predictions_per_seq": max_predictions_per_seq,
    }
    records = create_records(
        [paths["corpus"]], vocab_file, out, [phase], dupe_factor=dupe_factor, seed=seed
    )
    return records["phase1"], vocab_file
