# Copyright 2026 The bert-large-batch Authors. Apache-2.0.
r"""Learns a WordPiece vocab or a SentencePiece model from a text corpus.

The corpus is in BERT's pretraining text format: one sentence per line, a
blank line between documents.

  python -m data.learn_vocab --input_file=corpus/*.txt --output=vocab.txt \
      --vocab_size=30522 --kind=wordpiece --do_lower_case
  python -m data.learn_vocab --input_file=a.txt,b.txt --output=spm.model \
      --vocab_size=8000 --kind=sentencepiece --do_lower_case

WordPiece: words are split with this project's BasicTokenizer (so the learned
pieces match what `data.tokenization.FullTokenizer` will see), then
tensorflow_text's WordPiece learner (the one behind
`bert_vocab_from_dataset`) builds the vocab with
[PAD], [UNK], [CLS], [SEP], [MASK] first. The learner's size is approximate
(it searches a count threshold), usually within a few percent.

The learner keeps pieces seen at least --min_count times (default 2).

SentencePiece: a unigram model with [PAD]=0, <unk>=1 and the user-defined
symbols [CLS], [SEP], [MASK] (ids 2, 3, 4); with --do_lower_case the model
case-folds by itself (normalization rule nmt_nfkc_cf; special tokens are
then inserted as ids, since "[CLS]" in raw text is case-folded like any other
text). The model is written
to --output and its piece list to the same name with the suffix ".vocab". Use it
with `--spm_model_file` of `data.create_pretraining_data` (and of run_squad).

Outputs are written atomically (`data.fileio`).
"""

import dataclasses
import sys
import time

from absl import app, flags, logging

from data import cli, fileio, tokenization

# Re-exported: the library's names under this module's old paths.
from data.vocab_learning import (  # noqa: F401
    count_words,
    expand_input_files,
    learn_wordpiece_vocab,
    read_sentences,
    train_sentencepiece,
)

option = cli.option


@dataclasses.dataclass(frozen=True)
class LearnVocabOptions:
    """The program's flags."""

    input_file: str | None = option(None, "Input text: a glob or a comma-separated list of globs.")
    output: str | None = option(None, "Output vocab.txt (wordpiece) or .model (sentencepiece).")
    vocab_size: int = option(30522, "Target vocabulary size.")
    kind: str = option("wordpiece", "Vocabulary kind.", choices=("wordpiece", "sentencepiece"))
    do_lower_case: bool = option(True, "Lower-case (and, for WordPiece, strip accents).")
    min_count: int = option(2, "WordPiece: keep pieces seen at least this many times.")
    max_sentences: int = option(0, "If > 0, learn from at most this many sentences.")


def main(argv):
    del argv
    options = cli.from_flags(LearnVocabOptions)
    files = expand_input_files(options.input_file)
    logging.info(
        "Learning a %s vocab of size %d from %d file(s)",
        options.kind,
        options.vocab_size,
        len(files),
    )
    start = time.time()
    lines = read_sentences(files, options.max_sentences)
    if options.kind == "wordpiece":
        vocab = learn_wordpiece_vocab(
            lines, options.vocab_size, options.do_lower_case, min_count=options.min_count
        )
        fileio.write_atomic(options.output, "".join(token + "\n" for token in vocab))
        size = len(vocab)
    else:
        train_sentencepiece(lines, options.output, options.vocab_size, options.do_lower_case)
        size = tokenization.SentencePieceTokenizer(options.output).vocab_size
    logging.info("Wrote %s (%d entries) in %.1f s", options.output, size, time.time() - start)


if __name__ == "__main__":
    cli.define_flags(LearnVocabOptions, module_name=sys.argv[0])
    flags.mark_flags_as_required(["input_file", "output"])
    app.run(main)
