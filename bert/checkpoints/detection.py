"""Telling checkpoint kinds apart, and restoring whichever kind a path holds.

`--init_checkpoint` may be a Google or Hugging Face directory (name-based, read by
`pretrained.load_pretrained`), or one of this project's object-based checkpoints
(`tf.train.Checkpoint(model=...)`) written by pretraining (encoder + heads + optimizer) or
SQuAD fine-tuning (encoder + span head). `initialize_from_checkpoint` fills a SQuAD model from
any of them; `restore_model` builds the model a checkpoint holds, heads included (for export).
`resolve_config`, `resolve_vocab_file` and `optimizer_step_in_checkpoint` read what lies
beside such a checkpoint.
"""

import collections
import json
import os

import tensorflow as tf

from bert.checkpoints.names import (
    GOOGLE_CHECKPOINT,
    GOOGLE_CONFIG,
    HF_CONFIG,
    HF_WEIGHTS,
    PHASE_CONFIG,
    VOCAB_FILE,
    variable_table,
)
from bert.checkpoints.pretrained import (
    _find_checkpoint,
    _open_source,
    load_pretrained,
    restore_weights,
)
from bert.modeling import models
from bert.modeling.config import BertConfig


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


def _foreign_checkpoint_error(prefix, graph):
    return ValueError(
        f"{prefix}: not a checkpoint of this project (expected an object "
        f"'model' with an 'encoder'; found {sorted(graph)})"
    )


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
        raise _foreign_checkpoint_error(prefix, graph)
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
        source = _open_source(kind, weights_path)
        heads = {name.split("/")[1] for name in source.shapes if name.startswith("cls/")}
        has_span_head = "squad" in heads
        has_pretraining_heads = bool(heads & {"predictions", "seq_relationship"})
    else:
        children = graph.get("model") or set()
        if "encoder" not in children:
            raise _foreign_checkpoint_error(prefix, graph)
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
