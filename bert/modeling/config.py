"""BERT model configuration.

`BertConfig` holds the fields of Google's `bert_config.json` plus
`layer_norm_eps`. It reads both Google's file and a Hugging Face `config.json`
(extra fields such as `model_type` or `pad_token_id` are ignored), validates
every field, and offers the presets of the BERT paper and of the 24 smaller
BERT models (Turc et al., 2019).
"""

import dataclasses
import json
import logging
import math
import os

import tensorflow as tf

from data import fileio

# Activation names accepted in `hidden_act`; see `bert.modeling.layers.get_activation`.
ACTIVATIONS = ("gelu", "gelu_new", "gelu_tanh", "gelu_pytorch_tanh", "relu", "tanh")

# Integer fields that fix the architecture (and so the checkpoint shapes).
SIZE_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
)

_PRESETS = {
    # name: (num_hidden_layers, hidden_size, num_attention_heads,
    #        intermediate_size)
    "tiny": (2, 128, 2, 512),
    "mini": (4, 256, 4, 1024),
    "small": (4, 512, 8, 2048),
    "medium": (8, 512, 8, 2048),
    "base": (12, 768, 12, 3072),
    "large": (24, 1024, 16, 4096),
}


@dataclasses.dataclass
class BertConfig:
    """Hyperparameters of a BERT encoder (the fields of `bert_config.json`).

    Attributes:
        vocab_size: Number of WordPiece ids.
        hidden_size: Width H of the encoder.
        num_hidden_layers: Number L of transformer layers.
        num_attention_heads: Number A of attention heads; must divide H.
        intermediate_size: Width of the feed-forward layer (4H in the paper).
        hidden_act: "gelu" (exact, erf), "gelu_new"/"gelu_tanh" (tanh
            approximation), "relu" or "tanh".
        hidden_dropout_prob: Dropout on embeddings and sub-layer outputs.
        attention_probs_dropout_prob: Dropout on the attention probabilities.
        max_position_embeddings: Rows of the learned position table.
        type_vocab_size: Number of segment (token type) ids.
        initializer_range: Stddev of the truncated-normal initializer.
        layer_norm_eps: LayerNorm epsilon (1e-12 in the original code).
    """

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12

    def __post_init__(self):
        self.validate()

    # ---------------------------------------------------------------- checks
    def validate(self, source="BertConfig"):
        """Raises ValueError naming `source` and the first invalid field."""

        def is_number(value):
            return (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and math.isfinite(value)
            )

        checks = [
            (
                name,
                "a positive integer",
                lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
            )
            for name in SIZE_FIELDS
        ]
        checks += [
            (name, "a number in [0, 1)", lambda v: is_number(v) and 0 <= v < 1)
            for name in ("hidden_dropout_prob", "attention_probs_dropout_prob")
        ]
        checks += [
            (name, "a positive number", lambda v: is_number(v) and v > 0)
            for name in ("initializer_range", "layer_norm_eps")
        ]
        checks += [("hidden_act", f"one of {list(ACTIVATIONS)}", lambda v: v in ACTIVATIONS)]
        for name, expected, is_valid in checks:
            value = getattr(self, name)
            if not is_valid(value):
                raise ValueError(f"{source}: field '{name}' must be {expected}, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"{source}: field 'num_attention_heads' must divide "
                f"hidden_size={self.hidden_size}, got "
                f"{self.num_attention_heads}"
            )

    # --------------------------------------------------------------- presets
    @classmethod
    def preset(cls, name, **overrides):
        """Returns a preset: tiny, mini, small, medium, base or large.

        All use the uncased English vocabulary (30522), 512 positions, 2 segment
        types, GELU and dropout 0.1. `overrides` replace individual fields.
        """
        if name not in _PRESETS:
            raise ValueError(f"Unknown BERT preset {name!r}; expected one of {list(_PRESETS)}")
        layers, hidden, heads, intermediate = _PRESETS[name]
        fields = dict(
            vocab_size=30522,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=intermediate,
        )
        fields.update(overrides)
        return cls(**fields)

    # ------------------------------------------------------------ json files
    @classmethod
    def from_dict(cls, values, source="config"):
        """Builds a config from a Google or Hugging Face style dict.

        Unknown keys (Hugging Face extras such as `model_type`) are ignored;
        missing required keys raise ValueError naming `source` and the key.
        """
        if not isinstance(values, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(values).__name__}")
        model_type = values.get("model_type", "bert")
        if model_type != "bert":
            raise ValueError(f"{source}: field 'model_type' must be 'bert', got {model_type!r}")
        position_type = values.get("position_embedding_type", "absolute")
        if position_type != "absolute":
            raise ValueError(
                f"{source}: field 'position_embedding_type' "
                f"must be 'absolute', got {position_type!r}"
            )
        fields = {}
        for field in dataclasses.fields(cls):
            if field.name in values:
                fields[field.name] = values[field.name]
            elif field.name == "layer_norm_eps":
                fields[field.name] = field.default  # Google's files omit it.
            else:
                raise ValueError(f"{source}: required field '{field.name}' is missing")
        ignored = sorted(set(values) - set(fields))
        if ignored:
            logging.debug("%s: ignoring fields %s", source, ignored)
        # Validate here rather than in __init__, so errors name the file.
        config = cls.__new__(cls)
        for name, value in fields.items():
            setattr(config, name, value)
        config.validate(source)
        return config

    @classmethod
    def from_json_file(cls, path):
        """Reads `bert_config.json` (Google) or `config.json` (Hugging Face)."""
        path = os.fspath(path)
        try:
            with tf.io.gfile.GFile(path, "r") as f:
                values = json.loads(f.read())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from e
        return cls.from_dict(values, source=path)

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json_string(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def to_json_file(self, path):
        """Writes the config as `bert_config.json`-style JSON (atomically)."""
        fileio.write_atomic(path, self.to_json_string())
