"""data.example_encoding against protobuf's own tf.train.Example serialization."""

import numpy as np
import pytest
import tensorflow as tf

from data import example_encoding


def reference_bytes(features, float_features, row):
    """tf.train.Example(...).SerializeToString() of one row: the independent truth."""
    feature = {}
    for name, values in features.items():
        if name in float_features:
            value = tf.train.Feature(float_list=tf.train.FloatList(value=values[row].tolist()))
        else:
            value = tf.train.Feature(
                int64_list=tf.train.Int64List(value=[int(v) for v in values[row]])
            )
        feature[name] = value
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString(deterministic=True)


@pytest.mark.parametrize("seed", range(6))
def test_random_features_equal_protobuf_bytes(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    features, float_features = {}, set()
    for f in range(int(rng.integers(1, 8))):
        # Names of varied lengths (incl. > 127 bytes: a 2-byte key length) and order.
        name = f"f{f}_" + "x" * int(rng.choice([0, 3, 130])) + chr(ord("a") + int(rng.integers(26)))
        k = int(rng.integers(1, 300))
        kind = rng.integers(5)
        if kind == 0:
            features[name] = rng.standard_normal((n, k)).astype(np.float32) * 1e3
            float_features.add(name)
        elif kind == 1:  # 0/1 masks: one byte per value, fixed width.
            features[name] = rng.random((n, k)) < 0.5
        elif kind == 2:  # Token ids: 1 to 3 bytes, varying width.
            features[name] = rng.integers(0, 30522, (n, k))
        elif kind == 3:  # Full range: 1 to 4 bytes.
            bits = rng.integers(0, 29, (n, k))
            features[name] = rng.integers(0, 1 << 62, (n, k)) % (1 << bits)
        else:  # Same encoded width in every row.
            features[name] = np.full((n, k), int(rng.choice([5, 200, 70000])))
    records = example_encoding.serialize_examples(features, float_features)
    assert len(records) == n
    for row, record in enumerate(records):
        assert record == reference_bytes(features, float_features, row)


def test_parsed_back_by_tensorflow():
    rng = np.random.default_rng(7)
    ids = rng.integers(0, 1 << 28, (5, 9))
    weights = rng.random((5, 3)).astype(np.float32)
    records = example_encoding.serialize_examples({"ids": ids, "w": weights}, ["w"])
    spec = {
        "ids": tf.io.FixedLenFeature([9], tf.int64),
        "w": tf.io.FixedLenFeature([3], tf.float32),
    }
    parsed = tf.io.parse_example(tf.constant(records), spec)
    np.testing.assert_array_equal(parsed["ids"].numpy(), ids)
    np.testing.assert_array_equal(parsed["w"].numpy(), weights)


def test_varint_matches_protobuf_boundaries():
    for value in [0, 1, 127, 128, 16383, 16384, (1 << 21) - 1, 1 << 21, (1 << 28) - 1]:
        example = tf.train.Example()
        example.features.feature["a"].int64_list.value.append(value)
        packed, offsets = example_encoding.packed_varints(np.array([[value]]))
        assert packed == example_encoding.varint(value)
        assert offsets.tolist() == [0, len(packed)]
        assert packed in example.SerializeToString()


def test_out_of_range_and_bad_shapes_are_errors():
    with pytest.raises(ValueError, match="2\\*\\*28"):
        example_encoding.serialize_examples({"a": np.array([[1 << 28]])})
    with pytest.raises(ValueError, match="2\\*\\*28"):
        example_encoding.serialize_examples({"a": np.array([[-1]])})
    with pytest.raises(ValueError, match="same number of rows"):
        example_encoding.serialize_examples(
            {"a": np.zeros((2, 1), int), "b": np.zeros((3, 1), int)}
        )
    with pytest.raises(ValueError, match="k >= 1"):
        example_encoding.serialize_examples({"a": np.zeros((2, 0), int)})
