# Copyright 2026 The bert-large-batch Authors. Apache-2.0.
"""Length buckets with static shapes: fewer padded tokens, one compiled program per bucket.

Windows (SQuAD features) are grouped by their real length into a few buckets; a batch holds
windows of one bucket, padded to the bucket's length, so each bucket is one static shape that
XLA (or a TPU) compiles once. The global batch stays the same in every bucket.

Which bucket each update draws from is a host-side schedule, the same on every replica and
worker (a TPU/SPMD step has one shape): per epoch, bucket b supplies its share of the
epoch's batches (`n_b / global_batch`, the fractions carried over to later epochs, so over
the run every bucket is drawn as often as its size asks), in an order shuffled by the seed.
The schedule is a pure function of the bucket sizes, batch, seed and step count, so a resumed
run rebuilds it and skips, in every bucket, the batches the finished steps used.
"""

from collections.abc import Sequence

import numpy as np

AUTO = "auto"
DEFAULT_NUM_BUCKETS = 4
DEFAULT_MULTIPLE = 32  # auto bucket lengths are multiples of this (or the maximum length)


def parse_bucket_lengths(spec: str, max_length: int) -> list[int] | None:
    """The bucket lengths a flag names: None for "auto", [max_length] for "" (no buckets, the
    original: every window padded to max_length), else the sorted comma-separated lengths,
    each in [1, max_length], with max_length added as the last bucket if missing."""
    spec = (spec or "").strip()
    if spec == AUTO:
        return None
    if not spec:
        return [max_length]
    try:
        lengths = sorted({int(part) for part in spec.split(",") if part.strip()})
    except ValueError:
        raise ValueError(
            f"bucket lengths must be 'auto', '' or comma-separated integers, got {spec!r}"
        ) from None
    if not lengths or lengths[0] < 1 or lengths[-1] > max_length:
        raise ValueError(f"bucket lengths {spec!r} must lie in [1, max_seq_length={max_length}]")
    return lengths if lengths[-1] == max_length else lengths + [max_length]


def assign_buckets(lengths, bucket_lengths: Sequence[int]) -> np.ndarray:
    """Index of each length's bucket: the shortest bucket that holds it."""
    lengths = np.asarray(lengths)
    index = np.searchsorted(np.asarray(bucket_lengths), lengths, side="left")
    if lengths.size and index.max() >= len(bucket_lengths):
        raise ValueError(
            f"a window of {int(lengths.max())} tokens is longer than the last bucket "
            f"({bucket_lengths[-1]})"
        )
    return index


def padded_tokens(lengths, bucket_lengths: Sequence[int]) -> int:
    """Tokens computed when every window is padded to its bucket's length."""
    return int(np.asarray(bucket_lengths)[assign_buckets(lengths, bucket_lengths)].sum())


def merge_small_buckets(lengths, bucket_lengths: Sequence[int], min_count: int) -> list[int]:
    """`bucket_lengths` without buckets of fewer than `min_count` windows: a short one's windows
    move up to the next bucket, a last one short of windows takes in the bucket below it."""
    buckets = list(bucket_lengths)
    while len(buckets) > 1:
        counts = np.bincount(assign_buckets(lengths, buckets), minlength=len(buckets))
        small = [i for i, count in enumerate(counts) if count < min_count]
        if not small:
            break
        del buckets[small[0] if small[0] < len(buckets) - 1 else -2]
    return buckets


def choose_bucket_lengths(
    lengths,
    max_length: int,
    num_buckets: int = DEFAULT_NUM_BUCKETS,
    multiple: int = DEFAULT_MULTIPLE,
    min_count: int = 1,
    bucket_cost: float = 0.0,
) -> list[int]:
    """At most `num_buckets` bucket lengths that minimize the padded tokens of `lengths`, plus
    `bucket_cost` for each bucket after the first.

    Candidates are the multiples of `multiple` below `max_length`, and `max_length`; every
    bucket must hold at least `min_count` windows (e.g. the global batch, so a bucket fills a
    batch without repeating windows). `bucket_cost`, in padded tokens, is what compiling one
    more shape costs (see `compile_cost_tokens`): a bucket is added only if it saves more.
    Exact dynamic programming over the candidates.
    """
    lengths = np.asarray(lengths)
    if lengths.size == 0:
        raise ValueError("no windows to choose bucket lengths from")
    if lengths.max() > max_length:
        raise ValueError(f"a window of {int(lengths.max())} tokens exceeds {max_length}")
    candidates = sorted({*range(multiple, max_length, multiple), max_length})
    # The last bucket is the shortest candidate that holds the longest window.
    top = next(c for c in candidates if c >= lengths.max())
    candidates = [c for c in candidates if c <= top]
    # counts_upto[i]: windows of at most candidates[i] tokens (index 0: none).
    counts_upto = [0] + [int((lengths <= c).sum()) for c in candidates]
    n = len(candidates)
    infinity = float("inf")

    def cost(i, j):  # bucket candidates[j - 1] holding the windows in (candidates[i - 1], ...]
        count = counts_upto[j] - counts_upto[i]
        return candidates[j - 1] * count if count >= min_count else infinity

    # best[k][j]: least padded tokens of the windows <= candidates[j - 1] in k buckets, the
    # last of which is candidates[j - 1]; previous[k][j]: the end of the bucket before it.
    best = [[infinity] * (n + 1) for _ in range(num_buckets + 1)]
    previous = [[0] * (n + 1) for _ in range(num_buckets + 1)]
    best[0][0] = 0
    for k in range(1, num_buckets + 1):
        for j in range(1, n + 1):
            for i in range(j):
                value = best[k - 1][i] + cost(i, j)
                if value < best[k][j]:
                    best[k][j], previous[k][j] = value, i
    k = min(range(1, num_buckets + 1), key=lambda k: (best[k][n] + (k - 1) * bucket_cost, k))
    if best[k][n] == infinity:  # Too few windows to fill even one batch per bucket.
        return [top]
    chosen, j = [], n
    while k:
        chosen.append(candidates[j - 1])
        j, k = previous[k][j], k - 1
    return chosen[::-1]


def compile_cost_tokens(
    compile_steps: float, max_length: int, num_windows: int, num_steps: float
) -> float:
    """`choose_bucket_lengths`'s `bucket_cost` when compiling a shape takes as long as
    `compile_steps` steps at `max_length` and the run makes `num_steps` steps of batch B over
    `num_windows` windows: compile_steps * B * max_length tokens over the run, which is
    num_steps * B / num_windows passes over the windows whose padding the buckets count."""
    return compile_steps * max_length * num_windows / num_steps


def bucket_schedule(
    bucket_sizes: Sequence[int], global_batch_size: int, num_steps: int, seed: int
) -> np.ndarray:
    """The bucket index of each of `num_steps` updates.

    Epoch e draws floor((e + 1) n_b / B) - floor(e n_b / B) batches from bucket b (n_b
    windows, global batch B), in an order shuffled with the seed (seed, e); a longer run
    extends a shorter run's schedule.
    """
    sizes = np.asarray(bucket_sizes, np.int64)
    if sizes.sum() <= 0 or global_batch_size < 1:
        raise ValueError(f"no batches from bucket sizes {list(sizes)}")
    steps: list[np.ndarray] = []
    drawn, epoch = 0, 0
    while drawn < num_steps:
        per_bucket = (epoch + 1) * sizes // global_batch_size - epoch * sizes // global_batch_size
        order = np.repeat(np.arange(len(sizes)), per_bucket)
        np.random.default_rng([seed, epoch]).shuffle(order)
        steps.append(order)
        drawn += len(order)
        epoch += 1
    return np.concatenate(steps)[:num_steps] if steps else np.zeros([0], np.int64)


def describe(lengths, bucket_lengths: Sequence[int], max_length: int) -> dict:
    """Bucket lengths, windows per bucket and the share of padding tokens, with buckets and
    with every window padded to `max_length` (for logs and JSON)."""
    lengths = np.asarray(lengths)
    index = assign_buckets(lengths, bucket_lengths)
    padded = padded_tokens(lengths, bucket_lengths)
    return {
        "bucket_lengths": [int(b) for b in bucket_lengths],
        "windows_per_bucket": np.bincount(index, minlength=len(bucket_lengths)).tolist(),
        "mean_window_length": float(lengths.mean()),
        "mean_padded_length": padded / len(lengths),
        "padding_fraction": 1.0 - float(lengths.sum()) / padded,
        "padding_fraction_without_buckets": 1.0 - float(lengths.mean()) / max_length,
    }
