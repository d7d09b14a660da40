"""Serving export: a SQuAD SavedModel with in-graph tokenization, raw strings -> answer.

`export_saved_model` writes it from a fine-tuned `BertSquadModel`; `load` and `answer` use it.

The exported `serving_default` signature takes two [batch] string tensors, `question` and
`context`, and returns:

  answer      [batch] string: the best span, cut from the ORIGINAL context by byte offsets
              (so case, accents and punctuation are as in the context);
  score       [batch] float32: start logit + end logit of that span (-inf if none);
  start_byte, end_byte  [batch] int64: the span is context[start_byte:end_byte] (UTF-8 bytes).

Each example is ONE window of max_seq_length tokens: [CLS] question [SEP] context [SEP], the
question cut to max_query_length tokens and the context truncated to what is left (longer
contexts lose their tail; the Python pipeline of run_squad.py uses sliding windows instead).
The best span has start <= end, at most max_answer_length tokens, inside the context part.

Tokenization is the project's BERT WordPiece (`data.tokenization.InGraphTokenizer`, the same
tokens as `FullTokenizer`) with offsets added here: BERT's normalization maps every code
point on its own (clean, lower-case, strip accents, space out punctuation and CJK), so each
normalized byte is traced back to the code point it came from; words and pieces are then
split with tensorflow-text's offset-aware `WhitespaceTokenizer` and `FastWordpieceTokenizer`.

  python -m bert.run_squad --do_serve_demo --export_dir=DIR --question=... --context=...
"""

import os

import tensorflow as tf

from data import fileio, tokenization

SIGNATURE_KEY = "serving_default"


class OffsetWordpieceTokenizer(tf.Module):
    """BERT WordPiece ids of strings, with each piece's byte offsets in the original string.

    `tokenize_with_offsets(strings)` for [batch] strings returns three RaggedTensors
    [batch, (pieces)]: int64 ids, start bytes and end bytes (exclusive), so that
    `strings[b][start:end]` is the original text of a piece ("Éclair" for "eclair"; a "##"
    piece covers its part of the word).
    """

    def __init__(self, vocab_file, do_lower_case=True, name=None):
        super().__init__(name=name)
        import tensorflow_text as tf_text

        # Normalization tables and WordPiece vocabulary of the reference in-graph tokenizer.
        self.tokenizer = tokenization.InGraphTokenizer(vocab_file, do_lower_case)
        self.do_lower_case = do_lower_case
        self._words = tf_text.WhitespaceTokenizer()
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=list(self.tokenizer.vocab),
            suffix_indicator=tokenization.SUFFIX_INDICATOR,
            max_bytes_per_word=4 * tokenization.MAX_INPUT_CHARS_PER_WORD,
            token_out_type=tf.int64,
            unknown_token=tokenization.UNK,
            no_pretokenization=True,
        )

    def tokenize(self, strings):
        return self.tokenize_with_offsets(strings)[0]

    def tokenize_with_offsets(self, strings):
        strings = tf.convert_to_tensor(strings, tf.string)
        cps, char_starts = tf.strings.unicode_decode_with_offsets(
            strings, "UTF-8", errors="replace", replacement_char=0xFFFD
        )
        char_ends = _char_ends(char_starts, tf.strings.length(strings))
        # Every code point's normalized text ("" dropped, " x " split off, "e" for "é").
        normalized = self.tokenizer.normalize_code_points(cps)
        lengths = tf.strings.length(normalized)
        # owner[k] = flat index of the code point that produced normalized byte k (all rows).
        owner = tf.repeat(tf.range(tf.size(lengths, out_type=tf.int64)), tf.cast(lengths, tf.int64))
        text = tf.strings.reduce_join(cps.with_flat_values(normalized), axis=-1)
        row_bytes = tf.cast(tf.strings.length(text), tf.int64)
        row_offset = tf.cumsum(row_bytes, exclusive=True)

        words, word_starts, word_ends = self._words.tokenize_with_offsets(text)
        word_starts = tf.cast(word_starts.flat_values, tf.int64)
        word_ends = tf.cast(word_ends.flat_values, tf.int64)
        flat_words = words.flat_values
        too_long = tf.strings.length(flat_words, unit="UTF8_CHAR") > (
            tokenization.MAX_INPUT_CHARS_PER_WORD
        )
        ids, piece_starts, piece_ends = self._wordpiece.tokenize_with_offsets(
            tf.where(too_long, tokenization.UNK, flat_words)
        )
        # A word over 100 characters is one [UNK] covering the whole word.
        piece_word = ids.value_rowids()
        piece_long = tf.gather(too_long, piece_word)
        word_length = tf.gather(word_ends - word_starts, piece_word)
        begin = tf.where(
            piece_long, tf.zeros_like(word_length), tf.cast(piece_starts.flat_values, tf.int64)
        )
        end = tf.where(piece_long, word_length, tf.cast(piece_ends.flat_values, tf.int64))
        # Piece bytes in the concatenated normalized text -> original code points -> bytes.
        word_base = tf.gather(row_offset, words.value_rowids()) + word_starts
        base = tf.gather(word_base, piece_word)
        first_char = tf.gather(owner, base + begin)
        last_char = tf.gather(owner, base + end - 1)
        start_byte = tf.gather(tf.cast(char_starts.flat_values, tf.int64), first_char)
        end_byte = tf.gather(tf.cast(char_ends.flat_values, tf.int64), last_char)

        def regroup(values):  # [pieces] -> [batch, (words), (pieces)] -> [batch, (pieces)]
            by_word = ids.with_flat_values(values)
            return words.with_flat_values(by_word).merge_dims(-2, -1)

        return regroup(ids.flat_values), regroup(start_byte), regroup(end_byte)


def _char_ends(char_starts, byte_lengths):
    """End byte (exclusive) of every code point: the next one's start, or the string's end."""
    flat = char_starts.flat_values
    next_start = tf.concat([flat[1:], tf.zeros([1], flat.dtype)], 0)
    is_last = tf.equal(
        tf.range(tf.size(flat, out_type=tf.int64)) + 1,
        tf.gather(char_starts.row_limits(), char_starts.value_rowids()),
    )
    row_end = tf.gather(tf.cast(byte_lengths, flat.dtype), char_starts.value_rowids())
    return char_starts.with_flat_values(tf.where(is_last, row_end, next_start))


class SquadServingModule(tf.Module):
    """A SQuAD model with tokenization and span selection, for `tf.saved_model.save`."""

    def __init__(
        self,
        model,
        vocab_file,
        do_lower_case=True,
        max_seq_length=384,
        max_query_length=64,
        max_answer_length=30,
        name=None,
    ):
        super().__init__(name=name)
        if max_seq_length <= max_query_length + 3:
            raise ValueError(f"max_seq_length ({max_seq_length}) must exceed max_query_length + 3")
        self.model = model
        self.tokenizer = OffsetWordpieceTokenizer(vocab_file, do_lower_case)
        self.max_seq_length = max_seq_length
        self.max_query_length = max_query_length
        self.max_answer_length = max_answer_length
        self._cls_id = self.tokenizer.tokenizer.cls_id
        self._sep_id = self.tokenizer.tokenizer.sep_id
        if self._cls_id is None or self._sep_id is None:
            raise ValueError(f"{vocab_file}: the vocabulary needs [CLS] and [SEP]")

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="question"),
            tf.TensorSpec([None], tf.string, name="context"),
        ]
    )
    def serve(self, question, context):
        seq = self.max_seq_length
        question_ids = self.tokenizer.tokenize(question)[:, : self.max_query_length]
        context_ids, context_starts, context_ends = self.tokenizer.tokenize_with_offsets(context)
        question_length = question_ids.row_lengths()
        # Truncate the context to the single window.
        context_room = seq - question_length - 3
        context_length = tf.minimum(context_ids.row_lengths(), context_room)
        keep = tf.ragged.range(context_ids.row_lengths()) < tf.expand_dims(context_length, 1)
        context_ids = tf.ragged.boolean_mask(context_ids, keep)
        batch = tf.shape(question, out_type=tf.int64)[0]
        cls = tf.fill([batch, 1], tf.constant(self._cls_id, tf.int64))
        sep = tf.fill([batch, 1], tf.constant(self._sep_id, tf.int64))
        tokens = tf.concat([cls, question_ids, sep, context_ids, sep], axis=1)
        input_ids = tokens.to_tensor(0, shape=[None, seq])
        positions = tf.range(seq, dtype=tf.int64)[tf.newaxis, :]
        context_begin = tf.expand_dims(question_length + 2, 1)  # first context position
        context_end = context_begin + tf.expand_dims(context_length, 1)  # exclusive
        input_mask = tf.cast(positions < context_end + 1, tf.int32)
        segment_ids = tf.cast((positions >= context_begin) & (positions <= context_end), tf.int32)
        outputs = self.model(
            {
                "input_ids": tf.cast(input_ids, tf.int32),
                "input_mask": input_mask,
                "segment_ids": segment_ids,
            },
            training=False,
        )
        start_logits = tf.cast(outputs["start_logits"], tf.float32)
        end_logits = tf.cast(outputs["end_logits"], tf.float32)

        # Best (start, end): both in the context, start <= end, length <= max_answer_length.
        in_context = (positions >= context_begin) & (positions < context_end)
        span = tf.range(seq)[tf.newaxis, :] - tf.range(seq)[:, tf.newaxis]  # end - start
        valid = (
            in_context[:, :, tf.newaxis]
            & in_context[:, tf.newaxis, :]
            & ((span >= 0) & (span < self.max_answer_length))[tf.newaxis]
        )
        scores = start_logits[:, :, tf.newaxis] + end_logits[:, tf.newaxis, :]
        scores = tf.where(valid, scores, tf.fill(tf.shape(scores), float("-inf")))
        flat = tf.reshape(scores, [batch, seq * seq])
        best = tf.argmax(flat, axis=-1)
        score = tf.reduce_max(flat, axis=-1)
        has_span = context_length > 0
        start_token = tf.where(has_span, best // seq - context_begin[:, 0], 0)
        end_token = tf.where(has_span, best % seq - context_begin[:, 0], 0)
        starts = context_starts.to_tensor(0)
        ends = context_ends.to_tensor(0)
        start_byte = tf.where(has_span, tf.gather(starts, start_token, batch_dims=1), 0)
        end_byte = tf.where(has_span, tf.gather(ends, end_token, batch_dims=1), 0)
        answer = tf.strings.substr(context, start_byte, end_byte - start_byte)
        return {"answer": answer, "score": score, "start_byte": start_byte, "end_byte": end_byte}


def export_saved_model(
    model,
    vocab_file,
    export_dir,
    do_lower_case=True,
    max_seq_length=384,
    max_query_length=64,
    max_answer_length=30,
):
    """Writes the SavedModel to `export_dir`, replacing a previous export whole.

    A vocabulary larger than the model's `vocab_size`, or without BERT's special tokens, is
    refused (an out-of-range id would be clamped silently by XLA's gather).
    """
    tokenization.check_vocab_fits_model(
        tokenization.load_vocab(vocab_file), vocab_file, model.encoder.bert_config.vocab_size
    )
    module = SquadServingModule(
        model, vocab_file, do_lower_case, max_seq_length, max_query_length, max_answer_length
    )
    export_dir = os.fspath(export_dir).rstrip("/")
    fileio.write_directory_atomic(
        export_dir,
        lambda tmp_dir: tf.saved_model.save(
            module, tmp_dir, signatures={SIGNATURE_KEY: module.serve}
        ),
    )
    return export_dir


def load(export_dir):
    """The exported serving function: (question=[B] strings, context=[B] strings) -> dict."""
    import tensorflow_text  # noqa: F401  Registers the tokenizer ops before loading.

    loaded = tf.saved_model.load(os.fspath(export_dir))
    return loaded.signatures[SIGNATURE_KEY]


def answer(export_dir, question, context):
    """Answers one question about one paragraph with an exported model."""
    serve = load(export_dir)
    out = serve(question=tf.constant([question]), context=tf.constant([context]))
    return {
        "question": question,
        "answer": out["answer"][0].numpy().decode("utf-8"),
        "score": float(out["score"][0]),
        "start_byte": int(out["start_byte"][0]),
        "end_byte": int(out["end_byte"][0]),
    }
