"""Writing a model as a Google (TF1) or Hugging Face checkpoint directory.

`save_tf1_checkpoint` and `save_google` write Google's layout (`bert_config.json`,
`bert_model.ckpt.*`), walking `names.variable_table` backwards; `save_huggingface` writes what
`transformers` loads with `from_pretrained`, through `names.tf1_to_hf_name`. Output
directories are written beside their final name and renamed into place (`data.fileio`).

All paths go through `tf.io.gfile`, so `gs://` works.
"""

import os
import uuid

import numpy as np
import tensorflow as tf

from bert.checkpoints.names import (
    GOOGLE_CHECKPOINT,
    GOOGLE_CONFIG,
    HF_CONFIG,
    HF_WEIGHTS,
    VOCAB_FILE,
    tf1_to_hf_name,
    variable_table,
)
from bert.modeling import models
from data import fileio

HF_ARCHITECTURES = {
    models.BertEncoder: "BertModel",
    models.BertPretrainingModel: "BertForPreTraining",
    models.BertSquadModel: "BertForQuestionAnswering",
}
# TF1 name prefixes of variables a `transformers` architecture has no parameter for; loading a
# file that holds them prints an UNEXPECTED-keys table. BertForQuestionAnswering builds its
# BertModel with add_pooling_layer=False (BertModel and BertForPreTraining keep the pooler).
_HF_LEFT_OUT = {"BertForQuestionAnswering": ("bert/pooler/",)}
# `hidden_act` names this project accepts that `transformers` spells differently (same function).
_HF_ACTIVATIONS = {"gelu_tanh": "gelu_new"}
_HF_SPECIAL_TOKENS = {
    "unk_token": "[UNK]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "mask_token": "[MASK]",
}


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


def tf1_arrays(model, names=None):
    """TF1 name -> numpy array in Google's layout, for `names` (default: all of `model`)."""
    table = variable_table(model)
    names = list(table) if names is None else names
    return {name: table[name].to_tf1(table[name].variable.numpy()) for name in names}


def huggingface_arrays(model, names=None):
    """Hugging Face name -> numpy array in PyTorch layout, for `names` (TF1 names; default all).

    Only the tensors the model's `transformers` architecture has are written: a SQuAD model
    (BertForQuestionAnswering) has no pooler. With the masked-LM head, the tied decoder
    (`cls.predictions.decoder.weight`, a copy of the word embeddings, and
    `cls.predictions.decoder.bias`, a copy of `cls.predictions.bias`) is written too, so no
    version of `transformers` reports it missing whatever its tied-weights handling.
    """
    names = list(variable_table(model)) if names is None else names
    left_out = _HF_LEFT_OUT.get(HF_ARCHITECTURES.get(type(model)), ())
    arrays = {}
    for name, array in tf1_arrays(model, [n for n in names if not n.startswith(left_out)]).items():
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
    (`transformers` names, Linear weights [out, in], metadata format "pt"; only the
    tensors that architecture has, see `huggingface_arrays`),
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
