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
through one table (`variable_table`) that maps every TF1 name to a Keras
variable and a layout conversion. `save_tf1_checkpoint` walks the same table
backwards.

`initialize_from_checkpoint` tells the kinds of `--init_checkpoint` apart:
Google and Hugging Face directories (name-based, read as above), and this
project's object-based checkpoints (`tf.train.Checkpoint(model=...)`) written
by pretraining (encoder + heads + optimizer) or SQuAD fine-tuning (encoder +
span head). `resolve_config`, `resolve_vocab_file` and
`optimizer_step_in_checkpoint` read what lies beside such a checkpoint.

Exporting (`bert.export_checkpoint`): `restore_model` builds and restores the
model any such source holds (with its heads); `save_huggingface` and
`save_google` write it as a `transformers` or a Google directory, through
`tf1_to_hf_name`, the inverse of `hf_to_tf1_name`.

All paths go through `tf.io.gfile`, so `gs://` works.
"""

import collections
import dataclasses
import json
import logging
import os
import uuid

import keras
import numpy as np
import tensorflow as tf

from bert.modeling import models
from bert.modeling.config import SIZE_FIELDS, BertConfig
from data import fileio

logger = logging.getLogger(__name__)

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
    table = variable_table(model)
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
    return _write_google_files(os.fspath(out_dir), tf1_arrays(model), config)


def _write_google_files(out_dir, arrays, config):
    """`bert_model.ckpt.*` of `arrays` (TF1 name -> array) and `bert_config.json`."""
    prefix = os.path.join(out_dir, GOOGLE_CHECKPOINT)
    _save_tensors(prefix, list(arrays), [tf.constant(a) for a in arrays.values()])
    config.to_json_file(os.path.join(out_dir, GOOGLE_CONFIG))
    return prefix


def _save_tensors(prefix, names, tensors):
    """Writes a TF1 (name-based) checkpoint at `prefix`, replacing any old one whole.

    `SaveV2` writes its files itself, so they are written under a temporary
    directory beside `prefix` and renamed into place: the data file first, the
    index last, so a reader never finds an index without its data.
    """
    out_dir, base = os.path.split(prefix)
    tf.io.gfile.makedirs(out_dir)
    tmp_dir = os.path.join(out_dir, f".tmp-{uuid.uuid4().hex}")
    tf.io.gfile.makedirs(tmp_dir)
    try:
        tf.raw_ops.SaveV2(
            prefix=os.path.join(tmp_dir, base),
            tensor_names=names,
            shape_and_slices=[""] * len(names),
            tensors=tensors,
        )
        files = sorted(tf.io.gfile.listdir(tmp_dir), key=lambda f: f.endswith(".index"))
        for name in files:
            tf.io.gfile.rename(
                os.path.join(tmp_dir, name), os.path.join(out_dir, name), overwrite=True
            )
    finally:
        tf.io.gfile.rmtree(tmp_dir)


# ------------------------------------------------------- checkpoint detection
def checkpoint_dir(path):
    """The directory of a model directory, or of a checkpoint prefix inside one."""
    path = os.fspath(path)
    return path if tf.io.gfile.isdir(path) else os.path.dirname(path)


def _root_children(reader):
    """{root child name: set of its children's names} of an object-based checkpoint."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    names = {}
    for child in graph.nodes[0].children:
        names[child.local_name] = {c.local_name for c in graph.nodes[child.node_id].children}
    return names


def object_checkpoint(path):
    """Finds an object-based (`tf.train.Checkpoint`) checkpoint at `path`.

    Args:
        path: a directory (its latest `ckpt-N` is used) or a checkpoint prefix.

    Returns:
        (prefix, children): the checkpoint prefix and its root objects, as
        {name: set of the names of that object's children} (e.g.
        {"model": {"encoder", "span_head"}, ...}); (None, None) when there is
        no checkpoint or it is a TF1 name-based one (Google's bert_model.ckpt).
    """
    path = os.fspath(path)
    prefix = tf.train.latest_checkpoint(path) if tf.io.gfile.isdir(path) else path
    if not prefix or not tf.io.gfile.exists(prefix + ".index"):
        return None, None
    reader = tf.train.load_checkpoint(prefix)
    if "_CHECKPOINTABLE_OBJECT_GRAPH" not in reader.get_variable_to_shape_map():
        return None, None
    return prefix, _root_children(reader)


def resolve_config(init_checkpoint, bert_config_file=None):
    """The `BertConfig`: `bert_config_file`, else the one that belongs to `init_checkpoint`.

    Beside the checkpoint, in this order: `bert_config.json` (Google, or a
    fine-tuned SQuAD model), `config.json` (Hugging Face), then the
    "bert_config" of the `phase_config.json` that run_pretraining writes.
    """
    if bert_config_file:
        return BertConfig.from_json_file(bert_config_file)
    if not init_checkpoint:
        raise ValueError("give --bert_config_file or an --init_checkpoint holding a config")
    directory = checkpoint_dir(init_checkpoint)
    for name in (GOOGLE_CONFIG, HF_CONFIG):
        if tf.io.gfile.exists(os.path.join(directory, name)):
            return BertConfig.from_json_file(os.path.join(directory, name))
    phase_config = os.path.join(directory, PHASE_CONFIG)
    if tf.io.gfile.exists(phase_config):
        with tf.io.gfile.GFile(phase_config) as f:
            return BertConfig(**json.load(f)["bert_config"])
    raise FileNotFoundError(
        f"{init_checkpoint}: no {GOOGLE_CONFIG}, {HF_CONFIG} or {PHASE_CONFIG} there; "
        "pass --bert_config_file"
    )


def resolve_vocab_file(vocab_file, init_checkpoint):
    """`vocab_file`, else the `vocab.txt` beside `init_checkpoint`."""
    if vocab_file:
        return vocab_file
    if init_checkpoint:
        candidate = os.path.join(checkpoint_dir(init_checkpoint), VOCAB_FILE)
        if tf.io.gfile.exists(candidate):
            return candidate
    raise ValueError("--vocab_file is required (no vocab.txt beside --init_checkpoint)")


def initialize_from_checkpoint(model, init_checkpoint):
    """Fills a SQuAD model from any kind of `init_checkpoint`.

    * Google (TF1) or Hugging Face directory, or a TF1 prefix: `load_pretrained`
      (encoder, plus the span head if the checkpoint has `cls/squad/*`).
    * This project's pretraining checkpoint (`tf.train.Checkpoint` with a
      `model` whose `encoder` has no `span_head` beside it; a directory or a
      `ckpt-N` prefix): only `model.encoder` is restored, the pretraining
      heads and the optimizer slots are skipped.
    * A fine-tuned SQuAD checkpoint (a `model` with `span_head`): encoder and
      span head.

    Returns:
        A short description of what was restored, naming the checkpoint.

    Raises:
        ValueError: naming the checkpoint, the variable and both shapes on a
            shape mismatch, or when an object-based checkpoint has no
            `model.encoder`.
    """
    prefix, graph = object_checkpoint(init_checkpoint)
    if prefix is None:  # Name-based: mapped by load_pretrained.
        load_pretrained(init_checkpoint, model=model)
        return f"pretrained weights from {init_checkpoint}"
    model_children = graph.get("model")
    if model_children is None or "encoder" not in model_children:
        raise ValueError(
            f"{prefix}: not a checkpoint of this project (expected an object "
            f"'model' with an 'encoder'; found {sorted(graph)})"
        )
    if "span_head" in model_children:
        target, what = model, "fine-tuned SQuAD model (encoder + span head)"
    else:
        # The pretraining model's attribute path (model.encoder), without its heads.
        target, what = tf.train.Checkpoint(encoder=model.encoder), "pretrained encoder"
    _read_model(prefix, target, what)
    return f"{what} from {prefix}"


def _read_model(prefix, target, what):
    """Restores `target` as the checkpoint's `model`, ignoring what it does not need
    (heads, optimizer, dropout states); errors name the checkpoint and `what`."""
    try:
        status = tf.train.Checkpoint(model=target).read(prefix)
        status.expect_partial()
        status.assert_existing_objects_matched()
    except (ValueError, AssertionError) as e:  # TF names the variable and both shapes.
        raise ValueError(f"{prefix}: cannot restore the {what}: {e}") from e


def optimizer_step_in_checkpoint(path):
    """The optimizer update count stored in an object-based training checkpoint.

    Args:
        path: a checkpoint directory (its latest checkpoint) or a prefix.

    Raises:
        ValueError: when the checkpoint holds no optimizer iteration counter.
    """
    path = os.fspath(path)
    path = tf.train.latest_checkpoint(path) or path
    reader = tf.train.load_checkpoint(path)
    for name in reader.get_variable_to_shape_map():
        if (
            name.startswith("optimizer/")
            and "iterations" in name
            and name.endswith("VARIABLE_VALUE")
        ):
            return int(reader.get_tensor(name))
    raise ValueError(f"{path}: no optimizer iteration counter in this checkpoint")


# ------------------------------------------------------------------ exporting
HF_ARCHITECTURES = {
    models.BertEncoder: "BertModel",
    models.BertPretrainingModel: "BertForPreTraining",
    models.BertSquadModel: "BertForQuestionAnswering",
}
# `hidden_act` names this project accepts that `transformers` spells differently (same function).
_HF_ACTIVATIONS = {"gelu_tanh": "gelu_new"}
_HF_SPECIAL_TOKENS = {
    "unk_token": "[UNK]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "mask_token": "[MASK]",
}


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


def tf1_arrays(model, names=None):
    """TF1 name -> numpy array in Google's layout, for `names` (default: all of `model`)."""
    table = variable_table(model)
    names = list(table) if names is None else names
    return {name: table[name].to_tf1(table[name].variable.numpy()) for name in names}


def huggingface_arrays(model, names=None):
    """Hugging Face name -> numpy array in PyTorch layout, for `names` (TF1 names; default all).

    With the masked-LM head, the tied decoder (`cls.predictions.decoder.weight`,
    a copy of the word embeddings, and `cls.predictions.decoder.bias`, a copy of
    `cls.predictions.bias`) is written too, so no version of `transformers`
    reports it missing whatever its tied-weights handling.
    """
    arrays = {}
    for name, array in tf1_arrays(model, names).items():
        hf_name, transpose = tf1_to_hf_name(name)
        arrays[hf_name] = np.ascontiguousarray(array.T if transpose else array)
    if "cls.predictions.bias" in arrays:
        arrays["cls.predictions.decoder.weight"] = arrays[
            "bert.embeddings.word_embeddings.weight"
        ].copy()
        arrays["cls.predictions.decoder.bias"] = arrays["cls.predictions.bias"].copy()
    return arrays


def huggingface_config(config, architecture="BertModel", pad_token_id=0):
    """The `config.json` dict of a `transformers` BERT model with this `BertConfig`."""
    values = config.to_dict()
    values["hidden_act"] = _HF_ACTIVATIONS.get(config.hidden_act, config.hidden_act)
    values.update(
        architectures=[architecture],
        model_type="bert",
        pad_token_id=pad_token_id,
        position_embedding_type="absolute",
        tie_word_embeddings=True,
    )
    return dict(sorted(values.items()))


def _checked_vocab(vocab_file, config):
    """token -> id of `vocab_file`; refuses a vocabulary larger than the model's."""
    from data import tokenization

    vocab = tokenization.load_vocab(vocab_file)
    tokenization.check_vocab_fits_model(vocab, vocab_file, config.vocab_size)
    return vocab


def check_new_directory(output_dir):
    """Raises FileExistsError unless `output_dir` is absent or an empty directory."""
    output_dir = os.fspath(output_dir).rstrip("/")
    if tf.io.gfile.exists(output_dir) and (
        not tf.io.gfile.isdir(output_dir) or tf.io.gfile.listdir(output_dir)
    ):
        raise FileExistsError(f"{output_dir}: already exists and is not empty")


def _write_directory(output_dir, write):
    """Runs `write(tmp_dir)` beside `output_dir` (new or empty), then renames it into place."""
    check_new_directory(output_dir)
    return fileio.write_directory_atomic(output_dir, write)


def save_huggingface(model, config, output_dir, vocab_file, do_lower_case=True, names=None):
    """Writes a Hugging Face BERT directory that `transformers` loads with `from_pretrained`.

    Files: `config.json` (`architectures` says BertModel, BertForPreTraining or
    BertForQuestionAnswering after the model's type), `model.safetensors`
    (`transformers` names, Linear weights [out, in], metadata format "pt"),
    `vocab.txt` (a copy of `vocab_file`), `tokenizer_config.json` and
    `special_tokens_map.json` for `BertTokenizer`. The directory is written
    beside `output_dir` and renamed into place; `output_dir` must be new or empty.

    Args:
        model: an encoder, pretraining or SQuAD model.
        config: its `BertConfig`.
        output_dir: the directory to create.
        vocab_file: the WordPiece vocabulary (no larger than `config.vocab_size`).
        do_lower_case: for the tokenizer config (uncased models lower-case).
        names: TF1 names of the variables to write (default: all of the model's),
            so that variables a source did not have are not exported as if trained.

    Returns:
        `output_dir`.
    """
    from safetensors import numpy as safetensors_numpy

    vocab = _checked_vocab(vocab_file, config)
    architecture = HF_ARCHITECTURES[type(model)]
    arrays = huggingface_arrays(model, names)
    hf_config = huggingface_config(config, architecture, vocab.get("[PAD]", 0))
    tokenizer_config = dict(
        _HF_SPECIAL_TOKENS,
        do_lower_case=do_lower_case,
        model_max_length=config.max_position_embeddings,
        tokenize_chinese_chars=True,
        strip_accents=None,
        tokenizer_class="BertTokenizer",
    )

    def write(tmp_dir):
        fileio.write_atomic(
            os.path.join(tmp_dir, HF_WEIGHTS),
            safetensors_numpy.save(arrays, metadata={"format": "pt"}),
        )
        fileio.write_json_atomic(os.path.join(tmp_dir, HF_CONFIG), hf_config)
        fileio.write_json_atomic(os.path.join(tmp_dir, "tokenizer_config.json"), tokenizer_config)
        fileio.write_json_atomic(
            os.path.join(tmp_dir, "special_tokens_map.json"), _HF_SPECIAL_TOKENS
        )
        tf.io.gfile.copy(vocab_file, os.path.join(tmp_dir, VOCAB_FILE))

    return _write_directory(output_dir, write)


def save_google(model, config, output_dir, vocab_file, names=None):
    """Writes a directory laid out like Google's BERT releases.

    Files: `bert_config.json`, `bert_model.ckpt.{index,data-*}` (TF1 names as in
    `save_tf1_checkpoint`: `bert/…`, `cls/predictions/…`,
    `cls/seq_relationship/output_weights` [2, H], `cls/squad/output_weights`
    [2, H]) and `vocab.txt`. Written beside `output_dir` and renamed into place;
    `output_dir` must be new or empty. `names` as in `save_huggingface`.

    Returns:
        `output_dir`.
    """
    _checked_vocab(vocab_file, config)
    arrays = tf1_arrays(model, names)

    def write(tmp_dir):
        _write_google_files(tmp_dir, arrays, config)
        tf.io.gfile.copy(vocab_file, os.path.join(tmp_dir, VOCAB_FILE))

    return _write_directory(output_dir, write)


RestoredModel = collections.namedtuple("RestoredModel", ["config", "model", "names", "source"])


def restore_model(init_checkpoint, bert_config_file=None):
    """Builds the model a checkpoint holds, with the heads it has, and restores it.

    `init_checkpoint` is anything `run_squad --init_checkpoint` takes: this
    project's pretraining model_dir or a fine-tuned SQuAD output_dir (a directory
    or a `ckpt-N` prefix), a Google directory or TF1 prefix, or a Hugging Face
    directory. The model is a `BertSquadModel` when the checkpoint has a span head
    (`span_head`, `cls/squad/*`), a `BertPretrainingModel` when it has masked-LM or
    next-sentence weights, else a `BertEncoder`. The config is `bert_config_file`
    or the one found by `resolve_config`.

    Returns:
        RestoredModel(config, model, names, source): `names` are the TF1 names of
        the variables that came from the checkpoint (a name-based checkpoint may
        lack some, e.g. the pooler of a masked-LM model; those are logged and left
        out), `source` says what was read.

    Raises:
        FileNotFoundError: naming `init_checkpoint` when it is not a checkpoint.
        ValueError: on a shape mismatch or a foreign object-based checkpoint.
    """
    init_checkpoint = os.fspath(init_checkpoint)
    prefix, graph = object_checkpoint(init_checkpoint)
    if prefix is None:
        try:
            _, kind, weights_path = _find_checkpoint(init_checkpoint)
        except FileNotFoundError as e:
            raise FileNotFoundError(
                f"{init_checkpoint}: not a checkpoint. Expected this project's pretraining "
                "model_dir or SQuAD output_dir (ckpt-N), a Google directory "
                f"({GOOGLE_CONFIG} + {GOOGLE_CHECKPOINT}.*) or TF1 prefix, or a Hugging Face "
                f"directory ({HF_CONFIG} + {HF_WEIGHTS}). ({e})"
            ) from e
        source = _hf_source(weights_path) if kind == "hf" else _tf1_source(weights_path)
        heads = {name.split("/")[1] for name in source.shapes if name.startswith("cls/")}
        has_span_head = "squad" in heads
        has_pretraining_heads = bool(heads & {"predictions", "seq_relationship"})
    else:
        children = graph.get("model") or set()
        if "encoder" not in children:
            raise ValueError(
                f"{prefix}: not a checkpoint of this project (expected an object "
                f"'model' with an 'encoder'; found {sorted(graph)})"
            )
        has_span_head = "span_head" in children
        has_pretraining_heads = bool(children & {"mlm_head", "nsp_head"})

    config = resolve_config(init_checkpoint, bert_config_file)
    if has_span_head:
        model = models.build_squad_model(config)
    elif has_pretraining_heads:
        model = models.build_pretraining_model(config)
    else:
        model = models.build_encoder(config)

    if prefix is None:
        names = restore_weights(model, source).loaded
        what = {"hf": "Hugging Face checkpoint", "tf1": "TF1 checkpoint"}[kind]
        return RestoredModel(config, model, names, f"{what} {weights_path}")
    # An encoder-only model is restored through the attribute path model.encoder.
    target = model if has_span_head or has_pretraining_heads else tf.train.Checkpoint(encoder=model)
    _read_model(prefix, target, f"{model.name} model")
    return RestoredModel(config, model, list(variable_table(model)), f"checkpoint {prefix}")
