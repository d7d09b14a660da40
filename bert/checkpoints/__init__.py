"""BERT checkpoints: Google (TF1) and Hugging Face formats, detection of kinds, and export.

* `names`: the variable table (`variable_table`, `VariableEntry`) and the Google <-> Hugging
  Face name maps (`hf_to_tf1_name`, `tf1_to_hf_name`), the one definition of each layout.
* `pretrained`: reading Google (`bert_config.json` + `bert_model.ckpt.*`) and Hugging Face
  (`config.json` + `model.safetensors`) directories into a model (`load_pretrained`).
* `detection`: telling `--init_checkpoint` kinds apart, this project's object-based
  pretraining and SQuAD checkpoints included (`initialize_from_checkpoint`, `restore_model`,
  `resolve_config`, `resolve_vocab_file`, `optimizer_step_in_checkpoint`).
* `writing`: `save_tf1_checkpoint`, `save_google`, `save_huggingface`.
* `export`: the options of `python -m bert.export_checkpoint` and `export.export`.

Every public name of these modules is importable from `bert.checkpoints` (but `export.export`:
the name `export` stays the submodule's). All paths go
through `tf.io.gfile`, so `gs://` works.
"""

from bert.checkpoints.detection import (
    RestoredModel,
    checkpoint_dir,
    initialize_from_checkpoint,
    object_checkpoint,
    optimizer_step_in_checkpoint,
    resolve_config,
    resolve_vocab_file,
    restore_model,
)
from bert.checkpoints.export import FORMATS, ExportOptions
from bert.checkpoints.names import (
    GOOGLE_CHECKPOINT,
    GOOGLE_CONFIG,
    HF_CONFIG,
    HF_WEIGHTS,
    PHASE_CONFIG,
    VOCAB_FILE,
    VariableEntry,
    hf_to_tf1_name,
    tf1_to_hf_name,
    variable_table,
)
from bert.checkpoints.pretrained import LoadResult, load_pretrained, restore_weights
from bert.checkpoints.writing import (
    HF_ARCHITECTURES,
    check_new_directory,
    huggingface_arrays,
    huggingface_config,
    save_google,
    save_huggingface,
    save_tf1_checkpoint,
    tf1_arrays,
)

__all__ = [
    "FORMATS",
    "GOOGLE_CHECKPOINT",
    "GOOGLE_CONFIG",
    "HF_ARCHITECTURES",
    "HF_CONFIG",
    "HF_WEIGHTS",
    "PHASE_CONFIG",
    "VOCAB_FILE",
    "ExportOptions",
    "LoadResult",
    "RestoredModel",
    "VariableEntry",
    "check_new_directory",
    "checkpoint_dir",
    "hf_to_tf1_name",
    "huggingface_arrays",
    "huggingface_config",
    "initialize_from_checkpoint",
    "load_pretrained",
    "object_checkpoint",
    "optimizer_step_in_checkpoint",
    "resolve_config",
    "resolve_vocab_file",
    "restore_model",
    "restore_weights",
    "save_google",
    "save_huggingface",
    "save_tf1_checkpoint",
    "tf1_arrays",
    "tf1_to_hf_name",
    "variable_table",
]
