"""Google and Hugging Face checkpoints: finding their files, reading them, filling a model.

Two name-based formats are read:

* Google's original release: `bert_config.json` + `bert_model.ckpt.*`, a TF1
  checkpoint with names such as
  `bert/encoder/layer_0/attention/self/query/kernel` (read with
  `tf.train.load_checkpoint`).
* Hugging Face: `config.json` + `model.safetensors` (read with safetensors'
  numpy API; no PyTorch). Names may carry a `bert.` prefix; Linear weights are
  stored [out, in].

Both are first put in the TF1 layout, keyed by TF1 name (a `_Source`), and then assigned
through `names.variable_table`.
"""

import collections
import logging
import os

import tensorflow as tf

from bert.checkpoints.names import (
    GOOGLE_CHECKPOINT,
    GOOGLE_CONFIG,
    HF_CONFIG,
    HF_WEIGHTS,
    hf_to_tf1_name,
    variable_table,
)
from bert.modeling import models
from bert.modeling.config import SIZE_FIELDS, BertConfig

logger = logging.getLogger(__name__)


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


def _open_source(kind, weights_path):
    """The `_Source` of a weights file `_find_checkpoint` found ("hf" or "tf1")."""
    return _hf_source(weights_path) if kind == "hf" else _tf1_source(weights_path)


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
    restore_weights(model, _open_source(kind, weights_path))
    return config, getattr(model, "encoder", model)
