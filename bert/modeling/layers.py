"""Keras 3 layers of the BERT encoder and its heads.

The encoder is the original post-LayerNorm BERT (Devlin et al., 2019):

    x = LayerNorm(word + position + token_type embeddings); dropout
    for each layer:
        x = LayerNorm(x + dropout(Dense(SelfAttention(x))))
        x = LayerNorm(x + dropout(Dense(act(Dense(x)))))
    pooled = tanh(Dense(x[:, 0]))

Performance notes. The attention projections keep the head axis in their
kernels ([H, A, H/A] for query/key/value, [A, H/A, H] for the output), as the
checkpoints name them, but run as flat [rows, H] matmuls
(`TransformerLayer._projections`): on CPU the einsum form's kernel gradient is a
batched matmul summed over the batch, slower than one flat matmul. Under a mixed
precision policy matmuls run in the compute dtype (bfloat16) while LayerNorm
(Keras computes it in float32 internally), the embedding sum and softmax run
in float32. The masked-LM head gathers the masked positions before its
transform and uses one plain [B*P, H] x [H, V] matmul for the vocabulary;
for pretraining the last `TransformerLayer` is called with `query_positions`
and computes only the rows the heads read.
"""

import math

import keras
import tensorflow as tf
from keras import ops

# Large negative logit for padded keys, as in the original BERT code.
_MASK_VALUE = -10000.0


def gelu(x):
    """Exact GELU as the original BERT writes it, x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)).

    Keras's exact gelu goes through erfc, whose XLA CPU kernel (two branches and an exp) took
    twice as long as erf's rational approximation; the two agree to 1e-6 (float32 level).
    """
    return 0.5 * x * (1.0 + tf.math.erf(x * 0.7071067811865476))


def get_activation(name):
    """Returns the activation function for a `hidden_act` name."""
    if name == "gelu":
        return gelu
    if name in ("gelu_new", "gelu_tanh", "gelu_pytorch_tanh"):
        return lambda x: keras.activations.gelu(x, approximate=True)
    if name in ("relu", "tanh"):
        return keras.activations.get(name)
    raise ValueError(f"Unknown hidden_act {name!r}")


def truncated_normal(stddev):
    """BERT's initializer: normal(0, stddev) truncated at two stddevs."""
    return keras.initializers.TruncatedNormal(stddev=stddev)


def attention_bias(input_mask):
    """[B, S] 0/1 mask -> additive float32 bias [B, 1, 1, S] (0 or -10000)."""
    mask = ops.cast(input_mask, "float32")[:, None, None, :]
    return (1.0 - mask) * _MASK_VALUE


def _lowbias32(x):
    """A 32-bit integer mixer (a bijection with strong avalanche) on uint32."""
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))
    x = x * tf.constant(0x7FEB352D, tf.uint32)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 15))
    x = x * tf.constant(0x846CA68B, tf.uint32)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))


class Dropout(keras.layers.Layer):
    """Inverted dropout, like `keras.layers.Dropout`, with a faster mask.

    The keep mask is a counter-based hash, computed elementwise so XLA fuses
    it into the masking: each element's index is hashed twice with the
    `lowbias32` integer mixer (constants 0x7feb352d, 0x846ca68b), xor-ed with
    the two words of a per-call seed, and the element is kept when the 32-bit
    hash is >= round(rate * 2**32). Drawing the mask with TensorFlow's random
    ops (Philox), as `keras.layers.Dropout` does, is a noticeable share of a
    training step under XLA on CPU; the hash is close to the cost of the bare
    multiply. It has no measurable correlation between neighbouring elements
    or successive seeds. The seed is drawn from a `keras.random.SeedGenerator`,
    as Keras does.

    Args:
        rate: Fraction of the inputs to drop, in [0, 1).
        seed: Optional int seed of the generator.
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if self.rate > 0 else None

    def call(self, inputs, training=None):
        if not training or self.rate == 0:
            return inputs
        # The generator's state is int64; its two words reduced to uint32.
        seed = tf.bitcast(
            tf.cast(tf.math.floormod(self.seed_generator.next(), tf.int32.max - 1), tf.int32),
            tf.uint32,
        )
        index = tf.bitcast(tf.reshape(tf.range(tf.size(inputs)), tf.shape(inputs)), tf.uint32)
        bits = _lowbias32(
            tf.bitwise.bitwise_xor(_lowbias32(tf.bitwise.bitwise_xor(index, seed[0])), seed[1])
        )
        threshold = tf.constant(min(round(self.rate * 2**32), 2**32 - 1), tf.uint32)
        keep = bits >= threshold
        scale = ops.cast(1.0 / (1.0 - self.rate), inputs.dtype)
        return tf.where(keep, inputs * scale, ops.zeros_like(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed)
        return config


class BertEmbeddings(keras.layers.Layer):
    """Sum of word, position and token-type embeddings, LayerNorm, dropout.

    The sum and the LayerNorm are computed in float32; the result is returned
    in the layer's compute dtype.

    Args:
        vocab_size, type_vocab_size, max_position_embeddings, hidden_size:
            Table sizes.
        initializer_range: Stddev of the truncated-normal initializer.
        layer_norm_eps: LayerNorm epsilon.
        dropout_rate: Dropout applied to the normalized sum.
    """

    def __init__(
        self,
        vocab_size,
        type_vocab_size,
        max_position_embeddings,
        hidden_size,
        initializer_range=0.02,
        layer_norm_eps=1e-12,
        dropout_rate=0.1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.type_vocab_size = type_vocab_size
        self.max_position_embeddings = max_position_embeddings
        self.hidden_size = hidden_size
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.dropout_rate = dropout_rate
        # Read the position table in float32 even under a mixed policy.
        self.autocast = False
        init = truncated_normal(initializer_range)
        # Float32 sub-layers: the tables stay exact and the sum is not rounded.
        self.word_embeddings = keras.layers.Embedding(
            vocab_size,
            hidden_size,
            embeddings_initializer=init,
            dtype="float32",
            name="word_embeddings",
        )
        self.token_type_embeddings = keras.layers.Embedding(
            type_vocab_size,
            hidden_size,
            embeddings_initializer=init,
            dtype="float32",
            name="token_type_embeddings",
        )
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, dtype="float32", name="layer_norm"
        )
        self.dropout = Dropout(dropout_rate, name="dropout")

    def build(self, input_ids_shape=None, segment_ids_shape=None):
        self.word_embeddings.build()
        self.token_type_embeddings.build()
        self.position_embeddings = self.add_weight(
            name="position_embeddings",
            shape=(self.max_position_embeddings, self.hidden_size),
            initializer=truncated_normal(self.initializer_range),
            dtype="float32",
        )
        self.layer_norm.build((None, None, self.hidden_size))

    def call(self, input_ids, segment_ids, training=None):
        seq_length = ops.shape(input_ids)[1]
        x = (
            self.word_embeddings(input_ids)
            + self.token_type_embeddings(segment_ids)
            + self.position_embeddings[None, :seq_length, :]
        )
        x = ops.cast(self.layer_norm(x), self.compute_dtype)
        return self.dropout(x, training=training)

    def compute_output_shape(self, input_ids_shape, segment_ids_shape=None):
        return tuple(input_ids_shape) + (self.hidden_size,)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            type_vocab_size=self.type_vocab_size,
            max_position_embeddings=self.max_position_embeddings,
            hidden_size=self.hidden_size,
            initializer_range=self.initializer_range,
            layer_norm_eps=self.layer_norm_eps,
            dropout_rate=self.dropout_rate,
        )
        return config


class _ProjectionWeights(keras.layers.Layer):
    """The kernel and bias of one attention projection of `TransformerLayer`.

    Never called: `TransformerLayer` applies the projections itself as flat
    matmuls. The weights live in a layer of their own so that their paths
    (`layer_0/query/kernel`) and object-checkpoint keys (`query/_kernel`,
    `query/bias`, the attributes of a Keras Dense layer) are those of the
    `EinsumDense` layers earlier versions used, and old checkpoints restore.

    Args:
        kernel_shape: [H, A, D] for query/key/value, [A, D, H] for the output.
        kernel_initializer: Initializer of the kernel; the bias starts at 0.
        bias_size: None for a bias of shape `kernel_shape[1:]` (one per head
            unit), else the int size of a flat bias.
    """

    def __init__(self, kernel_shape, kernel_initializer, bias_size=None, **kwargs):
        super().__init__(**kwargs)
        self.kernel_shape = tuple(kernel_shape)
        self.bias_size = bias_size
        self.bias_shape = self.kernel_shape[1:] if bias_size is None else (bias_size,)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape=None):
        self._kernel = self.add_weight(
            name="kernel", shape=self.kernel_shape, initializer=self.kernel_initializer
        )
        self.bias = self.add_weight(name="bias", shape=self.bias_shape, initializer="zeros")

    @property
    def kernel(self):
        return self._kernel

    def get_config(self):
        config = super().get_config()
        config.update(
            kernel_shape=self.kernel_shape,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_size=self.bias_size,
        )
        return config


class TransformerLayer(keras.layers.Layer):
    """One post-LayerNorm BERT transformer layer.

    Call arguments:
        x: [B, S, H] hidden states.
        input_mask: int [B, S], 1 for real tokens and 0 for padding.
        training: enables dropout.
        query_positions: optional int [B, Q]. The layer then returns only the
            outputs at these positions, [B, Q, H], and computes only what they
            need (the same values as gathering the full output).

    Args:
        hidden_size: H.
        num_attention_heads: A (divides H).
        intermediate_size: Width of the feed-forward layer.
        hidden_act: Activation name (see `get_activation`).
        hidden_dropout_prob: Dropout on the two sub-layer outputs.
        attention_probs_dropout_prob: Dropout on attention probabilities.
        initializer_range: Stddev of the truncated-normal initializer.
        layer_norm_eps: LayerNorm epsilon.
    """

    def __init__(
        self,
        hidden_size,
        num_attention_heads,
        intermediate_size,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        initializer_range=0.02,
        layer_norm_eps=1e-12,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.head_size = hidden_size // num_attention_heads

        init = truncated_normal(initializer_range)
        heads, head_size = num_attention_heads, self.head_size

        def projection(kernel_shape, name, bias_size=None):
            return _ProjectionWeights(
                kernel_shape, init, bias_size, dtype=self.dtype_policy, name=name
            )

        self.query = projection((hidden_size, heads, head_size), "query")
        self.key = projection((hidden_size, heads, head_size), "key")
        self.value = projection((hidden_size, heads, head_size), "value")
        self.attention_output = projection(
            (heads, head_size, hidden_size), "attention_output", bias_size=hidden_size
        )
        self.attention_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, dtype=self.dtype_policy, name="attention_layer_norm"
        )
        self.intermediate = keras.layers.Dense(
            intermediate_size,
            activation=get_activation(hidden_act),
            kernel_initializer=init,
            dtype=self.dtype_policy,
            name="intermediate",
        )
        self.output_dense = keras.layers.Dense(
            hidden_size, kernel_initializer=init, dtype=self.dtype_policy, name="output"
        )
        self.output_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, dtype=self.dtype_policy, name="output_layer_norm"
        )
        self.attention_dropout = Dropout(attention_probs_dropout_prob, name="attention_dropout")
        self.hidden_dropout = Dropout(hidden_dropout_prob, name="hidden_dropout")

    def build(self, x_shape, input_mask_shape=None):
        hidden = (None, None, self.hidden_size)
        for weights in (self.query, self.key, self.value, self.attention_output):
            weights.build()
        self.attention_layer_norm.build(hidden)
        self.intermediate.build(hidden)
        self.output_dense.build((None, None, self.intermediate_size))
        self.output_layer_norm.build(hidden)

    def _projections(self, x, projections):
        """Projections [B, S, A, D] of `x` by `projections` (`_ProjectionWeights`).

        One [B*S, H] x [H, k*H] matmul instead of k einsums: the einsum
        gradient of a "bsh,hnd" kernel is a batched [B, H, H] matmul summed
        over B, slower on CPU than the flat one.
        """
        batch, seq_length, hidden = ops.shape(x)
        kernel = ops.concatenate(
            [ops.reshape(ops.cast(p.kernel, x.dtype), (hidden, -1)) for p in projections], axis=1
        )
        bias = ops.concatenate(
            [ops.reshape(ops.cast(p.bias, x.dtype), (-1,)) for p in projections], axis=0
        )
        out = ops.matmul(ops.reshape(x, (-1, hidden)), kernel) + bias
        out = ops.reshape(
            out, (batch, seq_length, len(projections), self.num_attention_heads, self.head_size)
        )
        return [out[:, :, i] for i in range(len(projections))]

    def _output_projection(self, context):
        """[B, S, A, D] -> [B, S, H] as one flat matmul (see `_projections`)."""
        batch, seq_length = ops.shape(context)[0], ops.shape(context)[1]
        projection = self.attention_output
        kernel = ops.reshape(
            ops.cast(projection.kernel, context.dtype), (self.hidden_size, self.hidden_size)
        )
        out = ops.matmul(ops.reshape(context, (-1, self.hidden_size)), kernel)
        out = out + ops.cast(projection.bias, context.dtype)
        return ops.reshape(out, (batch, seq_length, self.hidden_size))

    def call(self, x, input_mask, training=None, query_positions=None):
        if query_positions is None:
            query, key, value = self._projections(x, (self.query, self.key, self.value))
        else:
            # Only the outputs at query_positions are wanted: queries, the
            # attention output and the feed-forward run on those rows alone,
            # keys and values still on every token.
            key, value = self._projections(x, (self.key, self.value))
            x = tf.gather(x, ops.cast(query_positions, "int32"), batch_dims=1)
            (query,) = self._projections(x, (self.query,))
        # Scaling the [B, S, A, D] query is cheaper than the [B, A, S, S]
        # logits.
        query = query * ops.cast(1.0 / math.sqrt(self.head_size), x.dtype)
        logits = ops.einsum("bqnd,bknd->bnqk", query, key)
        # Softmax in float32, the mask bias added in float32 too.
        logits = ops.cast(logits, "float32") + attention_bias(input_mask)
        probs = ops.softmax(logits, axis=-1)
        probs = self.attention_dropout(ops.cast(probs, x.dtype), training=training)
        context = ops.einsum("bnqk,bknd->bqnd", probs, value)
        attention = self.hidden_dropout(self._output_projection(context), training=training)
        x = self.attention_layer_norm(x + attention)

        ffn = self.output_dense(self.intermediate(x))
        ffn = self.hidden_dropout(ffn, training=training)
        return self.output_layer_norm(x + ffn)

    def compute_output_shape(self, x_shape, input_mask_shape=None, query_positions_shape=None):
        if query_positions_shape is None:
            return x_shape
        return (x_shape[0], query_positions_shape[1], x_shape[2])

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_size=self.hidden_size,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            hidden_act=self.hidden_act,
            hidden_dropout_prob=self.hidden_dropout_prob,
            attention_probs_dropout_prob=self.attention_probs_dropout_prob,
            initializer_range=self.initializer_range,
            layer_norm_eps=self.layer_norm_eps,
        )
        return config


class MaskedLMHead(keras.layers.Layer):
    """Masked-LM head with the output matrix tied to the word embeddings.

    Gathers the hidden states at `positions` first, so the transform and the
    [H, V] projection run on B*P rows instead of B*S.

    Call arguments:
        sequence_output: [B, S, H], or [B, P, H] already at the masked
            positions when `positions` is None.
        positions: int [B, P] masked positions, or None.

    Returns:
        float32 logits [B, P, V].

    Args:
        word_embeddings: the encoder's `keras.layers.Embedding` (tied weights).
        hidden_act: Transform activation name.
        initializer_range, layer_norm_eps: as in the encoder.
    """

    def __init__(
        self,
        word_embeddings,
        hidden_act="gelu",
        initializer_range=0.02,
        layer_norm_eps=1e-12,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.word_embeddings = word_embeddings
        self.hidden_act = hidden_act
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        # Variables are cast by hand: the bias is added to float32 logits.
        self.autocast = False
        self.transform = keras.layers.Dense(
            word_embeddings.output_dim,
            activation=get_activation(hidden_act),
            kernel_initializer=truncated_normal(initializer_range),
            dtype=self.dtype_policy,
            name="transform",
        )
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, dtype=self.dtype_policy, name="layer_norm"
        )

    def build(self, sequence_output_shape, positions_shape=None):
        hidden_size = self.word_embeddings.output_dim
        self.transform.build((None, None, hidden_size))
        self.layer_norm.build((None, None, hidden_size))
        self.output_bias = self.add_weight(
            name="output_bias",
            shape=(self.word_embeddings.input_dim,),
            initializer="zeros",
            dtype="float32",
        )

    def call(self, sequence_output, positions=None):
        x = sequence_output
        if positions is not None:
            x = tf.gather(x, ops.cast(positions, "int32"), batch_dims=1)
        x = self.layer_norm(self.transform(x))
        # A plain [B*P, H] x [H, V] matmul: an einsum with the batch axis
        # would broadcast the table and reduce a [B, V, H] gradient.
        batch, num_positions, hidden = ops.shape(x)
        table = ops.cast(self.word_embeddings.embeddings, x.dtype)
        logits = tf.matmul(ops.reshape(x, (-1, hidden)), table, transpose_b=True)
        logits = ops.reshape(logits, (batch, num_positions, -1))
        return ops.cast(logits, "float32") + self.output_bias

    def compute_output_shape(self, sequence_output_shape, positions_shape=None):
        rows = sequence_output_shape[:2] if positions_shape is None else positions_shape
        return tuple(rows) + (self.word_embeddings.input_dim,)

    def get_config(self):
        # The tied embedding layer is passed in by the model that owns it.
        raise NotImplementedError("MaskedLMHead is rebuilt by bert.build_pretraining_model.")
