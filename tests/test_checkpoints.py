"""Tests of bert.checkpoints, checked against the real MiniLM-L6 model."""

import json
import logging
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf
from conftest import train_steps

import bert
import optimization
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
    table = checkpoints.variable_table(bert.build_encoder(config))
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


# ------------------------------------------------------------ variable paths
# A 1-layer pretraining model (TINY sizes: H=32, A=4, D=8, I=48, V=97, 24 positions), in
# `model.weights` order: Keras path, the variable's name in Google's BERT checkpoints, Keras
# shape. The paths and order are those of the EinsumDense-based layers of earlier versions.
_L0 = "bert/encoder/layer_0"
ONE_LAYER_VARIABLES = [
    ("embeddings/position_embeddings", "bert/embeddings/position_embeddings", (24, 32)),
    ("embeddings/word_embeddings/embeddings", "bert/embeddings/word_embeddings", (97, 32)),
    (
        "embeddings/token_type_embeddings/embeddings",
        "bert/embeddings/token_type_embeddings",
        (2, 32),
    ),
    ("embeddings/layer_norm/gamma", "bert/embeddings/LayerNorm/gamma", (32,)),
    ("embeddings/layer_norm/beta", "bert/embeddings/LayerNorm/beta", (32,)),
    ("layer_0/query/kernel", f"{_L0}/attention/self/query/kernel", (32, 4, 8)),
    ("layer_0/query/bias", f"{_L0}/attention/self/query/bias", (4, 8)),
    ("layer_0/key/kernel", f"{_L0}/attention/self/key/kernel", (32, 4, 8)),
    ("layer_0/key/bias", f"{_L0}/attention/self/key/bias", (4, 8)),
    ("layer_0/value/kernel", f"{_L0}/attention/self/value/kernel", (32, 4, 8)),
    ("layer_0/value/bias", f"{_L0}/attention/self/value/bias", (4, 8)),
    ("layer_0/attention_output/kernel", f"{_L0}/attention/output/dense/kernel", (4, 8, 32)),
    ("layer_0/attention_output/bias", f"{_L0}/attention/output/dense/bias", (32,)),
    ("layer_0/attention_layer_norm/gamma", f"{_L0}/attention/output/LayerNorm/gamma", (32,)),
    ("layer_0/attention_layer_norm/beta", f"{_L0}/attention/output/LayerNorm/beta", (32,)),
    ("layer_0/intermediate/kernel", f"{_L0}/intermediate/dense/kernel", (32, 48)),
    ("layer_0/intermediate/bias", f"{_L0}/intermediate/dense/bias", (48,)),
    ("layer_0/output/kernel", f"{_L0}/output/dense/kernel", (48, 32)),
    ("layer_0/output/bias", f"{_L0}/output/dense/bias", (32,)),
    ("layer_0/output_layer_norm/gamma", f"{_L0}/output/LayerNorm/gamma", (32,)),
    ("layer_0/output_layer_norm/beta", f"{_L0}/output/LayerNorm/beta", (32,)),
    ("pooler/kernel", "bert/pooler/dense/kernel", (32, 32)),
    ("pooler/bias", "bert/pooler/dense/bias", (32,)),
    ("mlm_head/output_bias", "cls/predictions/output_bias", (97,)),
    ("mlm_head/transform/kernel", "cls/predictions/transform/dense/kernel", (32, 32)),
    ("mlm_head/transform/bias", "cls/predictions/transform/dense/bias", (32,)),
    ("mlm_head/layer_norm/gamma", "cls/predictions/transform/LayerNorm/gamma", (32,)),
    ("mlm_head/layer_norm/beta", "cls/predictions/transform/LayerNorm/beta", (32,)),
    ("nsp_head/kernel", "cls/seq_relationship/output_weights", (32, 2)),
    ("nsp_head/bias", "cls/seq_relationship/output_bias", (2,)),
]


def test_variable_paths_order_and_checkpoint_names_are_pinned():
    model = bert.build_pretraining_model(bert.BertConfig(**dict(TINY, num_hidden_layers=1)))
    assert [(w.path, tuple(w.shape)) for w in model.weights] == [
        (path, shape) for path, _, shape in ONE_LAYER_VARIABLES
    ]
    table = checkpoints.variable_table(model)
    assert {name: entry.variable.path for name, entry in table.items()} == {
        name: path for path, name, _ in ONE_LAYER_VARIABLES
    }


def test_object_checkpoint_keys_are_pinned(tmp_path):
    """The keys `tf.train.Checkpoint(model=...)` writes, as earlier versions wrote them.

    Object-based checkpoints match variables by attribute names (`query/_kernel`, not
    `query/kernel`): a rename here makes old training and fine-tuning checkpoints unreadable.
    """
    model = bert.build_squad_model(bert.BertConfig(**dict(TINY, num_hidden_layers=1)))
    prefix = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    suffix = "/.ATTRIBUTES/VARIABLE_VALUE"
    keys = {
        # The index of layer_0 among the functional encoder's operations.
        re.sub(r"^model/encoder/_operations/\d+/", "layer_0/", name).removesuffix(suffix): shape
        for name, shape in tf.train.list_variables(prefix)
    }
    layer_0 = {
        "query/_kernel": [32, 4, 8],
        "query/bias": [4, 8],
        "key/_kernel": [32, 4, 8],
        "key/bias": [4, 8],
        "value/_kernel": [32, 4, 8],
        "value/bias": [4, 8],
        "attention_output/_kernel": [4, 8, 32],
        "attention_output/bias": [32],
        "attention_layer_norm/gamma": [32],
        "attention_layer_norm/beta": [32],
        "intermediate/_kernel": [32, 48],
        "intermediate/bias": [48],
        "output_dense/_kernel": [48, 32],
        "output_dense/bias": [32],
        "output_layer_norm/gamma": [32],
        "output_layer_norm/beta": [32],
    }
    expected = {f"layer_0/{name}": shape for name, shape in layer_0.items()}
    expected.update(
        {
            "_CHECKPOINTABLE_OBJECT_GRAPH": [],
            "save_counter": [],
            "model/encoder/embeddings/word_embeddings/_embeddings": [97, 32],
            "model/encoder/embeddings/token_type_embeddings/_embeddings": [2, 32],
            "model/encoder/embeddings/position_embeddings": [24, 32],
            "model/encoder/embeddings/layer_norm/gamma": [32],
            "model/encoder/embeddings/layer_norm/beta": [32],
            "model/encoder/pooler/_kernel": [32, 32],
            "model/encoder/pooler/bias": [32],
            "model/span_head/_kernel": [32, 2],
            "model/span_head/bias": [2],
        }
    )
    assert keys == expected


# ------------------------------------------------------- checkpoint detection
def _train_steps(model, optimizer, steps):
    """`steps` real optimizer updates of the pretraining model on random ids."""
    rng = np.random.default_rng(0)
    inputs = {
        "input_ids": rng.integers(1, TINY["vocab_size"], (2, 8)).astype(np.int32),
        "input_mask": np.ones((2, 8), np.int32),
        "segment_ids": np.zeros((2, 8), np.int32),
        "masked_lm_positions": np.array([[1, 4], [2, 6]], np.int32),
    }
    train_steps(model, optimizer, inputs, steps)


@pytest.fixture(scope="module")
def project_checkpoints(tmp_path_factory):
    """Tiny checkpoints of every kind, written as the trainers and writers of this project do.

    pretraining: `tf.train.Checkpoint(model, optimizer, dropout_seeds)` after 3 updates, with
        the `phase_config.json` of run_pretraining beside it (no other config file);
    squad: a fine-tuned `tf.train.Checkpoint(model=squad_model)` and its bert_config.json;
    google: a TF1 name-based checkpoint with bert_config.json and vocab.txt.
    """
    root = tmp_path_factory.mktemp("kinds")
    config = bert.BertConfig(**TINY)
    pretraining = bert.build_pretraining_model(config)
    optimizer = optimization.create_optimizer("lamb", 1e-3)
    _train_steps(pretraining, optimizer, 3)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(
            model=pretraining,
            optimizer=optimizer,
            dropout_seeds=bert.dropout_seed_states(pretraining),
        ),
        str(root / "pretraining"),
        max_to_keep=2,
        step_counter=optimizer.iterations,
    )
    manager.save(checkpoint_number=optimizer.iterations)
    (root / "pretraining" / checkpoints.PHASE_CONFIG).write_text(
        json.dumps({"phase": 1, "bert_config": config.to_dict(), "schedule_step_offset": 0})
    )

    squad = bert.build_squad_model(config)
    tf.train.CheckpointManager(
        tf.train.Checkpoint(model=squad), str(root / "squad"), max_to_keep=1
    ).save(checkpoint_number=5)
    config.to_json_file(root / "squad" / "bert_config.json")

    google_model = bert.build_pretraining_model(config)
    bert.save_tf1_checkpoint(google_model, config, root / "google")
    (root / "google" / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n")
    (root / "empty").mkdir()
    return {
        "root": root,
        "config": config,
        "pretraining": pretraining,
        "squad": squad,
        "google": google_model,
    }


def test_object_checkpoint_finds_project_checkpoints_only(project_checkpoints, minilm_dir):
    root = project_checkpoints["root"]
    prefix, graph = checkpoints.object_checkpoint(root / "pretraining")
    assert prefix == str(root / "pretraining" / "ckpt-3")
    assert {"encoder", "mlm_head", "nsp_head"} <= graph["model"]
    assert "span_head" not in graph["model"]
    assert {"model", "optimizer", "dropout_seeds"} <= set(graph)
    assert checkpoints.object_checkpoint(prefix)[0] == prefix  # a ckpt-N prefix works too

    prefix, graph = checkpoints.object_checkpoint(root / "squad")
    assert prefix == str(root / "squad" / "ckpt-5")
    assert {"encoder", "span_head"} <= graph["model"] and "optimizer" not in graph

    # Name-based (Google) and Hugging Face checkpoints, and nothing at all.
    for path in (
        root / "google",
        root / "google" / "bert_model.ckpt",
        minilm_dir,
        root / "empty",
        root / "pretraining" / "ckpt-99",
    ):
        assert checkpoints.object_checkpoint(path) == (None, None), path


def test_checkpoint_dir_of_directories_and_prefixes(project_checkpoints):
    root = project_checkpoints["root"]
    assert checkpoints.checkpoint_dir(root / "squad") == str(root / "squad")
    assert checkpoints.checkpoint_dir(str(root / "squad" / "ckpt-5")) == str(root / "squad")
    assert checkpoints.checkpoint_dir(root / "google" / "bert_model.ckpt") == str(root / "google")


def test_resolve_config_from_each_kind(project_checkpoints, minilm_dir, shared_data, tmp_path):
    root, config = project_checkpoints["root"], project_checkpoints["config"]
    # phase_config.json of run_pretraining, from the directory or a ckpt-N prefix in it.
    assert checkpoints.resolve_config(str(root / "pretraining")) == config
    assert checkpoints.resolve_config(str(root / "pretraining" / "ckpt-3")) == config
    assert checkpoints.resolve_config(str(root / "squad" / "ckpt-5")) == config
    assert checkpoints.resolve_config(str(root / "google" / "bert_model.ckpt")) == config
    minilm = checkpoints.resolve_config(str(minilm_dir))
    raw = json.loads((shared_data / "reference" / "minilm_config.json").read_text())
    assert (minilm.hidden_size, minilm.num_hidden_layers, minilm.intermediate_size) == (
        raw["hidden_size"],
        raw["num_hidden_layers"],
        raw["intermediate_size"],
    )
    # An explicit file wins over the directory's.
    other = bert.BertConfig(**dict(TINY, intermediate_size=64))
    other.to_json_file(tmp_path / "other.json")
    assert checkpoints.resolve_config(str(root / "squad"), str(tmp_path / "other.json")) == other
    assert checkpoints.resolve_config(None, str(tmp_path / "other.json")) == other
    # Google's and Hugging Face's files come before phase_config.json.
    both = tmp_path / "both"
    shutil.copytree(root / "pretraining", both)
    other.to_json_file(both / "bert_config.json")
    assert checkpoints.resolve_config(str(both)) == other

    with pytest.raises(FileNotFoundError, match=r"empty: no bert_config.json, config.json or "):
        checkpoints.resolve_config(str(root / "empty"))
    with pytest.raises(ValueError, match="--bert_config_file"):
        checkpoints.resolve_config(None)


def test_resolve_vocab_file(project_checkpoints, minilm_dir, tmp_path):
    root = project_checkpoints["root"]
    assert checkpoints.resolve_vocab_file("my_vocab.txt", str(minilm_dir)) == "my_vocab.txt"
    assert checkpoints.resolve_vocab_file(None, str(minilm_dir)) == str(minilm_dir / "vocab.txt")
    assert checkpoints.resolve_vocab_file(None, str(root / "google" / "bert_model.ckpt")) == str(
        root / "google" / "vocab.txt"
    )
    for init_checkpoint in (str(root / "pretraining"), None):
        with pytest.raises(ValueError, match="--vocab_file is required"):
            checkpoints.resolve_vocab_file(None, init_checkpoint)


def _assert_same_weights(got, expected):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert a.path == b.path
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_initialize_from_pretraining_squad_and_google_checkpoints(project_checkpoints):
    root, config = project_checkpoints["root"], project_checkpoints["config"]
    pretraining = project_checkpoints["pretraining"]

    model = bert.build_squad_model(config)
    span_head = [w.numpy() for w in model.span_head.weights]
    what = checkpoints.initialize_from_checkpoint(model, str(root / "pretraining"))
    assert what == f"pretrained encoder from {root / 'pretraining' / 'ckpt-3'}"
    _assert_same_weights(model.encoder.weights, pretraining.encoder.weights)
    for before, after in zip(span_head, model.span_head.weights):
        np.testing.assert_array_equal(before, after.numpy())  # no span head there: left as is

    model = bert.build_squad_model(config)
    what = checkpoints.initialize_from_checkpoint(model, str(root / "squad"))
    assert what.startswith("fine-tuned SQuAD model (encoder + span head) from ")
    _assert_same_weights(model.weights, project_checkpoints["squad"].weights)

    model = bert.build_squad_model(config)
    what = checkpoints.initialize_from_checkpoint(model, str(root / "google"))
    assert what == f"pretrained weights from {root / 'google'}"
    _assert_same_weights(model.encoder.weights, project_checkpoints["google"].encoder.weights)


def test_initialize_from_hugging_face_matches_reference(minilm_dir, batch_a):
    model = bert.build_squad_model(checkpoints.resolve_config(str(minilm_dir)))
    what = checkpoints.initialize_from_checkpoint(model, str(minilm_dir))
    assert what == f"pretrained weights from {minilm_dir}"
    _assert_matches_reference(model.encoder, batch_a)


def test_initialize_errors_name_the_checkpoint(project_checkpoints, tmp_path):
    root = project_checkpoints["root"]
    wrong = bert.build_squad_model(bert.BertConfig(**dict(TINY, intermediate_size=64)))
    with pytest.raises(ValueError, match=r"ckpt-3: cannot restore the pretrained encoder: .*48"):
        checkpoints.initialize_from_checkpoint(wrong, str(root / "pretraining"))

    foreign = tf.train.Checkpoint(weights=tf.Variable([1.0])).save(str(tmp_path / "foreign"))
    model = bert.build_squad_model(project_checkpoints["config"])
    with pytest.raises(ValueError, match=r"foreign-1: not a checkpoint of this project.*weights"):
        checkpoints.initialize_from_checkpoint(model, foreign)


def test_optimizer_step_in_checkpoint(project_checkpoints):
    root = project_checkpoints["root"]
    assert checkpoints.optimizer_step_in_checkpoint(str(root / "pretraining")) == 3
    assert checkpoints.optimizer_step_in_checkpoint(str(root / "pretraining" / "ckpt-3")) == 3
    with pytest.raises(ValueError, match="ckpt-5: no optimizer iteration counter"):
        checkpoints.optimizer_step_in_checkpoint(str(root / "squad"))
