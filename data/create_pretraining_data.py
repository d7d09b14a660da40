"""Creates masked-LM / next-sentence-prediction TFRecords for BERT pretraining.

Same algorithm, flags and output features as google-research/bert
`create_pretraining_data.py`, made fast:

* sentences are tokenized in compiled code, in batches (tensorflow-text:
  FastBertTokenizer for plain ASCII lines, where it equals BERT's tokenizer,
  and the exact in-graph tokenizer of `data.tokenization` for the rest);
* instances are created by `--num_workers` processes over fixed tasks of
  DOCUMENTS_PER_TASK documents; truncation, masking and serialization are
  vectorized with numpy over a whole task.

Output depends only on the inputs and flags, never on `--num_workers`: the
sentence pairs of every (dupe, document) come from a generator seeded from
(random_seed, dupe, document index) (the random "next sentence" document is
drawn from it over the whole corpus), and truncation and masks of a task from
one seeded from (random_seed, dupe, first document of the task). Every record
goes to a bucket drawn from a third seeded generator; each bucket is shuffled
with random_seed and dealt round-robin to its output files.

Memory does not grow with the corpus: the text is tokenized in chunks into a
corpus on disk (only its document index stays in memory, so the random next
sentence still comes from the whole corpus), records go to bucket files on
disk, and each bucket is shuffled on its own within --memory_megabytes (the
workers hold the tokenized corpus in memory only if it fits the same budget). The
stages live in a work directory beside the first output file: a killed run
started again with the same command resumes where it stopped.

Example:
  python -m data.create_pretraining_data \
    --input_file='corpus/*.txt' --output_file=out/train.tfrecord \
    --num_output_shards=8 --vocab_file=vocab.txt --do_lower_case \
    --max_seq_length=128 --max_predictions_per_seq=20 --num_workers=8

With `--runner=DirectRunner|DataflowRunner|SparkRunner|FlinkRunner` the same records are
made by an Apache Beam pipeline on many machines (`data.pretraining_beam`, the extra
`pip install -e ".[beam]"`); Beam's own options (--project, --temp_location, ...) follow.

With `--no_masking` (or --masked_lm_prob=0) records are written unmasked for
dynamic masking in `data.pretraining_input`; each output file then gets a
`<file>.info.json` describing how it was made (vocab size, special ids, ...).
"""

import dataclasses
import importlib
import os
import sys

from absl import app, flags, logging

from data import cli, text_corpus
from data.pretraining_instances import InstanceOptions

# Worker processes import this module as their __main__ (multiprocessing does), so it imports
# no TensorFlow: the tokenizer and the pipeline are imported in `main`, and the library's
# names under this module's old paths only when asked for.
_MOVED = {
    "tokenize_corpus": "data.corpus_tokenization",
    "tokenize_sentences": "data.corpus_tokenization",
    "FEATURE_NAMES": "data.pretraining_instances",
    "INFO_SUFFIX": "data.tfrecord_files",
    "Instances": "data.pretraining_instances",
    "TokenizedCorpus": "data.pretraining_instances",
    "Vocab": "data.pretraining_instances",
    "create_document_pairs": "data.pretraining_instances",
    "create_instances": "data.pretraining_instances",
    "mask_instances": "data.pretraining_instances",
    "serialize_instances": "data.pretraining_instances",
    "truncate_seq_pairs": "data.pretraining_instances",
    "DOCUMENTS_PER_TASK": "data.instance_workers",
    "create_pretraining_data": "data.pretraining_records",
    "generate_records": "data.pretraining_records",
    "output_paths": "data.pretraining_records",
    "write_records": "data.pretraining_records",
    "Progress": "data.progress",
}


def __getattr__(name):
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


option = cli.option
_DEFAULT = InstanceOptions()  # The instance flags' defaults are InstanceOptions' own.


@dataclasses.dataclass(frozen=True)
class CreatePretrainingDataOptions:
    """The program's flags: inputs, outputs, tokenizer and the InstanceOptions fields."""

    input_file: str | None = option(
        None,
        "Input raw text file(s): comma-separated globs. One sentence per "
        "line, a blank line between documents.",
    )
    output_file: str | None = option(
        None, "Output TFRecord file(s): comma-separated, or a prefix with --num_output_shards."
    )
    vocab_file: str | None = option(None, "The WordPiece vocabulary file of the BERT model.")
    spm_model_file: str | None = option(
        None,
        "A SentencePiece model (e.g. from data.learn_vocab --kind=sentencepiece), instead "
        "of --vocab_file. It needs the pieces [CLS], [SEP], [MASK] and [PAD].",
    )
    do_lower_case: bool = option(True, "Lower-case the input text (uncased models).")
    do_whole_word_mask: bool = option(
        _DEFAULT.do_whole_word_mask,
        "Mask all pieces of a word together (WordPiece: a word is a piece and its "
        '"##" continuations; SentencePiece: a piece starting with "\u2581" and the '
        "pieces after it).",
    )
    max_seq_length: int = option(_DEFAULT.max_seq_length, "Maximum sequence length.")
    max_predictions_per_seq: int = option(
        _DEFAULT.max_predictions_per_seq, "Maximum masked LM predictions."
    )
    random_seed: int = option(_DEFAULT.random_seed, "Random seed for data generation.")
    dupe_factor: int = option(
        _DEFAULT.dupe_factor, "Times to duplicate the input with different masks."
    )
    masked_lm_prob: float = option(_DEFAULT.masked_lm_prob, "Masked LM probability.")
    short_seq_prob: float = option(
        _DEFAULT.short_seq_prob, "Probability of a shorter sequence than the maximum length."
    )
    no_masking: bool = option(
        not _DEFAULT.masking,
        "Write unmasked records (for dynamic masking in the input pipeline).",
    )
    num_workers: int = option(
        os.cpu_count() or 1, "Processes creating instances (output does not depend on it)."
    )
    num_output_shards: int = option(0, "If > 1, --output_file is a prefix of this many shards.")
    hf_dataset: tuple[str, ...] = option(
        (),
        "Hugging Face datasets as name[:config], e.g. wikipedia:20220301.en "
        "or bookcorpus; read with datasets.load_dataset (needs network).",
    )
    hf_max_documents: int = option(
        0, "If > 0, read at most this many documents from each Hugging Face dataset."
    )
    memory_megabytes: float = option(
        128.0,
        "Records held in memory at once while shuffling (larger buckets spill to disk); while "
        "instances are made, each worker holds the tokenized corpus (4 bytes per token) in "
        "memory if it fits memory_megabytes / num_workers, else reads it from disk.",
    )
    runner: str = option(
        "",
        "An Apache Beam runner (DirectRunner, DataflowRunner, SparkRunner, FlinkRunner, ...): "
        "the same records made by a Beam pipeline (data.pretraining_beam; pip install "
        "'.[beam]'), Beam's own pipeline options passed after the flags. Empty: this machine.",
    )

    def instance_options(self) -> InstanceOptions:
        return InstanceOptions(
            max_seq_length=self.max_seq_length,
            max_predictions_per_seq=self.max_predictions_per_seq,
            masked_lm_prob=self.masked_lm_prob,
            short_seq_prob=self.short_seq_prob,
            dupe_factor=self.dupe_factor,
            random_seed=self.random_seed,
            do_whole_word_mask=self.do_whole_word_mask,
            masking=not self.no_masking,
        )


def main(argv):
    beam_args = argv[1:]  # Flags this program does not define: Beam's pipeline options.
    options = cli.from_flags(CreatePretrainingDataOptions)
    if beam_args and not options.runner:
        raise app.UsageError(f"Unknown flags {beam_args} (Beam's options need --runner).")
    if not options.input_file and not options.hf_dataset:
        raise app.UsageError("Give --input_file and/or --hf_dataset.")
    input_files = text_corpus.expand_file_patterns(options.input_file) if options.input_file else []
    if bool(options.vocab_file) == bool(options.spm_model_file):
        raise app.UsageError(
            "Give exactly one of --vocab_file (WordPiece) and --spm_model_file (SentencePiece)."
        )
    tokenizer_spec = dict(
        vocab_file=options.vocab_file or None,
        spm_model_file=options.spm_model_file or None,
        do_lower_case=options.do_lower_case,
    )
    if options.runner:
        if options.hf_dataset:
            raise app.UsageError(
                "A Beam run reads --input_file text files; stream --hf_dataset on this "
                "machine (no --runner) or export it to text files first."
            )
        from data import pretraining_beam  # The optional extra [beam].

        pretraining_beam.run(
            input_files,
            options.output_file,
            options.num_output_shards,
            tokenizer_spec,
            options.instance_options(),
            options.runner,
            beam_args,
        )
        return
    from data import tokenization
    from data.pretraining_records import create_pretraining_data, output_paths

    tokenizer = tokenization.create_tokenizer(**tokenizer_spec)
    outputs = output_paths(options.output_file, options.num_output_shards)
    logging.info(
        "Reading %d file(s) and %d dataset(s); writing %d file(s).",
        len(input_files),
        len(options.hf_dataset),
        len(outputs),
    )
    create_pretraining_data(
        input_files,
        outputs,
        tokenizer,
        options.instance_options(),
        num_workers=options.num_workers,
        hf_datasets=options.hf_dataset,
        hf_max_documents=options.hf_max_documents,
        memory_megabytes=options.memory_megabytes,
    )


if __name__ == "__main__":
    cli.define_flags(CreatePretrainingDataOptions, module_name=sys.argv[0])
    flags.mark_flags_as_required(["output_file"])
    # Unknown flags are left for Beam (`--project`, `--temp_location`, ...), not refused.
    app.run(main, flags_parser=lambda argv: flags.FLAGS(argv, known_only=True))
