# Copyright 2026 The bert-large-batch Authors. Apache-2.0.
"""Serialized tf.train.Example protobufs for many records at once, encoded with numpy.

Building one protobuf message per record in Python is slow when there are millions of
records; this module writes the wire format directly for a whole batch. Every feature is
a [n, k] array (row i is the value list of record i): int64 lists (values in [0, 2**28))
or float lists (stored as little-endian float32). The output bytes equal
`tf.train.Example(...).SerializeToString(deterministic=True)` of the same features, which
writes the feature map in sorted key order and packed repeated values.

Wire format used (field number << 3 | wire type): Example.features = 1 (bytes),
Features.feature map entry = 1 (bytes) holding key = 1 and value = 2; Feature.float_list
= 2, Feature.int64_list = 3; FloatList.value / Int64List.value = 1, packed.
"""

import functools
from collections.abc import Collection, Mapping

import numpy as np

MAX_INT_VALUE = (1 << 28) - 1  # Largest value of the (at most 4-byte) varint encoder.


@functools.lru_cache(maxsize=65536)
def varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _varint_words(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Varint bytes (little-endian in a uint32) and byte counts of `values` < 2**28."""
    values = values.astype(np.uint32)
    num_bytes = 1 + (values >= 1 << 7).astype(np.uint8) + (values >= 1 << 14) + (values >= 1 << 21)
    words = np.zeros(values.shape, np.uint32)
    for i in range(4):  # 7-bit groups, low first, with continuation bits.
        group = (values >> 7 * i) & 0x7F
        if i < 3:
            group |= np.where(num_bytes > i + 1, 0x80, 0).astype(np.uint32)
        words |= group << 8 * i
    return words.astype("<u4"), num_bytes


@functools.lru_cache(maxsize=8)
def _varint_table(size: int) -> tuple[np.ndarray, np.ndarray]:
    """`_varint_words` of 0..size-1, to encode token ids by lookup."""
    return _varint_words(np.arange(size))


def packed_varints(values: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Protobuf varints of a [n, k] array of ints in [0, 2**28), all rows concatenated.

    Returns (bytes, [n + 1] row byte offsets).
    """
    values = np.asarray(values)
    n, k = values.shape
    if not values.size:
        return b"", np.zeros([n + 1], np.int64)
    low, high = int(values.min()), int(values.max())
    if low < 0 or high > MAX_INT_VALUE:
        raise ValueError("Feature values must be in [0, 2**28) for the varint encoder.")
    if high < 0x80:  # One byte per value.
        return values.astype(np.uint8).tobytes(), np.arange(n + 1) * k
    if high < 1 << 22:  # Vocabulary-sized values: table lookup.
        words, num_bytes = _varint_table(1 << max(high.bit_length(), 14))
        words, num_bytes = words[values], num_bytes[values]
    else:
        words, num_bytes = _varint_words(values)
    used = np.arange(4, dtype=np.uint8) < num_bytes[..., None]
    encoded = words.view(np.uint8).reshape(-1)[used.reshape(-1)]
    offsets = np.concatenate([[0], np.cumsum(num_bytes.sum(axis=1, dtype=np.int64))])
    return encoded.tobytes(), offsets


class FeatureHeader:
    """Protobuf bytes of a Features map entry up to its payload, per payload size.

    Entry = key (field 1) + Feature (field 2) holding an Int64List (field 3)
    or FloatList (field 2) whose packed values are field 1.
    """

    def __init__(self, name: str, is_float: bool):
        self.key = b"\x0a" + varint(len(name.encode())) + name.encode()
        self.list_tag = b"\x12" if is_float else b"\x1a"
        self.cache: dict[int, bytes] = {}

    def __call__(self, payload_size: int) -> bytes:
        header = self.cache.get(payload_size)
        if header is None:
            packed = b"\x0a" + varint(payload_size)
            value_list = self.list_tag + varint(len(packed) + payload_size)
            feature_size = len(value_list) + len(packed) + payload_size
            entry = self.key + b"\x12" + varint(feature_size) + value_list + packed
            header = b"\x0a" + varint(len(entry) + payload_size) + entry
            self.cache[payload_size] = header
        return header


@functools.lru_cache(maxsize=256)
def _header(name: str, is_float: bool) -> FeatureHeader:
    return FeatureHeader(name, is_float)


def serialize_examples(
    features: Mapping[str, np.ndarray], float_features: Collection[str] = ()
) -> list[bytes]:
    """Serialized tf.train.Example of each row of `features`.

    `features` maps a feature name to a [n, k] array (all with the same n; k >= 1 may
    differ between features); names in `float_features` become float lists (float32),
    the others int64 lists of values in [0, 2**28).

    Features whose encoding has the same size in every record (0/1 masks, weights, small
    positions) are laid out as one fixed-width byte block per record, so the per-record
    Python work is a few slices and one join.
    """
    sizes_n = {np.shape(v)[0] for v in features.values()}
    if len(sizes_n) > 1:
        raise ValueError(f"All features need the same number of rows, got {sorted(sizes_n)}.")
    n = sizes_n.pop() if sizes_n else 0
    empty = [
        name for name, values in features.items() if np.ndim(values) != 2 or not np.shape(values)[1]
    ]
    if empty:
        raise ValueError(f"Features must be [n, k >= 1] arrays: {empty}.")
    encoded = {}
    for name, values in features.items():
        if name in float_features:
            floats = np.asarray(values).astype("<f4")
            encoded[name] = (floats.tobytes(), np.arange(n + 1) * floats.shape[1] * 4)
        else:
            encoded[name] = packed_varints(values)

    # Consecutive fixed-size entries (header + payload) become one block.
    parts = []  # ("block", bytes, width) or ("varying", header, bytes, offsets)
    block: list[np.ndarray] = []

    def flush():
        if block:
            array = np.concatenate(block, axis=1)
            parts.append(("block", array.tobytes(), array.shape[1]))
            block.clear()

    for name in sorted(features):
        data, offsets = encoded[name]
        header_of = _header(name, name in float_features)
        sizes = np.diff(offsets)
        if n and np.all(sizes == sizes[0]):
            header = np.frombuffer(header_of(int(sizes[0])), np.uint8)
            block.append(np.broadcast_to(header, (n, len(header))))
            block.append(np.frombuffer(data, np.uint8).reshape(n, int(sizes[0])))
        else:
            flush()
            parts.append(("varying", header_of, data, np.asarray(offsets).tolist()))
    flush()

    records = []
    for row in range(n):
        pieces = []
        for part in parts:
            if part[0] == "block":
                width = part[2]
                pieces.append(part[1][row * width : (row + 1) * width])
            else:
                _, header_of, data, offsets = part
                start, end = offsets[row], offsets[row + 1]
                pieces.append(header_of(end - start))
                pieces.append(data[start:end])
        body = b"".join(pieces)
        records.append(b"\x0a" + varint(len(body)) + body)
    return records
