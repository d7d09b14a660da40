"""Tests of bert.checkpoints, checked against the real MiniLM-L6 model."""

import json
import logging

import numpy as np
import pytest
import tensorflow as tf

import bert
from bert import checkpoints

TINY = dict(
    vocab_size=97,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=48,
    max_position_embeddings=24,
    type_vocab_size=2,
)


@pytest.fixture(scope="module")
def batch_a(shared_data):
    data = np.load(shared_data / "reference" / "minilm_batch_a.npz")
    inputs = {
        "input_ids": data["input_ids"],
        "input_mask": data["attention_mask"],
        "segment_ids": data["token_type_ids"],
    }
    return inputs, data["last_hidden_state"]


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    return bert.load_pretrained(minilm_dir)


def _assert_matches_reference(encoder, batch_a):
    inputs, expected = batch_a
    assert (inputs["input_mask"] == 0).any()  # padded rows are compared too
    got = encoder(inputs, training=False)["sequence_output"].numpy()
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-4


def _rewrite_checkpoint(src_prefix, out_dir, change):
    """Copies a TF1 checkpoint, letting `change(dict)` edit its tensors."""
    reader = tf.train.load_checkpoint(src_prefix)
    tensors = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
    change(tensors)
    out_dir.mkdir()
    tf.raw_ops.SaveV2(
        prefix=str(out_dir / "bert_model.ckpt"),
        tensor_names=list(tensors),
        shape_and_slices=[""] * len(tensors),
        tensors=list(tensors.values()),
    )
    src_config = tf.io.gfile.GFile(src_prefix.rsplit("/", 1)[0] + "/bert_config.json").read()
    (out_dir / "bert_config.json").write_text(src_config)
    return out_dir


def test_hugging_face_minilm_matches_reference(minilm, batch_a, shared_data):
    config, encoder = minilm
    raw = json.loads((shared_data / "reference" / "minilm_config.json").read_text())
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (
        raw["hidden_size"],
        raw["num_hidden_layers"],
        raw["num_attention_heads"],
    )
    _assert_matches_reference(encoder, batch_a)


def test_hugging_face_names_map_to_every_encoder_variable(shared_data):
    """Every tensor in the real file (with or without `bert.`) has a home."""
    lines = (shared_data / "reference" / "minilm_tensors.txt").read_text()
    names = [
        line.split("\t")[0] for line in lines.splitlines() if line and not line.startswith("#")
    ]
    assert len(names) == 104
    config = bert.BertConfig.from_json_file(shared_data / "reference" / "minilm_config.json")
    table = checkpoints._variable_table(bert.build_encoder(config))
    for prefix in ("", "bert."):
        mapped = {checkpoints.hf_to_tf1_name(prefix + n) for n in names}
        mapped.discard(None)  # embeddings.position_ids
        assert {name for name, _ in mapped} == set(table)
    assert checkpoints.hf_to_tf1_name("encoder.layer.3.attention.self.query.weight") == (
        "bert/encoder/layer_3/attention/self/query/kernel",
        True,
    )
    assert checkpoints.hf_to_tf1_name("cls.seq_relationship.weight") == (
        "cls/seq_relationship/output_weights",
        False,
    )


def test_tf1_writer_round_trip_matches_reference(minilm, batch_a, tmp_path):
    config, encoder = minilm
    prefix = bert.save_tf1_checkpoint(encoder, config, tmp_path / "google")
    shapes = dict(tf.train.list_variables(prefix))
    h, i = config.hidden_size, config.intermediate_size
    assert shapes["bert/embeddings/word_embeddings"] == [config.vocab_size, h]
    assert shapes["bert/encoder/layer_5/attention/self/query/kernel"] == [h, h]
    assert shapes["bert/encoder/layer_5/attention/self/value/bias"] == [h]
    assert shapes["bert/encoder/layer_5/attention/output/dense/kernel"] == [h, h]
    assert shapes["bert/encoder/layer_0/intermediate/dense/kernel"] == [h, i]
    assert shapes["bert/encoder/layer_0/output/LayerNorm/gamma"] == [h]
    assert shapes["bert/pooler/dense/kernel"] == [h, h]
    assert len(shapes) == 5 + 16 * config.num_hidden_layers + 2
    assert sorted(p.name for p in (tmp_path / "google").iterdir()) == [
        "bert_config.json",
        "bert_model.ckpt.data-00000-of-00001",
        "bert_model.ckpt.index",
    ]

    config_2, encoder_2 = bert.load_pretrained(tmp_path / "google")
    assert config_2 == config
    _assert_matches_reference(encoder_2, batch_a)


def test_heads_round_trip_through_tf1_names(tmp_path):
    config = bert.BertConfig(**TINY)
    source = bert.build_pretraining_model(config)
    prefix = bert.save_tf1_checkpoint(source, config, tmp_path / "pre")
    shapes = dict(tf.train.list_variables(prefix))
    assert shapes["cls/seq_relationship/output_weights"] == [2, 32]
    assert shapes["cls/predictions/output_bias"] == [97]
    np.testing.assert_array_equal(
        tf.train.load_checkpoint(prefix).get_tensor("cls/seq_relationship/output_weights"),
        source.nsp_head.kernel.numpy().T,
    )

    target = bert.build_pretraining_model(config)
    assert not np.array_equal(source.nsp_head.kernel.numpy(), target.nsp_head.kernel.numpy())
    _, encoder = bert.load_pretrained(tmp_path / "pre", model=target)
    assert encoder is target.encoder
    for a, b in zip(source.weights, target.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)

    squad = bert.build_squad_model(config)
    prefix = bert.save_tf1_checkpoint(squad, config, tmp_path / "squad")
    assert dict(tf.train.list_variables(prefix))["cls/squad/output_weights"] == [2, 32]
    squad_2 = bert.build_squad_model(config)
    bert.load_pretrained(prefix, model=squad_2)  # a checkpoint prefix works
    for a, b in zip(squad.weights, squad_2.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_squad_model_from_encoder_only_checkpoint_logs_missing_head(
    minilm_dir, minilm, batch_a, caplog
):
    config, _ = minilm
    model = bert.build_squad_model(config)
    with caplog.at_level(logging.WARNING, logger="bert.checkpoints"):
        bert.load_pretrained(minilm_dir, model=model)
    assert "cls/squad/output_weights" in caplog.text
    _assert_matches_reference(model.encoder, batch_a)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    config = bert.BertConfig(**TINY)
    out = tmp_path_factory.mktemp("tiny")
    return bert.save_tf1_checkpoint(bert.build_encoder(config), config, out)


def test_shape_mismatch_names_variable_and_shapes(tiny_checkpoint, tmp_path):
    def shrink_positions(tensors):
        name = "bert/embeddings/position_embeddings"
        tensors[name] = tensors[name][:16]

    bad = _rewrite_checkpoint(tiny_checkpoint, tmp_path / "bad", shrink_positions)
    with pytest.raises(ValueError) as error:
        bert.load_pretrained(bad)
    message = str(error.value)
    assert "'bert/embeddings/position_embeddings'" in message
    assert "[16, 32]" in message and "[24, 32]" in message


def test_config_disagreeing_with_model_names_field(tiny_checkpoint):
    model = bert.build_encoder(bert.BertConfig(**dict(TINY, intermediate_size=64)))
    with pytest.raises(ValueError, match=r"'intermediate_size' is 48.*64"):
        bert.load_pretrained(tiny_checkpoint, model=model)


def test_missing_encoder_variable_is_an_error_unused_are_logged(tiny_checkpoint, tmp_path, caplog):
    def drop_gamma(tensors):
        del tensors["bert/encoder/layer_1/output/LayerNorm/gamma"]

    missing = _rewrite_checkpoint(tiny_checkpoint, tmp_path / "missing", drop_gamma)
    with pytest.raises(
        ValueError, match="missing encoder variables.*layer_1/output/LayerNorm/gamma"
    ):
        bert.load_pretrained(missing)

    def add_optimizer_slot(tensors):
        tensors["global_step"] = np.array(7, np.int64)
        tensors["bert/pooler/dense/kernel/adam_m"] = np.zeros([32, 32], np.float32)

    extra = _rewrite_checkpoint(tiny_checkpoint, tmp_path / "extra", add_optimizer_slot)
    with caplog.at_level(logging.WARNING, logger="bert.checkpoints"):
        _, encoder = bert.load_pretrained(extra)
    assert "global_step" in caplog.text
    assert "bert/pooler/dense/kernel/adam_m" in caplog.text
    np.testing.assert_array_equal(
        encoder.pooler.kernel.numpy(),
        tf.train.load_checkpoint(str(tiny_checkpoint)).get_tensor("bert/pooler/dense/kernel"),
    )


def test_training_checkpoint_round_trip(tmp_path):
    """tf.train.Checkpoint(model=...) restores every weight of the model."""
    config = bert.BertConfig(**TINY)
    model = bert.build_pretraining_model(config)
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    restored = bert.build_pretraining_model(config)
    assert not np.array_equal(model.weights[0].numpy(), restored.weights[0].numpy())
    tf.train.Checkpoint(model=restored).restore(path).assert_consumed()
    for a, b in zip(model.weights, restored.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
