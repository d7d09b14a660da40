"""Loading pretrained BERT weights and writing Google-format checkpoints.

Two source formats are read:

* Google's original release: `bert_config.json` + `bert_model.ckpt.*`, a TF1
  checkpoint with names such as
  `bert/encoder/layer_0/attention/self/query/kernel` (read with
  `tf.train.load_checkpoint`).
* Hugging Face: `config.json` + `model.safetensors` (read with safetensors'
  numpy API; no PyTorch). Names may carry a `bert.` prefix; Linear weights are
  stored [out, in].

Both are first put in the TF1 layout, keyed by TF1 name, and then assigned
through one table that maps every TF1 name to a Keras variable and a layout
conversion. `save_tf1_checkpoint` walks the same table backwards.

All paths go through `tf.io.gfile`, so `gs://` works.
"""

import collections
import dataclasses
import logging
import os
import uuid

import keras
import numpy as np
import tensorflow as tf

from bert import models
from bert.config import SIZE_FIELDS, BertConfig

logger = logging.getLogger(__name__)

GOOGLE_CONFIG = "bert_config.json"
GOOGLE_CHECKPOINT = "bert_model.ckpt"
HF_CONFIG = "config.json"
HF_WEIGHTS = "model.safetensors"

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
class _Entry:
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


def _variable_table(model):
    """TF1 name -> `_Entry` for an encoder, pretraining or SQuAD model."""
    encoder = getattr(model, "encoder", model)
    if not isinstance(encoder, models.BertEncoder):
        raise TypeError(
            f"Expected a BERT encoder or a model with an .encoder, got {type(model).__name__}"
        )
    entries = []

    def add(name, variable, layout="same", required=True):
        entries.append(_Entry(name, variable, layout, required))

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
    # Hugging Face masked-LM models drop the pooler: missing is a warning.
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


# ------------------------------------------------------------------ sources
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


def _read_safetensors(path):
    """name -> numpy array, through tf.io.gfile for non-local paths."""
    from safetensors import numpy as safetensors_numpy

    if "://" in path:
        with tf.io.gfile.GFile(path, "rb") as f:
            return safetensors_numpy.load(f.read())
    return safetensors_numpy.load_file(path)


class _Source:
    """Tensors of a checkpoint in TF1 layout: `.shapes` and `.get(name)`.

    `.describe(name)` gives the name as stored in the file for messages.
    """

    def __init__(self, path, shapes, getter, original_names=None):
        self.path = path
        self.shapes = shapes
        self.get = getter
        self._original_names = original_names or {}

    def describe(self, name):
        original = self._original_names.get(name)
        return f"'{name}'" + (f" (stored as '{original}')" if original else "")


def _hf_source(path):
    tensors, names = {}, {}
    for hf_name, array in _read_safetensors(path).items():
        mapped = hf_to_tf1_name(hf_name)
        if mapped is None:
            continue
        name, transpose = mapped
        tensors[name] = array.T if transpose else array
        names[name] = hf_name
    shapes = {name: tuple(a.shape) for name, a in tensors.items()}
    return _Source(path, shapes, tensors.__getitem__, names)


def _tf1_source(prefix):
    reader = tf.train.load_checkpoint(prefix)
    shapes = {name: tuple(shape) for name, shape in reader.get_variable_to_shape_map().items()}
    return _Source(prefix, shapes, reader.get_tensor)


def _find_checkpoint(model_dir):
    """Returns (config path, kind, weights path) for a model directory.

    `model_dir` may also be a TF1 checkpoint prefix such as
    `.../bert_model.ckpt`, with the config beside it.
    """
    model_dir = os.fspath(model_dir).rstrip("/")
    if tf.io.gfile.exists(model_dir + ".index"):
        config = os.path.join(os.path.dirname(model_dir), GOOGLE_CONFIG)
        return config, "tf1", model_dir
    if not tf.io.gfile.isdir(model_dir):
        raise FileNotFoundError(f"{model_dir}: no such model directory")
    google_config = os.path.join(model_dir, GOOGLE_CONFIG)
    hf_config = os.path.join(model_dir, HF_CONFIG)
    if tf.io.gfile.exists(google_config):
        prefix = os.path.join(model_dir, GOOGLE_CHECKPOINT)
        if not tf.io.gfile.exists(prefix + ".index"):
            indexes = sorted(tf.io.gfile.glob(os.path.join(model_dir, "*.ckpt*.index")))
            if not indexes:
                raise FileNotFoundError(
                    f"{model_dir}: has {GOOGLE_CONFIG} but no "
                    f"{GOOGLE_CHECKPOINT}.index (a TF1 checkpoint)"
                )
            prefix = indexes[-1][: -len(".index")]
        return google_config, "tf1", prefix
    if tf.io.gfile.exists(hf_config):
        weights = os.path.join(model_dir, HF_WEIGHTS)
        if not tf.io.gfile.exists(weights):
            raise FileNotFoundError(
                f"{model_dir}: has {HF_CONFIG} but no {HF_WEIGHTS} (only "
                "safetensors weights are read, PyTorch .bin files are not)"
            )
        return hf_config, "hf", weights
    raise FileNotFoundError(
        f"{model_dir}: expected {GOOGLE_CONFIG} + {GOOGLE_CHECKPOINT}.* "
        f"(Google) or {HF_CONFIG} + {HF_WEIGHTS} (Hugging Face)"
    )


# ------------------------------------------------------------------ loading
LoadResult = collections.namedtuple("LoadResult", ["loaded", "missing", "unused"])


def restore_weights(model, source):
    """Assigns the tensors of `source` (a `_Source`) to `model`.

    Every shape is checked before anything is assigned. Raises ValueError on a
    shape mismatch (naming the variable and both shapes) or when a required
    (encoder) variable is missing; logs optional missing variables (heads,
    pooler) and unused checkpoint tensors.

    Returns:
        LoadResult(loaded, missing, unused): sorted lists of TF1 names.
    """
    table = _variable_table(model)
    present = [e for e in table.values() if e.name in source.shapes]
    for entry in present:
        shape = source.shapes[entry.name]
        if shape != entry.tf1_shape:
            raise ValueError(
                f"{source.path}: variable {source.describe(entry.name)} has "
                f"shape {list(shape)} in the checkpoint but the model expects "
                f"{list(entry.tf1_shape)}"
            )
    missing = sorted(name for name in table if name not in source.shapes)
    missing_required = [name for name in missing if table[name].required]
    if missing_required:
        raise ValueError(f"{source.path}: missing encoder variables: {missing_required}")
    for entry in present:
        entry.variable.assign(entry.to_keras(source.get(entry.name)))
    unused = sorted(name for name in source.shapes if name not in table)
    if missing:
        logger.warning(
            "%s: variables not in the checkpoint (left as initialized): %s", source.path, missing
        )
    if unused:
        logger.warning("%s: checkpoint tensors not used: %s", source.path, unused)
    logger.info("%s: restored %d variables", source.path, len(present))
    return LoadResult(sorted(e.name for e in present), missing, unused)


def load_pretrained(model_dir, model=None):
    """Loads a Google or Hugging Face BERT checkpoint.

    Args:
        model_dir: a Google directory (`bert_config.json`, `bert_model.ckpt.*`),
            a TF1 checkpoint prefix, or a Hugging Face directory
            (`config.json`, `model.safetensors`). Local or `gs://`.
        model: None to build a new encoder from the directory's config, or an
            encoder / pretraining / SQuAD model to fill, including whichever
            heads the checkpoint has.

    Returns:
        (config, encoder): the directory's `BertConfig` and the encoder
        (`model.encoder` when a bigger model is given).
    """
    config_path, kind, weights_path = _find_checkpoint(model_dir)
    config = BertConfig.from_json_file(config_path)
    if model is None:
        model = models.build_encoder(config)
    else:
        model_config = getattr(model, "bert_config", None)
        for field in SIZE_FIELDS if model_config else ():
            if getattr(model_config, field) != getattr(config, field):
                raise ValueError(
                    f"{config_path}: field '{field}' is "
                    f"{getattr(config, field)!r} but the model has "
                    f"{getattr(model_config, field)!r}"
                )
    source = _hf_source(weights_path) if kind == "hf" else _tf1_source(weights_path)
    restore_weights(model, source)
    return config, getattr(model, "encoder", model)


# ------------------------------------------------------------------ writing
def save_tf1_checkpoint(model, config=None, out_dir=None):
    """Writes `bert_config.json` and a TF1-named `bert_model.ckpt`.

    The result has the layout of Google's released checkpoints, so
    `tf.train.load_checkpoint` lists names such as
    `bert/encoder/layer_0/attention/self/query/kernel`, and the original
    `run_pretraining.py` / `run_squad.py` can initialize from it.

    Args:
        model: an encoder, pretraining or SQuAD model (heads are included).
        config: its `BertConfig` (default: the model's).
        out_dir: output directory (created; local or `gs://`).

    Returns:
        The checkpoint prefix `<out_dir>/bert_model.ckpt`.
    """
    if out_dir is None:
        raise ValueError("save_tf1_checkpoint: out_dir is required")
    config = config or getattr(model, "bert_config", None)
    if config is None:
        raise ValueError("save_tf1_checkpoint: pass the model's BertConfig")
    out_dir = os.fspath(out_dir)
    table = _variable_table(model)
    tf.io.gfile.makedirs(out_dir)
    # Write under a temporary directory, then move the finished files in.
    tmp_dir = os.path.join(out_dir, f".tmp-{uuid.uuid4().hex}")
    tf.io.gfile.makedirs(tmp_dir)
    try:
        names = list(table)
        tensors = [tf.constant(table[n].to_tf1(table[n].variable.numpy())) for n in names]
        tf.raw_ops.SaveV2(
            prefix=os.path.join(tmp_dir, GOOGLE_CHECKPOINT),
            tensor_names=names,
            shape_and_slices=[""] * len(names),
            tensors=tensors,
        )
        for path in tf.io.gfile.listdir(tmp_dir):
            tf.io.gfile.rename(
                os.path.join(tmp_dir, path), os.path.join(out_dir, path), overwrite=True
            )
    finally:
        tf.io.gfile.rmtree(tmp_dir)
    config.to_json_file(os.path.join(out_dir, GOOGLE_CONFIG))
    return os.path.join(out_dir, GOOGLE_CHECKPOINT)
