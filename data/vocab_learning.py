"""Learning a vocabulary from text: WordPiece (tensorflow_text's learner) or SentencePiece.

The library of `python -m data.learn_vocab` (see its docstring for the algorithms). Lines of
BERT-format text come from `read_sentences`; `learn_wordpiece_vocab` returns the tokens and
`train_sentencepiece` writes the model and its .vocab atomically.
"""

import collections
import math
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence

from absl import logging

from data import fileio, tokenization


class _Progress:
    """Logs items/s every few seconds."""

    def __init__(self, what: str, every_seconds: float = 10.0):
        self.what, self.every = what, every_seconds
        self.start = self.last = time.time()
        self.count = 0

    def update(self, n: int = 1):
        self.count += n
        now = time.time()
        if now - self.last >= self.every:
            self.last = now
            logging.info("%s: %d (%.0f/s)", self.what, self.count, self.count / (now - self.start))


def expand_input_files(input_file: str) -> list[str]:
    """A glob or comma-separated globs -> sorted file list (error if empty)."""
    import tensorflow as tf

    files = []
    for pattern in filter(None, (p.strip() for p in input_file.split(","))):
        matched = sorted(tf.io.gfile.glob(pattern))
        if not matched:
            raise FileNotFoundError(f"--input_file: no file matches {pattern!r}")
        files.extend(matched)
    if not files:
        raise ValueError("--input_file is empty")
    return files


def read_sentences(files: Sequence[str], max_sentences: int = 0) -> Iterator[str]:
    """Non-blank lines of the files (document breaks carry no vocab info)."""
    import tensorflow as tf

    count = 0
    progress = _Progress("sentences read")
    for path in files:
        with tf.io.gfile.GFile(path, "rb") as f:
            for line_no, raw in enumerate(f, start=1):
                try:
                    line = raw.decode("utf-8").strip()
                except UnicodeDecodeError as e:
                    raise ValueError(f"{path}:{line_no}: not valid UTF-8 ({e.reason})") from None
                if line:
                    yield line
                    count += 1
                    progress.update()
                    if max_sentences and count >= max_sentences:
                        return


def count_words(lines: Iterable[str], do_lower_case: bool = True) -> collections.Counter:
    """Counts the BasicTokenizer words of the lines."""
    basic = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
    counts = collections.Counter()
    for line in lines:
        counts.update(basic.tokenize(line))
    return counts


def learn_wordpiece_vocab(
    lines: Iterable[str],
    vocab_size: int,
    do_lower_case: bool = True,
    reserved_tokens: Sequence[str] = (tokenization.RESERVED_TOKENS),
    min_count: int = 2,
    num_iterations: int = 4,
    slack_ratio: float = 0.05,
    max_token_length: int = 50,
    max_unique_chars: int = 1000,
) -> list[str]:
    """Learns a WordPiece vocab (reserved tokens first) from text lines.

    This is tensorflow_text's `bert_vocab_from_dataset` learner with two
    changes. Words come from this project's BasicTokenizer (what FullTokenizer
    feeds to WordPiece). The piece-count threshold is searched on log-log axes
    (vocab size falls roughly as a power of the threshold) instead of by
    arithmetic bisection, which needs far fewer of the costly learning passes.
    The result has at most `vocab_size` entries and, unless the corpus is too
    small (pieces must occur `min_count` times), at least
    `(1 - slack_ratio) * vocab_size`.
    """
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

    counts = count_words(lines, do_lower_case)
    if not counts:
        raise ValueError("no text to learn a vocabulary from")
    params = learner.Params(
        upper_thresh=None,
        lower_thresh=min_count,
        num_iterations=num_iterations,
        max_input_tokens=None,
        max_token_length=max_token_length,
        max_unique_chars=max_unique_chars,
        vocab_size=vocab_size,
        slack_ratio=slack_ratio,
        include_joiner_token=True,
        joiner=tokenization.SUFFIX_INDICATOR,
        reserved_tokens=list(reserved_tokens),
    )
    all_counts = learner.get_input_words(counts.items(), params.reserved_tokens, max_token_length)
    allowed_chars = learner.get_allowed_chars(all_counts, max_unique_chars)
    word_counts = learner.filter_input_words(all_counts, allowed_chars, -1)
    low, high = min_count, max(c for _, c in word_counts)
    tried = []  # (threshold, vocab size)
    target = vocab_size * (1.0 - slack_ratio / 2)
    best = None
    while low <= high:
        if tried:
            thresh = _next_threshold(low, high, tried, target)
        else:  # About half of a learned vocab is whole words: start there.
            ranked = sorted((c for _, c in word_counts), reverse=True)
            thresh = min(max(ranked[min(vocab_size // 2, len(ranked) - 1)], low), high)
        vocab = learner.learn_with_thresh(word_counts, thresh, params)
        logging.info("WordPiece threshold %d -> %d tokens", thresh, len(vocab))
        tried.append((thresh, len(vocab)))
        if len(vocab) <= vocab_size:
            if best is None or len(vocab) > len(best):
                best = vocab
            if vocab_size - len(vocab) <= slack_ratio * vocab_size:
                break
            high = thresh - 1  # Too few tokens: lower the threshold.
        else:
            low = thresh + 1
    if best is None:  # Even the highest threshold is too big (tiny vocab_size).
        best = vocab
    # Keep the first occurrence of each token (reserved tokens stay first).
    return list(dict.fromkeys(best))


def _next_threshold(low, high, tried, target) -> int:
    """Next count threshold to try, in [low, high], after at least one try.

    The vocab size falls roughly as a power of the threshold, so after two
    tries the threshold is interpolated (or extrapolated) on log-log axes
    from the two tries closest to the target.
    """
    guess = math.sqrt(low * high)
    if len(tried) >= 2:
        (t1, n1), (t2, n2) = sorted(tried, key=lambda p: abs(math.log(p[1] / target)))[:2]
        if n1 != n2 and t1 != t2:
            slope = math.log(t2 / t1) / math.log(n2 / n1)
            guess = t1 * math.exp(slope * math.log(target / n1))
    elif tried:
        # One try: assume size ~ 1/sqrt(threshold), typical for Zipfian text.
        t1, n1 = tried[0]
        guess = t1 * (n1 / target) ** 2
    return min(max(round(guess), low), high)


def train_sentencepiece(
    lines: Iterable[str],
    model_file: str,
    vocab_size: int,
    do_lower_case: bool = True,
    model_type: str = "unigram",
    character_coverage: float = 0.9999,
) -> str:
    """Trains a SentencePiece model; writes `model_file` and its .vocab."""
    import sentencepiece as spm

    model_file = os.fspath(model_file)
    prefix = model_file[: -len(".model")] if model_file.endswith(".model") else model_file
    vocab_file = prefix + ".vocab"
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp_prefix = os.path.join(tmp_dir, "spm")
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines),
            model_prefix=tmp_prefix,
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=character_coverage,
            normalization_rule_name="nmt_nfkc_cf" if do_lower_case else "nmt_nfkc",
            pad_id=0,
            pad_piece=tokenization.PAD,
            unk_id=1,
            unk_piece=tokenization.SPM_UNK,
            bos_id=-1,
            eos_id=-1,
            user_defined_symbols=[tokenization.CLS, tokenization.SEP, tokenization.MASK],
            hard_vocab_limit=False,  # Small corpora may not reach vocab_size.
            minloglevel=2,
        )
        # The model last: its presence means the pair is complete.
        for src, dst in ((tmp_prefix + ".vocab", vocab_file), (tmp_prefix + ".model", model_file)):
            with open(src, "rb") as f:
                fileio.write_atomic(dst, f.read())
    return model_file
