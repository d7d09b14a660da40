"""BERT encoder, pretraining model and SQuAD model (Keras 3 functional).

All models take a dict of int32 tensors:

    {"input_ids": [B, S], "input_mask": [B, S], "segment_ids": [B, S]}

and return dicts. Head logits are float32 under any dtype policy.
"""

import keras

from bert.modeling import layers as bert_layers
from bert.modeling.config import BertConfig

ENCODER_INPUTS = ("input_ids", "input_mask", "segment_ids")


def _int_inputs(names):
    return {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in names}


class BertEncoder(keras.Model):
    """The BERT encoder with pooler.

    Outputs `{"sequence_output": [B, S, H], "pooled_output": [B, H]}`.

    Attributes:
        bert_config: the `BertConfig`.
        embeddings: `bert.modeling.layers.BertEmbeddings`.
        transformer_layers: list of `bert.modeling.layers.TransformerLayer`.
        pooler: Dense + tanh applied to the [CLS] state.
    """

    def __init__(self, config, name="bert_encoder", **kwargs):
        if isinstance(config, dict):
            config = BertConfig(**config)
        # === Layers ===
        self.bert_config = config
        self.embeddings = bert_layers.BertEmbeddings(
            vocab_size=config.vocab_size,
            type_vocab_size=config.type_vocab_size,
            max_position_embeddings=config.max_position_embeddings,
            hidden_size=config.hidden_size,
            initializer_range=config.initializer_range,
            layer_norm_eps=config.layer_norm_eps,
            dropout_rate=config.hidden_dropout_prob,
            name="embeddings",
        )
        self.transformer_layers = [
            bert_layers.TransformerLayer(
                hidden_size=config.hidden_size,
                num_attention_heads=config.num_attention_heads,
                intermediate_size=config.intermediate_size,
                hidden_act=config.hidden_act,
                hidden_dropout_prob=config.hidden_dropout_prob,
                attention_probs_dropout_prob=(config.attention_probs_dropout_prob),
                initializer_range=config.initializer_range,
                layer_norm_eps=config.layer_norm_eps,
                name=f"layer_{i}",
            )
            for i in range(config.num_hidden_layers)
        ]
        self.pooler = keras.layers.Dense(
            config.hidden_size,
            activation="tanh",
            kernel_initializer=bert_layers.truncated_normal(config.initializer_range),
            name="pooler",
        )

        # === Functional model ===
        inputs = _int_inputs(ENCODER_INPUTS)
        super().__init__(inputs=inputs, outputs=self.encode(inputs), name=name, **kwargs)

    def encode(self, inputs, output_positions=None, training=None):
        """Runs the encoder's layers on `inputs` (the encoder's input dict).

        With `output_positions` (int [B, P]), "sequence_output" is [B, P, H]:
        the states at those positions only. The last layer then computes just
        them and [CLS] (for the pooler), not all S rows: the same values, with
        less work when P is much smaller than S (masked-LM pretraining).
        """
        mask = inputs["input_mask"]
        x = self.embeddings(inputs["input_ids"], inputs["segment_ids"], training=training)
        *layers, last = self.transformer_layers
        for layer in layers:
            x = layer(x, mask, training=training)
        query_positions = None
        if output_positions is not None:
            cls_position = keras.ops.zeros_like(output_positions[:, :1])
            query_positions = keras.ops.concatenate([cls_position, output_positions], 1)
        x = last(x, mask, training=training, query_positions=query_positions)
        pooled = self.pooler(x[:, 0, :])
        sequence = x if output_positions is None else x[:, 1:, :]
        return {"sequence_output": sequence, "pooled_output": pooled}

    def get_config(self):
        return {"config": self.bert_config.to_dict(), "name": self.name}


class BertPretrainingModel(keras.Model):
    """Encoder + masked-LM head + next-sentence head.

    Inputs: the encoder inputs plus "masked_lm_positions" int32 [B, P].
    Outputs: {"mlm_logits": float32 [B, P, V], "nsp_logits": float32 [B, 2]}.

    The heads read the encoder only at [CLS] and the masked positions, so the
    last encoder layer computes just those P + 1 rows (`BertEncoder.encode`):
    the same outputs and gradients as the full encoder, with the queries, the
    attention output and the feed-forward of that layer on P + 1 rows, not S.

    Attributes:
        encoder: the `BertEncoder`.
        mlm_head: `bert.modeling.layers.MaskedLMHead` (tied to the word embeddings).
        nsp_head: Dense(2) on the pooled output, in float32.
    """

    def __init__(self, config=None, encoder=None, name="bert_pretraining", **kwargs):
        if isinstance(config, dict):
            config = BertConfig(**config)
        encoder = encoder or BertEncoder(config)
        config = encoder.bert_config
        init = bert_layers.truncated_normal(config.initializer_range)
        # === Layers ===
        self.encoder = encoder
        self.mlm_head = bert_layers.MaskedLMHead(
            get_word_embeddings(encoder),
            hidden_act=config.hidden_act,
            initializer_range=config.initializer_range,
            layer_norm_eps=config.layer_norm_eps,
            name="mlm_head",
        )
        self.nsp_head = keras.layers.Dense(
            2, kernel_initializer=init, dtype="float32", name="nsp_head"
        )

        # === Functional model ===
        inputs = _int_inputs(ENCODER_INPUTS + ("masked_lm_positions",))
        # The heads read only [CLS] and the masked positions, so the last layer
        # runs on those rows only (`BertEncoder.encode`).
        outputs = encoder.encode(inputs, output_positions=inputs["masked_lm_positions"])
        mlm_logits = self.mlm_head(outputs["sequence_output"])
        nsp_logits = self.nsp_head(outputs["pooled_output"])
        super().__init__(
            inputs=inputs,
            outputs={"mlm_logits": mlm_logits, "nsp_logits": nsp_logits},
            name=name,
            **kwargs,
        )
        self.bert_config = config

    def get_config(self):
        return {"config": self.bert_config.to_dict(), "name": self.name}


class BertSquadModel(keras.Model):
    """Encoder + span head: Dense(2) on every position -> start/end logits.

    Outputs: {"start_logits": float32 [B, S], "end_logits": float32 [B, S]}.

    Attributes:
        encoder: the `BertEncoder`.
        span_head: Dense(2), in float32.
    """

    def __init__(self, config=None, encoder=None, name="bert_squad", **kwargs):
        if isinstance(config, dict):
            config = BertConfig(**config)
        encoder = encoder or BertEncoder(config)
        config = encoder.bert_config
        # === Layers ===
        self.encoder = encoder
        self.span_head = keras.layers.Dense(
            2,
            kernel_initializer=bert_layers.truncated_normal(config.initializer_range),
            dtype="float32",
            name="span_head",
        )

        # === Functional model ===
        inputs = _int_inputs(ENCODER_INPUTS)
        sequence_output = encoder(inputs)["sequence_output"]
        logits = self.span_head(sequence_output)
        super().__init__(
            inputs=inputs,
            outputs={"start_logits": logits[:, :, 0], "end_logits": logits[:, :, 1]},
            name=name,
            **kwargs,
        )
        self.bert_config = config

    def get_config(self):
        return {"config": self.bert_config.to_dict(), "name": self.name}


def build_encoder(config, name="bert_encoder"):
    """Returns a `BertEncoder` for `config` (a `BertConfig`)."""
    return BertEncoder(config, name=name)


def build_pretraining_model(config, encoder=None):
    """Returns a `BertPretrainingModel`, reusing `encoder` if given."""
    return BertPretrainingModel(config, encoder=encoder)


def build_squad_model(config, encoder=None):
    """Returns a `BertSquadModel`, reusing `encoder` if given."""
    return BertSquadModel(config, encoder=encoder)


def get_word_embeddings(encoder):
    """The encoder's word-embedding `keras.layers.Embedding` layer."""
    return encoder.embeddings.word_embeddings


def dropout_seed_states(model):
    """The state variables of `model`'s dropout generators.

    Keras keeps them in `model.variables` but out of the object graph that
    `tf.train.Checkpoint(model=...)` saves; training checkpoints list them
    explicitly, so a resumed run continues the dropout masks where the killed
    one stopped instead of restarting them.
    """
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]
