"""BERT in Keras 3: model, heads and pretrained-checkpoint loading."""

import data.tf_startup  # noqa: F401  (first: quiet TensorFlow start-up for the CLIs)
from bert import _moved
from bert.checkpoints import load_pretrained, save_tf1_checkpoint
from bert.modeling.config import BertConfig
from bert.modeling.models import (
    BertEncoder,
    BertPretrainingModel,
    BertSquadModel,
    build_encoder,
    build_pretraining_model,
    build_squad_model,
    dropout_seed_states,
    get_word_embeddings,
)

__all__ = [
    "BertConfig",
    "BertEncoder",
    "BertPretrainingModel",
    "BertSquadModel",
    "build_encoder",
    "build_pretraining_model",
    "build_squad_model",
    "dropout_seed_states",
    "get_word_embeddings",
    "load_pretrained",
    "save_tf1_checkpoint",
]

_moved.install()
