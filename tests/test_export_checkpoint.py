"""Tests of bert.checkpoints.export (python -m bert.export_checkpoint): every source kind x
both formats, round trip and layouts.

Independent truths: the `transformers` tensor names and PyTorch shapes of a 1-layer BERT and
Google's TF1 names, written out below; the real MiniLM `model.safetensors` and its reference
output; and the heads recomputed in numpy from the exported arrays with PyTorch's
(`x @ W.T + b`) and Google's (`matmul(x, output_weights, transpose_b=True)`) conventions.
"""

import json
import logging
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import safetensors
import tensorflow as tf
from conftest import train_steps
from safetensors import numpy as safetensors_numpy

import bert
import optimization
from bert import checkpoints
from bert.checkpoints.export import ExportOptions, export
from bert.modeling.config import SIZE_FIELDS

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One layer, H=32, A=4, I=48, V=97, 24 positions, 2 token types.
ONE_LAYER = {
    "vocab_size": 97,
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 4,
    "intermediate_size": 48,
    "max_position_embeddings": 24,
    "type_vocab_size": 2,
}
H, FF, V, P = 32, 48, 97, 24

# What `transformers`' BertModel expects (under the `bert.` prefix of the task models), with
# PyTorch shapes: nn.Linear weights [out, in], nn.Embedding weights [num, dim].
HF_ENCODER = {
    "bert.embeddings.word_embeddings.weight": (V, H),
    "bert.embeddings.position_embeddings.weight": (P, H),
    "bert.embeddings.token_type_embeddings.weight": (2, H),
    "bert.embeddings.LayerNorm.weight": (H,),
    "bert.embeddings.LayerNorm.bias": (H,),
    "bert.encoder.layer.0.attention.self.query.weight": (H, H),
    "bert.encoder.layer.0.attention.self.query.bias": (H,),
    "bert.encoder.layer.0.attention.self.key.weight": (H, H),
    "bert.encoder.layer.0.attention.self.key.bias": (H,),
    "bert.encoder.layer.0.attention.self.value.weight": (H, H),
    "bert.encoder.layer.0.attention.self.value.bias": (H,),
    "bert.encoder.layer.0.attention.output.dense.weight": (H, H),
    "bert.encoder.layer.0.attention.output.dense.bias": (H,),
    "bert.encoder.layer.0.attention.output.LayerNorm.weight": (H,),
    "bert.encoder.layer.0.attention.output.LayerNorm.bias": (H,),
    "bert.encoder.layer.0.intermediate.dense.weight": (FF, H),
    "bert.encoder.layer.0.intermediate.dense.bias": (FF,),
    "bert.encoder.layer.0.output.dense.weight": (H, FF),
    "bert.encoder.layer.0.output.dense.bias": (H,),
    "bert.encoder.layer.0.output.LayerNorm.weight": (H,),
    "bert.encoder.layer.0.output.LayerNorm.bias": (H,),
    "bert.pooler.dense.weight": (H, H),
    "bert.pooler.dense.bias": (H,),
}
# BertForPreTraining's heads (the decoder is tied to the word embeddings and its bias to
# cls.predictions.bias; both are written out too).
HF_PRETRAINING = dict(
    HF_ENCODER,
    **{
        "cls.predictions.bias": (V,),
        "cls.predictions.transform.dense.weight": (H, H),
        "cls.predictions.transform.dense.bias": (H,),
        "cls.predictions.transform.LayerNorm.weight": (H,),
        "cls.predictions.transform.LayerNorm.bias": (H,),
        "cls.predictions.decoder.weight": (V, H),
        "cls.predictions.decoder.bias": (V,),
        "cls.seq_relationship.weight": (2, H),
        "cls.seq_relationship.bias": (2,),
    },
)
# BertForQuestionAnswering builds its BertModel with add_pooling_layer=False: no pooler (a file
# with one makes from_pretrained print an UNEXPECTED-keys table). Row 0 of qa_outputs gives the
# start logits, row 1 the end logits.
HF_SQUAD = dict(
    {k: v for k, v in HF_ENCODER.items() if not k.startswith("bert.pooler.")},
    **{"qa_outputs.weight": (2, H), "qa_outputs.bias": (2,)},
)

# Google's TF1 names and shapes (google-research/bert modeling.py, run_pretraining.py,
# run_squad.py).
_G0 = "bert/encoder/layer_0"
GOOGLE_ENCODER = {
    "bert/embeddings/word_embeddings": (V, H),
    "bert/embeddings/position_embeddings": (P, H),
    "bert/embeddings/token_type_embeddings": (2, H),
    "bert/embeddings/LayerNorm/gamma": (H,),
    "bert/embeddings/LayerNorm/beta": (H,),
    f"{_G0}/attention/self/query/kernel": (H, H),
    f"{_G0}/attention/self/query/bias": (H,),
    f"{_G0}/attention/self/key/kernel": (H, H),
    f"{_G0}/attention/self/key/bias": (H,),
    f"{_G0}/attention/self/value/kernel": (H, H),
    f"{_G0}/attention/self/value/bias": (H,),
    f"{_G0}/attention/output/dense/kernel": (H, H),
    f"{_G0}/attention/output/dense/bias": (H,),
    f"{_G0}/attention/output/LayerNorm/gamma": (H,),
    f"{_G0}/attention/output/LayerNorm/beta": (H,),
    f"{_G0}/intermediate/dense/kernel": (H, FF),
    f"{_G0}/intermediate/dense/bias": (FF,),
    f"{_G0}/output/dense/kernel": (FF, H),
    f"{_G0}/output/dense/bias": (H,),
    f"{_G0}/output/LayerNorm/gamma": (H,),
    f"{_G0}/output/LayerNorm/beta": (H,),
    "bert/pooler/dense/kernel": (H, H),
    "bert/pooler/dense/bias": (H,),
}
GOOGLE_PRETRAINING = dict(
    GOOGLE_ENCODER,
    **{
        "cls/predictions/transform/dense/kernel": (H, H),
        "cls/predictions/transform/dense/bias": (H,),
        "cls/predictions/transform/LayerNorm/gamma": (H,),
        "cls/predictions/transform/LayerNorm/beta": (H,),
        "cls/predictions/output_bias": (V,),
        "cls/seq_relationship/output_weights": (2, H),
        "cls/seq_relationship/output_bias": (2,),
    },
)
GOOGLE_SQUAD = dict(
    GOOGLE_ENCODER, **{"cls/squad/output_weights": (2, H), "cls/squad/output_bias": (2,)}
)

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(5, V)]


# ------------------------------------------------------------------ sources
def _randomize(model, seed):
    """Moves every weight off its initial value (zero biases, unit LayerNorm scales)."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        noise = rng.normal(0.0, 0.1, weight.shape).astype(np.float32)
        weight.assign(weight.numpy() + noise)


def _tiny_inputs(pretraining=False):
    rng = np.random.default_rng(7)
    inputs = {
        "input_ids": rng.integers(0, V, (2, 10)).astype(np.int32),
        "input_mask": np.array([[1] * 10, [1] * 7 + [0] * 3], np.int32),
        "segment_ids": np.array([[0] * 5 + [1] * 5, [0] * 4 + [1] * 6], np.int32),
    }
    if pretraining:
        inputs["masked_lm_positions"] = np.array([[1, 4, 8], [2, 3, 6]], np.int32)
    return inputs


@pytest.fixture(scope="module")
def sources(tmp_path_factory, minilm_dir):
    """name -> (init_checkpoint, model holding the source's weights, vocab_file).

    pretraining: a run_pretraining model_dir (`tf.train.Checkpoint(model, optimizer,
        dropout_seeds)` after two optimizer updates, phase_config.json, no vocab.txt);
    squad: a run_squad output_dir (`ckpt-N` of `tf.train.Checkpoint(model=squad_model)`,
        bert_config.json, vocab.txt);
    google: a Google directory with heads, written by `save_tf1_checkpoint`, with vocab.txt;
    minilm: the real Hugging Face MiniLM directory.
    """
    root = tmp_path_factory.mktemp("sources")
    config = bert.BertConfig(**ONE_LAYER)
    vocab_file = root / "vocab.txt"
    vocab_file.write_text("\n".join(VOCAB) + "\n")

    pretraining = bert.build_pretraining_model(config)
    _randomize(pretraining, 1)
    optimizer = optimization.create_optimizer("lamb", 1e-3)
    train_steps(pretraining, optimizer, _tiny_inputs(pretraining=True), 2)
    tf.train.CheckpointManager(
        tf.train.Checkpoint(
            model=pretraining,
            optimizer=optimizer,
            dropout_seeds=bert.dropout_seed_states(pretraining),
        ),
        str(root / "pretraining"),
        max_to_keep=2,
        step_counter=optimizer.iterations,
    ).save(checkpoint_number=optimizer.iterations)
    (root / "pretraining" / checkpoints.PHASE_CONFIG).write_text(
        json.dumps({"phase": 1, "bert_config": config.to_dict(), "schedule_step_offset": 0})
    )

    squad = bert.build_squad_model(config)
    _randomize(squad, 2)
    tf.train.CheckpointManager(
        tf.train.Checkpoint(model=squad), str(root / "squad"), max_to_keep=1
    ).save(checkpoint_number=11)
    config.to_json_file(root / "squad" / "bert_config.json")
    (root / "squad" / "vocab.txt").write_text(vocab_file.read_text())

    google = bert.build_pretraining_model(config)
    _randomize(google, 3)
    bert.save_tf1_checkpoint(google, config, root / "google")
    (root / "google" / "vocab.txt").write_text(vocab_file.read_text())

    _, minilm = bert.load_pretrained(minilm_dir)
    return {
        "pretraining": (root / "pretraining", pretraining, vocab_file),
        "squad": (root / "squad", squad, root / "squad" / "vocab.txt"),
        "google": (root / "google", google, root / "google" / "vocab.txt"),
        "minilm": (minilm_dir, minilm, minilm_dir / "vocab.txt"),
    }


@pytest.fixture(scope="module")
def minilm_batch(shared_data):
    data = np.load(shared_data / "reference" / "minilm_batch_a.npz")
    inputs = {
        "input_ids": data["input_ids"],
        "input_mask": data["attention_mask"],
        "segment_ids": data["token_type_ids"],
    }
    return inputs, data["last_hidden_state"]


def _outputs(model, inputs):
    """Every output of the model (and of its encoder), as numpy arrays."""
    encoder = getattr(model, "encoder", model)
    encoder_inputs = {k: inputs[k] for k in ("input_ids", "input_mask", "segment_ids")}
    outputs = {k: v.numpy() for k, v in encoder(encoder_inputs, training=False).items()}
    if model is not encoder:
        outputs.update({k: v.numpy() for k, v in model(inputs, training=False).items()})
    return outputs


def _export(init_checkpoint, output_dir, fmt, **kwargs):
    options = ExportOptions(
        init_checkpoint=str(init_checkpoint), output_dir=str(output_dir), format=fmt, **kwargs
    )
    return export(options)


# --------------------------------------------------------------- round trip
@pytest.mark.parametrize("fmt", ["huggingface", "tf1"])
@pytest.mark.parametrize("kind", ["pretraining", "squad", "google", "minilm"])
def test_export_then_load_pretrained_gives_identical_outputs(
    sources, minilm_batch, kind, fmt, tmp_path
):
    init_checkpoint, source_model, vocab_file = sources[kind]
    out = tmp_path / "exported"
    restored = _export(init_checkpoint, out, fmt, vocab_file=str(vocab_file))
    assert type(restored.model) is type(source_model)
    # transformers' BertForQuestionAnswering has no pooler, so a SQuAD model exported for it
    # carries none and the fresh model's pooler stays as initialized.
    no_pooler = fmt == "huggingface" and kind == "squad"

    # A fresh model of the same kind, with other random weights, filled from the export.
    config = restored.config
    fresh = {
        bert.BertEncoder: bert.build_encoder,
        bert.BertPretrainingModel: bert.build_pretraining_model,
        bert.BertSquadModel: bert.build_squad_model,
    }[type(source_model)](config)
    loaded_config, encoder = bert.load_pretrained(out, model=fresh)
    assert encoder is getattr(fresh, "encoder", fresh)
    for field in SIZE_FIELDS:
        assert getattr(loaded_config, field) == getattr(config, field)
    assert len(fresh.weights) == len(source_model.weights)
    pooler_weights = {id(w) for w in fresh.encoder.pooler.weights} if no_pooler else set()
    for a, b in zip(fresh.weights, source_model.weights):
        if id(a) in pooler_weights:
            assert not np.array_equal(a.numpy(), b.numpy()), a.path
        else:
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)

    if kind == "minilm":
        inputs, reference = minilm_batch
    else:
        inputs = _tiny_inputs(pretraining=isinstance(source_model, bert.BertPretrainingModel))
    expected, got = _outputs(source_model, inputs), _outputs(fresh, inputs)
    assert set(got) == set(expected)
    for name in set(expected) - ({"pooled_output"} if no_pooler else set()):
        assert np.abs(got[name] - expected[name]).max() <= 1e-6, name
    if kind == "minilm":
        assert np.abs(got["sequence_output"] - reference).max() <= 1e-4

    # The export is itself a source of the same kind, with the same vocabulary.
    assert (out / "vocab.txt").read_bytes() == vocab_file.read_bytes()
    again = checkpoints.restore_model(out)
    assert type(again.model) is type(source_model)
    pooler = {"bert/pooler/dense/kernel", "bert/pooler/dense/bias"}
    assert sorted(again.names) == sorted(set(restored.names) - (pooler if no_pooler else set()))
    # No temporary is left: data.fileio writes `<dir>.tmp-<hex>` (and moves an old directory
    # to `<dir>.old-<hex>`) beside the output; the TF1 writer uses `.tmp-<hex>` inside it.
    assert [p.name for p in tmp_path.iterdir()] == ["exported"]
    assert not [p.name for p in out.rglob("*") if ".tmp-" in p.name or ".old-" in p.name]


# -------------------------------------------------------- Hugging Face layout
def _gelu(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def _layer_norm(x, weight, bias, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def test_huggingface_pretraining_names_shapes_and_head_semantics(sources, tmp_path):
    init_checkpoint, model, vocab_file = sources["pretraining"]
    out = tmp_path / "hf"
    _export(init_checkpoint, out, "huggingface", vocab_file=str(vocab_file))
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "model.safetensors",
        "special_tokens_map.json",
        "tokenizer_config.json",
        "vocab.txt",
    ]
    with safetensors.safe_open(str(out / "model.safetensors"), "numpy") as f:
        assert f.metadata() == {"format": "pt"}  # transformers refuses files without it
    tensors = safetensors_numpy.load_file(str(out / "model.safetensors"))
    assert {k: v.shape for k, v in tensors.items()} == HF_PRETRAINING
    assert all(v.dtype == np.float32 for v in tensors.values())

    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForPreTraining"]
    expected = dict(
        ONE_LAYER,
        model_type="bert",
        hidden_act="gelu",
        layer_norm_eps=1e-12,
        pad_token_id=0,
        position_embedding_type="absolute",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        initializer_range=0.02,
    )
    assert {k: config[k] for k in expected} == expected
    tokenizer = json.loads((out / "tokenizer_config.json").read_text())
    assert tokenizer["tokenizer_class"] == "BertTokenizer"
    assert tokenizer["do_lower_case"] is True
    assert tokenizer["model_max_length"] == P
    special = json.loads((out / "special_tokens_map.json").read_text())
    assert special == {
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
    }

    # The heads computed the PyTorch way from the exported tensors match the model's.
    t = tensors
    np.testing.assert_array_equal(
        t["cls.predictions.decoder.weight"], t["bert.embeddings.word_embeddings.weight"]
    )
    np.testing.assert_array_equal(t["cls.predictions.decoder.bias"], t["cls.predictions.bias"])
    inputs = _tiny_inputs(pretraining=True)
    outputs = model(inputs, training=False)
    encoded = model.encoder(
        {k: inputs[k] for k in ("input_ids", "input_mask", "segment_ids")}, training=False
    )
    pooled = encoded["pooled_output"].numpy()
    nsp = pooled @ t["cls.seq_relationship.weight"].T + t["cls.seq_relationship.bias"]
    np.testing.assert_allclose(nsp, outputs["nsp_logits"].numpy(), atol=1e-5)
    sequence = encoded["sequence_output"].numpy()
    masked = np.take_along_axis(sequence, inputs["masked_lm_positions"][..., None], axis=1)
    x = masked @ t["cls.predictions.transform.dense.weight"].T
    x = _gelu(x + t["cls.predictions.transform.dense.bias"])
    x = _layer_norm(
        x,
        t["cls.predictions.transform.LayerNorm.weight"],
        t["cls.predictions.transform.LayerNorm.bias"],
    )
    mlm = x @ t["cls.predictions.decoder.weight"].T + t["cls.predictions.bias"]
    np.testing.assert_allclose(mlm, outputs["mlm_logits"].numpy(), atol=1e-4)


def test_huggingface_squad_names_and_span_rows(sources, tmp_path):
    init_checkpoint, model, _ = sources["squad"]
    out = tmp_path / "hf"
    _export(init_checkpoint, out, "huggingface", do_lower_case=False)
    tensors = safetensors_numpy.load_file(str(out / "model.safetensors"))
    assert {k: v.shape for k, v in tensors.items()} == HF_SQUAD
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForQuestionAnswering"]
    tokenizer = json.loads((out / "tokenizer_config.json").read_text())
    assert tokenizer["do_lower_case"] is False

    inputs = _tiny_inputs()
    outputs = model(inputs, training=False)
    sequence = model.encoder(inputs, training=False)["sequence_output"].numpy()
    logits = sequence @ tensors["qa_outputs.weight"].T + tensors["qa_outputs.bias"]
    np.testing.assert_allclose(logits[..., 0], outputs["start_logits"].numpy(), atol=1e-5)
    np.testing.assert_allclose(logits[..., 1], outputs["end_logits"].numpy(), atol=1e-5)


def test_huggingface_squad_has_exactly_the_keys_of_bert_for_question_answering(
    sources, tmp_path, caplog
):
    """No pooler, so `from_pretrained` reports no UNEXPECTED keys; the export loads back whole."""
    init_checkpoint, model, _ = sources["squad"]
    out = tmp_path / "hf"
    _export(init_checkpoint, out, "huggingface")
    with safetensors.safe_open(str(out / "model.safetensors"), "numpy") as f:
        keys = set(f.keys())
    assert keys == set(HF_SQUAD)
    assert not [k for k in keys if "pooler" in k]

    # Loaded back, the SQuAD model gives the same logits; only the pooler is left as built.
    fresh = bert.build_squad_model(bert.BertConfig(**ONE_LAYER))
    with caplog.at_level(logging.WARNING, logger="bert.checkpoints"):
        bert.load_pretrained(out, model=fresh)
    assert "['bert/pooler/dense/bias', 'bert/pooler/dense/kernel']" in caplog.text
    assert "not used" not in caplog.text
    inputs = _tiny_inputs()
    expected, got = model(inputs, training=False), fresh(inputs, training=False)
    for name in ("start_logits", "end_logits"):
        np.testing.assert_array_equal(got[name].numpy(), expected[name].numpy(), err_msg=name)

    # Exported again (Hugging Face -> Hugging Face), the key set stays the same.
    again = tmp_path / "again"
    restored = _export(out, again, "huggingface")
    assert isinstance(restored.model, bert.BertSquadModel)
    assert set(safetensors_numpy.load_file(str(again / "model.safetensors"))) == set(HF_SQUAD)


def test_huggingface_minilm_equals_the_original_file(sources, minilm_dir, tmp_path):
    """The real file is the truth for the encoder layout: every tensor comes back bit-exact."""
    out = tmp_path / "hf"
    _export(minilm_dir, out, "huggingface")
    exported = safetensors_numpy.load_file(str(out / "model.safetensors"))
    original = safetensors_numpy.load_file(str(minilm_dir / "model.safetensors"))
    original.pop("embeddings.position_ids")  # a buffer, not a weight
    assert {k.removeprefix("bert.") for k in exported} == set(original)
    assert all(k.startswith("bert.") for k in exported)
    for name, array in exported.items():
        np.testing.assert_array_equal(array, original[name.removeprefix("bert.")], err_msg=name)
    config = json.loads((out / "config.json").read_text())
    reference = json.loads((minilm_dir / "config.json").read_text())
    assert config["architectures"] == ["BertModel"]
    for field in SIZE_FIELDS + ("hidden_act", "layer_norm_eps", "pad_token_id"):
        assert config[field] == reference[field], field


def test_huggingface_export_leaves_out_what_the_source_lacks(sources, tmp_path):
    """A masked-LM-only source (no pooler, no NSP head) exports no made-up weights for them."""
    init_checkpoint, _, vocab_file = sources["pretraining"]
    full = tmp_path / "full"
    _export(init_checkpoint, full, "huggingface", vocab_file=str(vocab_file))
    tensors = safetensors_numpy.load_file(str(full / "model.safetensors"))
    dropped = [k for k in tensors if k.startswith(("bert.pooler.", "cls.seq_relationship."))]
    assert len(dropped) == 4
    masked_lm = tmp_path / "masked_lm"
    masked_lm.mkdir()
    for name in ("config.json", "vocab.txt"):
        (masked_lm / name).write_bytes((full / name).read_bytes())
    safetensors_numpy.save_file(
        {k: v for k, v in tensors.items() if k not in dropped},
        str(masked_lm / "model.safetensors"),
        metadata={"format": "pt"},
    )
    out = tmp_path / "out"
    restored = _export(masked_lm, out, "huggingface")
    assert isinstance(restored.model, bert.BertPretrainingModel)
    exported = safetensors_numpy.load_file(str(out / "model.safetensors"))
    assert set(exported) == set(HF_PRETRAINING) - set(dropped)


# ----------------------------------------------------------------- TF1 layout
def test_tf1_names_shapes_and_head_semantics(sources, tmp_path):
    for kind, expected in (("pretraining", GOOGLE_PRETRAINING), ("squad", GOOGLE_SQUAD)):
        init_checkpoint, model, vocab_file = sources[kind]
        out = tmp_path / kind
        _export(init_checkpoint, out, "tf1", vocab_file=str(vocab_file))
        assert sorted(p.name for p in out.iterdir()) == [
            "bert_config.json",
            "bert_model.ckpt.data-00000-of-00001",
            "bert_model.ckpt.index",
            "vocab.txt",
        ]
        prefix = str(out / "bert_model.ckpt")
        assert {n: tuple(s) for n, s in tf.train.list_variables(prefix)} == expected
        config = json.loads((out / "bert_config.json").read_text())
        assert {k: config[k] for k in ONE_LAYER} == ONE_LAYER

    # Google's run_squad: logits = matmul(sequence, output_weights, transpose_b=True) + bias,
    # start = logits[..., 0], end = logits[..., 1].
    reader = tf.train.load_checkpoint(str(tmp_path / "squad" / "bert_model.ckpt"))
    model = sources["squad"][1]
    inputs = _tiny_inputs()
    sequence = model.encoder(inputs, training=False)["sequence_output"].numpy()
    logits = sequence @ reader.get_tensor("cls/squad/output_weights").T
    logits += reader.get_tensor("cls/squad/output_bias")
    outputs = model(inputs, training=False)
    np.testing.assert_allclose(logits[..., 0], outputs["start_logits"].numpy(), atol=1e-5)
    np.testing.assert_allclose(logits[..., 1], outputs["end_logits"].numpy(), atol=1e-5)

    # Google's run_pretraining: NSP logits = matmul(pooled, output_weights, transpose_b=True).
    reader = tf.train.load_checkpoint(str(tmp_path / "pretraining" / "bert_model.ckpt"))
    model = sources["pretraining"][1]
    inputs = _tiny_inputs(pretraining=True)
    pooled = model.encoder(
        {k: inputs[k] for k in ("input_ids", "input_mask", "segment_ids")}, training=False
    )["pooled_output"].numpy()
    nsp = pooled @ reader.get_tensor("cls/seq_relationship/output_weights").T
    nsp += reader.get_tensor("cls/seq_relationship/output_bias")
    np.testing.assert_allclose(nsp, model(inputs, training=False)["nsp_logits"].numpy(), atol=1e-5)


def test_tf1_minilm_tensors_are_the_original_ones(minilm_dir, tmp_path):
    out = tmp_path / "google"
    _export(minilm_dir, out, "tf1")
    reader = tf.train.load_checkpoint(str(out / "bert_model.ckpt"))
    original = safetensors_numpy.load_file(str(minilm_dir / "model.safetensors"))
    pairs = [
        ("bert/embeddings/word_embeddings", "embeddings.word_embeddings.weight", False),
        ("bert/embeddings/LayerNorm/gamma", "embeddings.LayerNorm.weight", False),
        (
            "bert/encoder/layer_3/attention/self/query/kernel",
            "encoder.layer.3.attention.self.query.weight",
            True,
        ),
        (
            "bert/encoder/layer_5/attention/output/dense/kernel",
            "encoder.layer.5.attention.output.dense.weight",
            True,
        ),
        (
            "bert/encoder/layer_0/intermediate/dense/kernel",
            "encoder.layer.0.intermediate.dense.weight",
            True,
        ),
        (
            "bert/encoder/layer_2/output/LayerNorm/beta",
            "encoder.layer.2.output.LayerNorm.bias",
            False,
        ),
        ("bert/pooler/dense/kernel", "pooler.dense.weight", True),
    ]
    for tf1_name, hf_name, transpose in pairs:
        expected = original[hf_name].T if transpose else original[hf_name]
        np.testing.assert_array_equal(reader.get_tensor(tf1_name), expected, err_msg=tf1_name)
    assert len(reader.get_variable_to_shape_map()) == len(original) - 1  # not position_ids


def test_tf1_to_hf_name_inverts_hf_to_tf1_name():
    assert checkpoints.tf1_to_hf_name("bert/encoder/layer_11/attention/output/dense/kernel") == (
        "bert.encoder.layer.11.attention.output.dense.weight",
        True,
    )
    assert checkpoints.tf1_to_hf_name("bert/embeddings/token_type_embeddings") == (
        "bert.embeddings.token_type_embeddings.weight",
        False,
    )
    assert checkpoints.tf1_to_hf_name("cls/predictions/transform/LayerNorm/beta") == (
        "cls.predictions.transform.LayerNorm.bias",
        False,
    )
    assert checkpoints.tf1_to_hf_name("cls/squad/output_weights") == ("qa_outputs.weight", False)
    for name in ("global_step", "bert/pooler/dense/kernel/adam_m"):
        with pytest.raises(ValueError, match=re.escape(f"TF1 variable '{name}'")):
            checkpoints.tf1_to_hf_name(name)


# ------------------------------------------------------------- errors and CLI
def test_not_a_checkpoint_names_the_path(tmp_path):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("not a model")
    with pytest.raises(FileNotFoundError, match=re.escape(f"{junk}: not a checkpoint")):
        _export(junk, tmp_path / "out", "huggingface", vocab_file=str(junk / "notes.txt"))
    with pytest.raises(
        FileNotFoundError, match=re.escape(f"{tmp_path / 'missing'}: not a checkpoint")
    ):
        _export(tmp_path / "missing", tmp_path / "out", "tf1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk"]


def test_refuses_a_non_empty_output_dir_and_needs_a_vocab(sources, tmp_path):
    init_checkpoint, _, vocab_file = sources["pretraining"]
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    with pytest.raises(
        FileExistsError, match=re.escape(f"{taken}: already exists and is not empty")
    ):
        _export(init_checkpoint, taken, "tf1", vocab_file=str(vocab_file))
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]
    # A pretraining model_dir has no vocab.txt beside it.
    with pytest.raises(ValueError, match="--vocab_file is required"):
        _export(init_checkpoint, tmp_path / "out", "huggingface")
    big = tmp_path / "big_vocab.txt"
    big.write_text("\n".join(VOCAB + ["extra"]) + "\n")
    with pytest.raises(ValueError, match=r"98 entries but the model's vocab_size is 97"):
        _export(init_checkpoint, tmp_path / "out", "huggingface", vocab_file=str(big))
    wrong = tmp_path / "wrong_config.json"
    bert.BertConfig(**dict(ONE_LAYER, intermediate_size=64)).to_json_file(wrong)
    with pytest.raises(ValueError, match=r"ckpt-2: cannot restore the .*64"):
        _export(init_checkpoint, tmp_path / "out", "tf1", bert_config_file=str(wrong))
    empty = tmp_path / "empty"  # an existing empty directory is fine
    empty.mkdir()
    _export(init_checkpoint, empty, "tf1", vocab_file=str(vocab_file))
    assert (empty / "bert_model.ckpt.index").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "big_vocab.txt",
        "empty",
        "taken",
        "wrong_config.json",
    ]


def test_failed_write_leaves_no_output_dir(sources, tmp_path, monkeypatch):
    init_checkpoint, _, _ = sources["squad"]

    def broken_copy(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tf.io.gfile, "copy", broken_copy)
    with pytest.raises(OSError, match="disk full"):
        _export(init_checkpoint, tmp_path / "out", "huggingface")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_cli_exports_squad_output_dir(sources, tmp_path):
    init_checkpoint, model, _ = sources["squad"]
    out = tmp_path / "cli"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bert.export_checkpoint",
            f"--init_checkpoint={init_checkpoint}",
            f"--output_dir={out}",
            "--format=huggingface",
            "--nodo_lower_case",
        ],
        check=False,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "config.json").read_text())["architectures"] == [
        "BertForQuestionAnswering"
    ]
    assert json.loads((out / "tokenizer_config.json").read_text())["do_lower_case"] is False
    fresh = bert.build_squad_model(bert.BertConfig(**ONE_LAYER))
    bert.load_pretrained(out, model=fresh)
    inputs = _tiny_inputs()
    expected, got = model(inputs, training=False), fresh(inputs, training=False)
    for name in ("start_logits", "end_logits"):
        assert np.abs(got[name].numpy() - expected[name].numpy()).max() <= 1e-6

    junk = tmp_path / "junk"
    junk.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bert.export_checkpoint",
            f"--init_checkpoint={junk}",
            f"--output_dir={tmp_path / 'none'}",
            "--format=tf1",
        ],
        check=False,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert f"export_checkpoint: error: {junk}: not a checkpoint" in result.stderr
    assert not (tmp_path / "none").exists()
