"""BERT-Large pretraining and SQuAD fine-tuning in TensorFlow 2 (Keras 3, tf.distribute, XLA).

modeling     the config, the layers, the encoder and its heads (re-exported here)
checkpoints  Google (TF1) and Hugging Face checkpoints: reading, detection, writing, export
training     one training loop for every task, its parts, runtime options, experiment files
tasks        pretraining (masked LM + next sentence) and SQuAD v1.1, as tasks of the loop
studies      the quasi-random search and the batch-size scaling study
serving      a SQuAD SavedModel with in-graph tokenization

The command-line programs (`python -m bert.run_pretraining`, `run_squad`, `export_checkpoint`,
`search`, `reality_check`, `demo`) parse their options and call these; nothing imports them.
"""

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
