"""Names: the files of a checkpoint directory and the variable names of each format.

`variable_table` is the one table of a model's variables: every Google (TF1) name
(`bert/encoder/layer_0/attention/self/query/kernel`, ...) with its Keras variable and the
layout conversion between them. `hf_to_tf1_name` maps a Hugging Face tensor name onto it and
`tf1_to_hf_name` is its inverse, checked against it, so the mapping is defined once.
"""

import collections
import dataclasses

import keras
import numpy as np

from bert.modeling import models

GOOGLE_CONFIG = "bert_config.json"
GOOGLE_CHECKPOINT = "bert_model.ckpt"
HF_CONFIG = "config.json"
HF_WEIGHTS = "model.safetensors"
PHASE_CONFIG = "phase_config.json"  # written by bert.run_pretraining beside its checkpoints
VOCAB_FILE = "vocab.txt"

# Hugging Face tensors with no variable of their own (buffers, tied copies).
_HF_IGNORED = {
    "embeddings.position_ids",
    "cls.predictions.decoder.weight",  # tied to the word embeddings
    "cls.predictions.decoder.bias",  # same tensor as cls.predictions.bias
}
# Hugging Face names stored [out, in] like TF1's `output_weights`.
_HF_SPECIAL = {
    "cls.predictions.bias": "cls/predictions/output_bias",
    "cls.seq_relationship.weight": "cls/seq_relationship/output_weights",
    "cls.seq_relationship.bias": "cls/seq_relationship/output_bias",
    "qa_outputs.weight": "cls/squad/output_weights",
    "qa_outputs.bias": "cls/squad/output_bias",
}


@dataclasses.dataclass
class VariableEntry:
    """One TF1 checkpoint variable and the Keras variable holding it.

    `layout` says how the TF1 array becomes the Keras value: "same",
    "reshape" (attention kernels [H, H] hold the head axes [A, D] merged) or
    "transpose" (TF1 `output_weights` are [2, H], a Dense kernel is [H, 2]).
    `required` entries must be in a checkpoint; others only warn if missing.
    """

    name: str
    variable: "keras.Variable"
    layout: str = "same"
    required: bool = True

    @property
    def shape(self):
        """The Keras variable's shape."""
        return tuple(self.variable.shape)

    @property
    def tf1_shape(self):
        """The shape this variable has in a TF1 checkpoint."""
        if self.layout == "transpose":
            return self.shape[::-1]
        if self.layout == "reshape":
            if len(self.shape) == 2:  # query/key/value bias [A, D]
                return (self.shape[0] * self.shape[1],)
            if self.name.endswith("output/dense/kernel"):  # [A, D, H]
                return (self.shape[0] * self.shape[1], self.shape[2])
            return (self.shape[0], self.shape[1] * self.shape[2])  # [H, A, D]
        return self.shape

    def to_keras(self, array):
        """TF1-layout array -> value for the Keras variable."""
        array = np.asarray(array, dtype=self.variable.dtype)
        if self.layout == "transpose":
            return array.T
        return array.reshape(self.shape)

    def to_tf1(self, value):
        """Keras variable value -> TF1-layout array."""
        value = np.asarray(value)
        if self.layout == "transpose":
            return value.T
        return value.reshape(self.tf1_shape)


def variable_table(model):
    """TF1 name -> `VariableEntry` for an encoder, pretraining or SQuAD model.

    The names are those of Google's checkpoints
    (`bert/encoder/layer_0/attention/self/query/kernel`, ...); the heads the
    model has are included.
    """
    encoder = getattr(model, "encoder", model)
    if not isinstance(encoder, models.BertEncoder):
        raise TypeError(
            f"Expected a BERT encoder or a model with an .encoder, got {type(model).__name__}"
        )
    entries = []

    def add(name, variable, layout="same", required=True):
        entries.append(VariableEntry(name, variable, layout, required))

    def add_dense(prefix, dense, layout="same", required=True):
        add(f"{prefix}/kernel", dense.kernel, layout, required)
        add(f"{prefix}/bias", dense.bias, layout, required)

    def add_layer_norm(prefix, layer_norm, required=True):
        add(f"{prefix}/gamma", layer_norm.gamma, required=required)
        add(f"{prefix}/beta", layer_norm.beta, required=required)

    emb = encoder.embeddings
    add("bert/embeddings/word_embeddings", emb.word_embeddings.embeddings)
    add("bert/embeddings/token_type_embeddings", emb.token_type_embeddings.embeddings)
    add("bert/embeddings/position_embeddings", emb.position_embeddings)
    add_layer_norm("bert/embeddings/LayerNorm", emb.layer_norm)
    for i, layer in enumerate(encoder.transformer_layers):
        prefix = f"bert/encoder/layer_{i}"
        for part in ("query", "key", "value"):
            add_dense(f"{prefix}/attention/self/{part}", getattr(layer, part), "reshape")
        add(f"{prefix}/attention/output/dense/kernel", layer.attention_output.kernel, "reshape")
        add(f"{prefix}/attention/output/dense/bias", layer.attention_output.bias)
        add_layer_norm(f"{prefix}/attention/output/LayerNorm", layer.attention_layer_norm)
        add_dense(f"{prefix}/intermediate/dense", layer.intermediate)
        add_dense(f"{prefix}/output/dense", layer.output_dense)
        add_layer_norm(f"{prefix}/output/LayerNorm", layer.output_layer_norm)
    # Hugging Face masked-LM and question-answering models drop the pooler: missing is a warning.
    add_dense("bert/pooler/dense", encoder.pooler, required=False)

    if isinstance(model, models.BertPretrainingModel):
        head = model.mlm_head
        add_dense("cls/predictions/transform/dense", head.transform, required=False)
        add_layer_norm("cls/predictions/transform/LayerNorm", head.layer_norm, required=False)
        add("cls/predictions/output_bias", head.output_bias, required=False)
        add(
            "cls/seq_relationship/output_weights",
            model.nsp_head.kernel,
            "transpose",
            required=False,
        )
        add("cls/seq_relationship/output_bias", model.nsp_head.bias, required=False)
    if isinstance(model, models.BertSquadModel):
        add("cls/squad/output_weights", model.span_head.kernel, "transpose", required=False)
        add("cls/squad/output_bias", model.span_head.bias, required=False)
    return collections.OrderedDict((e.name, e) for e in entries)


def hf_to_tf1_name(name):
    """Maps a Hugging Face BERT tensor name to (TF1 name, transpose).

    Returns None for tensors that hold no variable (`embeddings.position_ids`,
    the tied decoder copies). Unknown names map to themselves so they are
    reported as unused.
    """
    name = name[len("bert.") :] if name.startswith("bert.") else name
    if name in _HF_IGNORED:
        return None
    if name in _HF_SPECIAL:
        return _HF_SPECIAL[name], False
    parts = name.split(".")
    if parts[0] not in ("embeddings", "encoder", "pooler", "cls"):
        return name, False
    if parts[:2] == ["encoder", "layer"] and len(parts) > 2:
        parts = ["encoder", f"layer_{parts[2]}"] + parts[3:]
    transpose = False
    if parts[-2:-1] == ["LayerNorm"]:
        parts[-1] = {"weight": "gamma", "bias": "beta"}.get(parts[-1], parts[-1])
    elif parts[-2].endswith("_embeddings") and parts[-1] == "weight":
        parts = parts[:-1]  # nn.Embedding: [vocab, hidden] as in TF1
    elif parts[-1] == "weight":
        parts[-1], transpose = "kernel", True  # nn.Linear stores [out, in]
    prefix = [] if parts[0] == "cls" else ["bert"]
    return "/".join(prefix + parts), transpose


def tf1_to_hf_name(name):
    """Maps a TF1 (Google) variable name to (Hugging Face name, transpose).

    The inverse of `hf_to_tf1_name`, which stays the one definition of the
    mapping: every answer is checked against it. Encoder names get the `bert.`
    prefix that `BertForPreTraining` / `BertForQuestionAnswering` use (`BertModel`
    strips it); head names are top-level (`cls.…`, `qa_outputs.…`).

    Raises:
        ValueError: for a name with no Hugging Face counterpart.
    """
    special = {tf1: hf for hf, tf1 in _HF_SPECIAL.items()}
    if name in special:
        hf_name, transpose = special[name], False
    elif name.split("/")[0] not in ("bert", "cls") or not (
        name.endswith(("/kernel", "/bias", "/gamma", "/beta", "_embeddings"))
    ):
        raise ValueError(f"no Hugging Face name for the TF1 variable '{name}'")
    else:
        parts, transpose = [], False
        for part in name.split("/"):
            if part.startswith("layer_") and part[len("layer_") :].isdigit():
                parts += ["layer", part[len("layer_") :]]
            else:
                parts.append(part)
        if parts[-1] == "kernel":
            parts[-1], transpose = "weight", True  # nn.Linear stores [out, in]
        elif parts[-1] in ("gamma", "beta"):
            parts[-1] = {"gamma": "weight", "beta": "bias"}[parts[-1]]
        elif parts[-1].endswith("_embeddings"):
            parts.append("weight")  # nn.Embedding: [vocab, hidden] as in TF1
        hf_name = ".".join(parts)
    if hf_to_tf1_name(hf_name) != (name, transpose):
        raise ValueError(f"no Hugging Face name for the TF1 variable '{name}'")
    return hf_name, transpose
