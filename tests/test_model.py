"""Tests of bert.modeling: config, layers and models."""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import small_vocab_config

import bert
from bert.modeling import layers as bert_layers


def _inputs(batch=3, seq=16, vocab=97, positions=4, seed=0):
    """Random ids; rows after the first are padded (input_mask 0)."""
    rng = np.random.default_rng(seed)
    lengths = [seq] + list(rng.integers(seq // 2, seq, size=batch - 1))
    mask = np.arange(seq)[None, :] < np.array(lengths)[:, None]
    return {
        "input_ids": (rng.integers(1, vocab, (batch, seq)) * mask).astype(np.int32),
        "input_mask": mask.astype(np.int32),
        "segment_ids": (np.arange(seq)[None, :] >= seq // 3).astype(np.int32).repeat(batch, 0)
        * mask.astype(np.int32),
        "masked_lm_positions": np.sort(
            rng.integers(0, seq // 2, (batch, positions)), axis=1
        ).astype(np.int32),
    }


def _encoder_inputs(inputs):
    return {k: inputs[k] for k in ("input_ids", "input_mask", "segment_ids")}


def _expected_params(config, pooler=True):
    """Closed-form parameter count of the BERT encoder."""
    h, i = config.hidden_size, config.intermediate_size
    embeddings = (
        config.vocab_size + config.max_position_embeddings + config.type_vocab_size
    ) * h + 2 * h
    layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 2 * 2 * h
    return embeddings + config.num_hidden_layers * layer + (h * h + h if pooler else 0)


# ------------------------------------------------------------------ config
def test_presets_match_the_published_sizes():
    sizes = {
        name: (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size)
        for name in ("tiny", "mini", "small", "medium", "base", "large")
        for c in [bert.BertConfig.preset(name)]
    }
    assert sizes == {
        "tiny": (2, 128, 2, 512),
        "mini": (4, 256, 4, 1024),
        "small": (4, 512, 8, 2048),
        "medium": (8, 512, 8, 2048),
        "base": (12, 768, 12, 3072),
        "large": (24, 1024, 16, 4096),
    }
    large = bert.BertConfig.preset("large")
    assert (large.vocab_size, large.max_position_embeddings, large.type_vocab_size) == (
        30522,
        512,
        2,
    )


def test_config_reads_google_and_hugging_face_files(tmp_path, shared_data):
    google = {
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": 768,
        "initializer_range": 0.02,
        "intermediate_size": 3072,
        "max_position_embeddings": 512,
        "num_attention_heads": 12,
        "num_hidden_layers": 12,
        "type_vocab_size": 2,
        "vocab_size": 30522,
    }
    (tmp_path / "bert_config.json").write_text(json.dumps(google))
    config = bert.BertConfig.from_json_file(tmp_path / "bert_config.json")
    assert config == bert.BertConfig.preset("base")
    assert config.layer_norm_eps == 1e-12

    hf_path = shared_data / "reference" / "minilm_config.json"
    hf = bert.BertConfig.from_json_file(hf_path)
    raw = json.loads(hf_path.read_text())
    for field, value in hf.to_dict().items():
        assert raw[field] == value, field

    config.to_json_file(tmp_path / "out.json")
    assert bert.BertConfig.from_json_file(tmp_path / "out.json") == config
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"hidden_act": "swishy"}, "hidden_act"),
        ({"hidden_size": "768"}, "hidden_size"),
        ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob"),
        ({"num_attention_heads": 7}, "num_attention_heads"),
        ({"vocab_size": None}, "vocab_size"),
    ],
)
def test_bad_config_field_names_file_and_field(tmp_path, change, field):
    values = bert.BertConfig.preset("base").to_dict()
    values.update(change)
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps(values))
    with pytest.raises(ValueError) as error:
        bert.BertConfig.from_json_file(path)
    assert str(path) in str(error.value)
    assert f"'{field}'" in str(error.value)


def test_missing_config_field_names_file_and_field(tmp_path):
    values = bert.BertConfig.preset("base").to_dict()
    del values["num_hidden_layers"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(values))
    with pytest.raises(ValueError, match=r"config\.json.*'num_hidden_layers'"):
        bert.BertConfig.from_json_file(path)


# ---------------------------------------------------------------- encoder
PUBLISHED_PARAMETERS = {"base": 109_482_240, "large": 335_141_888}


def test_parameter_counts_of_built_encoders_and_the_published_sizes():
    """The closed form counts what the code builds (small presets, built here) and gives the
    published sizes of base and large (built by the slow test below)."""
    for name in ("tiny", "mini"):
        config = bert.BertConfig.preset(name)
        assert bert.build_encoder(config).count_params() == _expected_params(config), name
    for name, expected in PUBLISHED_PARAMETERS.items():
        assert _expected_params(bert.BertConfig.preset(name)) == expected, name


@pytest.mark.slow
def test_exact_parameter_counts_of_base_and_large():
    for name, expected in PUBLISHED_PARAMETERS.items():
        config = bert.BertConfig.preset(name)
        encoder = bert.build_encoder(config)
        assert encoder.count_params() == expected == _expected_params(config)
        del encoder
        keras.backend.clear_session()


def test_activations_match_their_formulas():
    x = np.linspace(-5, 5, 101).astype(np.float32)
    erf = np.vectorize(math.erf)
    exact = 0.5 * x * (1 + erf(x / np.sqrt(2)))
    tanh = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(bert_layers.get_activation("gelu")(x), exact, atol=1e-6)
    np.testing.assert_allclose(bert_layers.get_activation("gelu_new")(x), tanh, atol=1e-6)
    assert np.abs(exact - tanh).max() > 1e-4  # the two really differ


def test_outputs_ignore_padded_positions():
    """Changing ids under input_mask == 0 must not change the valid rows."""
    encoder = bert.build_encoder(small_vocab_config())
    inputs = _encoder_inputs(_inputs())
    changed = dict(inputs)
    pad = inputs["input_mask"] == 0
    assert pad.any()
    changed["input_ids"] = np.where(pad, 7, inputs["input_ids"]).astype(np.int32)
    a = encoder(inputs)["sequence_output"].numpy()
    b = encoder(changed)["sequence_output"].numpy()
    np.testing.assert_allclose(a[~pad], b[~pad], atol=1e-5)
    assert np.abs(a[pad] - b[pad]).max() > 1e-3


def test_dropout_only_when_training():
    encoder = bert.build_encoder(small_vocab_config())
    inputs = _encoder_inputs(_inputs())
    default = encoder(inputs)["sequence_output"].numpy()
    inference = encoder(inputs, training=False)["sequence_output"].numpy()
    train_1 = encoder(inputs, training=True)["sequence_output"].numpy()
    train_2 = encoder(inputs, training=True)["sequence_output"].numpy()
    np.testing.assert_array_equal(default, inference)
    assert np.abs(train_1 - inference).max() > 1e-3
    assert np.abs(train_1 - train_2).max() > 1e-3


def test_dropout_layer_rate_and_scale():
    layer = bert_layers.Dropout(0.1, seed=1)
    x = tf.ones([400, 500])
    np.testing.assert_array_equal(layer(x), x)  # inference: identity
    for run in (
        lambda v: layer(v, training=True),
        tf.function(lambda v: layer(v, training=True), jit_compile=True),
    ):
        y = run(x).numpy()
        dropped = (y == 0).mean()
        assert abs(dropped - 0.1) < 0.005  # 200k draws: 6 sigma is 0.004
        np.testing.assert_allclose(y[y != 0], 1 / 0.9, rtol=1e-6)
    assert not np.array_equal(
        layer(x, training=True), layer(x, training=True)
    )  # a new mask per call


def _encoder_outputs(model, inputs):
    """(sequence_output, pooled_output) of the model's encoder as numpy."""
    outputs = model.encoder(_encoder_inputs(inputs))
    seq = outputs["sequence_output"].numpy()
    pooled = outputs["pooled_output"].numpy()
    return seq, pooled


def _layer_norm(x, gamma, beta, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def test_pretraining_heads_match_numpy():
    config = small_vocab_config()
    model = bert.build_pretraining_model(config)
    inputs = _inputs()
    out = model(inputs)
    assert out["mlm_logits"].dtype == tf.float32
    assert out["nsp_logits"].dtype == tf.float32
    seq, pooled = _encoder_outputs(model, inputs)

    head = model.mlm_head
    gathered = np.take_along_axis(seq, inputs["masked_lm_positions"][..., None], axis=1)
    h = gathered @ head.transform.kernel.numpy() + head.transform.bias.numpy()
    h = bert_layers.get_activation("gelu")(h).numpy()
    h = _layer_norm(
        h, head.layer_norm.gamma.numpy(), head.layer_norm.beta.numpy(), config.layer_norm_eps
    )
    table = bert.get_word_embeddings(model.encoder).embeddings.numpy()
    mlm = h @ table.T + head.output_bias.numpy()
    np.testing.assert_allclose(out["mlm_logits"], mlm, atol=1e-4)

    nsp = pooled @ model.nsp_head.kernel.numpy() + model.nsp_head.bias.numpy()
    np.testing.assert_allclose(out["nsp_logits"], nsp, atol=1e-5)

    # The output matrix is the word-embedding table itself, counted once.
    ids = [id(v) for v in model.trainable_variables]
    assert len(ids) == len(set(ids))
    assert model.count_params() == (
        _expected_params(config)
        + (config.hidden_size + 3) * config.hidden_size
        + config.vocab_size
        + 2 * config.hidden_size
        + 2
    )


def test_pretraining_last_layer_on_read_rows_equals_the_full_encoder():
    """The pretraining model runs its last layer on [CLS] + masked rows only:
    same logits and same gradients as the full encoder followed by a gather,
    with padded rows and repeated positions (padding predictions point at 0)."""
    model = bert.build_pretraining_model(small_vocab_config())
    inputs = _inputs(batch=3, seq=16, positions=5, seed=3)
    inputs["masked_lm_positions"][1, 3:] = 0
    layer = model.encoder.transformer_layers[-1]
    reduced = layer.compute_output_shape((3, 16, 32), (3, 16), (3, 6))
    assert tuple(reduced) == (3, 6, 32)

    def full_path(x):
        outputs = model.encoder(_encoder_inputs(x))
        mlm = model.mlm_head(outputs["sequence_output"], x["masked_lm_positions"])
        return {"mlm_logits": mlm, "nsp_logits": model.nsp_head(outputs["pooled_output"])}

    results = []
    for forward in (model, full_path):
        with tf.GradientTape() as tape:
            out = forward(inputs)
            loss = tf.reduce_sum(out["mlm_logits"] ** 2) + tf.reduce_sum(out["nsp_logits"] ** 2)
        results.append((out, tape.gradient(loss, model.trainable_variables)))
    (out, grads), (expected, expected_grads) = results
    for key in ("mlm_logits", "nsp_logits"):
        np.testing.assert_allclose(out[key], expected[key], rtol=1e-5, atol=1e-5)
    grads = [tf.convert_to_tensor(g).numpy() for g in grads]
    expected_grads = [tf.convert_to_tensor(g).numpy() for g in expected_grads]
    # Key biases get a zero gradient (softmax is shift-invariant): rounding
    # noise there, so the absolute tolerance is relative to the largest gradient.
    scale = max(np.abs(e).max() for e in expected_grads)
    for v, g, e in zip(model.trainable_variables, grads, expected_grads):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6 * scale, err_msg=v.path)


def test_squad_head_matches_numpy():
    model = bert.build_squad_model(small_vocab_config())
    inputs = _encoder_inputs(_inputs())
    out = model(inputs)
    seq, _ = _encoder_outputs(model, inputs)
    logits = seq @ model.span_head.kernel.numpy() + model.span_head.bias.numpy()
    assert out["start_logits"].dtype == tf.float32
    np.testing.assert_allclose(out["start_logits"], logits[..., 0], atol=1e-5)
    np.testing.assert_allclose(out["end_logits"], logits[..., 1], atol=1e-5)


def _mlm_nsp_loss(model, inputs, training):
    out = model(inputs, training=training)
    mlm_ids = tf.gather(inputs["input_ids"], inputs["masked_lm_positions"], batch_dims=1)
    mlm = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(mlm_ids, out["mlm_logits"]))
    nsp = tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(
            tf.zeros([tf.shape(mlm_ids)[0]], tf.int32), out["nsp_logits"]
        )
    )
    return mlm + nsp


def test_forward_and_backward_compile_with_xla():
    model = bert.build_pretraining_model(
        bert.BertConfig.preset("tiny", vocab_size=97, max_position_embeddings=32)
    )
    inputs = {k: tf.constant(v) for k, v in _inputs().items()}

    @tf.function(jit_compile=True)
    def step(inputs, training):
        with tf.GradientTape() as tape:
            loss = _mlm_nsp_loss(model, inputs, training)
        return loss, tape.gradient(loss, model.trainable_variables)

    loss_xla, grads = step(inputs, training=False)
    loss_eager = _mlm_nsp_loss(model, inputs, training=False)
    np.testing.assert_allclose(loss_xla, loss_eager, rtol=1e-5)
    assert len(grads) == len(model.trainable_variables)
    assert all(g is not None and np.isfinite(tf.convert_to_tensor(g).numpy()).all() for g in grads)

    loss_train, grads = step(inputs, training=True)  # dropout under XLA
    assert np.isfinite(loss_train.numpy())
    assert abs(float(loss_train) - float(loss_xla)) > 1e-6
    assert all(np.isfinite(tf.convert_to_tensor(g).numpy()).all() for g in grads)


def _relative_rms_error(got, expected):
    """RMS of the difference over RMS of `expected`: the error relative to the values' scale."""
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    return float(np.sqrt(np.mean((got - expected) ** 2) / np.mean(expected**2)))


# bfloat16 keeps 8 significant bits: rounding moves a value by up to 2^-8 of itself. Two layers
# and a head round their inputs a few times, so their outputs stay within a few times that of
# float32 (1-2x measured over 30 initializations); float32 alone would differ by about 2^-23.
BF16_ROUNDING = 2.0**-8


def test_mixed_bfloat16_policy():
    keras.utils.set_random_seed(0)
    config = small_vocab_config()
    inputs = _inputs()
    reference = bert.build_pretraining_model(config)
    expected = reference(inputs)
    expected_encoder = reference.encoder(_encoder_inputs(inputs))
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        model = bert.build_pretraining_model(config)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    model.set_weights(reference.get_weights())
    assert all(v.dtype == "float32" for v in model.weights)

    seq = model.encoder(_encoder_inputs(inputs))["sequence_output"]
    assert seq.dtype == tf.bfloat16
    out = model(inputs)
    assert out["mlm_logits"].dtype == out["nsp_logits"].dtype == tf.float32
    for key, got, want in (
        ("sequence_output", tf.cast(seq, tf.float32), expected_encoder["sequence_output"]),
        ("mlm_logits", out["mlm_logits"], expected["mlm_logits"]),
    ):
        got, want = got.numpy(), want.numpy()
        error = _relative_rms_error(got, want)
        # A few roundings of the values' scale, and more than float32 alone would give.
        assert BF16_ROUNDING / 8 < error < 4 * BF16_ROUNDING, (key, error / BF16_ROUNDING)
        peak = np.abs(want).max()
        assert np.abs(got - want).max() < 8 * BF16_ROUNDING * peak, key
    # An NSP logit of an untrained model is a sum of 32 terms that nearly cancel, so its
    # rounding error is relative to the size of those terms, not to the logit's.
    terms = np.abs(expected_encoder["pooled_output"].numpy()) @ np.abs(
        reference.nsp_head.kernel.numpy()
    ) + np.abs(reference.nsp_head.bias.numpy())
    nsp_error = np.abs(out["nsp_logits"].numpy() - expected["nsp_logits"].numpy())
    assert (nsp_error < 4 * BF16_ROUNDING * terms).all(), (nsp_error / terms).max()

    @tf.function(jit_compile=True)
    def step(inputs):
        with tf.GradientTape() as tape:
            loss = _mlm_nsp_loss(model, inputs, training=True)
        return loss, tape.gradient(loss, model.trainable_variables)

    loss, grads = step({k: tf.constant(v) for k, v in inputs.items()})
    assert np.isfinite(loss.numpy())
    assert all(
        g.dtype == tf.float32 and np.isfinite(tf.convert_to_tensor(g).numpy()).all() for g in grads
    )
