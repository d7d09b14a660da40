"""Pretraining records on Apache Beam: the local path's records, made on many machines.

  python -m data.create_pretraining_data --runner=DataflowRunner \
    --input_file='gs://b/wiki/*.txt,gs://b/books/*.txt' --output_file=gs://b/seq128/train \
    --num_output_shards=1024 --vocab_file=gs://b/vocab.txt ... \
    --project=P --region=R --temp_location=gs://b/tmp   # Beam's own pipeline options

The stages are Beam transforms over the same code as the local path
(`data.pretraining_records`):

1. Tokenize: each input file, on some worker, becomes a stored corpus part
   (`<output>.beam-work/corpus/part-NNNNN`, `data.corpus_store`), read and tokenized in
   chunks as the local path does.
2. Tasks: once every part is written, the fixed tasks (dupe, first document, end document)
   of the whole corpus, `pretraining_records.instance_tasks`.
3. Records: each task's instances (`create_instances`) read the parts as ONE corpus
   (`corpus_store.ConcatenatedCorpus`: a document never spans two files, so the parts in file
   order are the corpus the local path stores), so the random next-sentence document is
   drawn over the whole corpus and every record equals one of the local path's.
4. Write: records spread over the shards at random (`Reshuffle`) and written by Beam's
   `WriteToTFRecord` (`<output>-NNNNN-of-MMMMM`, the local path's names); unmasked records
   get their `.info.json` beside each shard, as locally.

The output is the local path's multiset of records for the same inputs, flags and seed. What
differs: which shard a record lands in and its position there (the runner's bundles decide;
the input pipeline shuffles files and records when it reads them).

A machine whose workers read remote parts (gs://) copies them to its local disk once (4 bytes
per token: about 18 GB for Wikipedia + BooksCorpus), since instance creation reads random
documents; the copy stays there for the job's other tasks.
"""

import os
import shutil
import tempfile

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from data import corpus_store, text_corpus, tokenization
from data.instance_workers import instance_tasks
from data.pretraining_input import INFO_SUFFIX
from data.pretraining_instances import InstanceOptions, Vocab, create_instances, serialize_instances
from data.pretraining_records import record_info, store_corpus


def work_directory(output_prefix: str) -> str:
    """Where the corpus parts go: beside the outputs, on the file system every worker reads."""
    return f"{output_prefix}.beam-work"


def _part(work_dir: str, index: int) -> str:
    return f"{work_dir}/corpus/part-{index:05d}"


def _tokenizer(spec: dict):
    return tokenization.create_tokenizer(**spec)


def _copy_directory(source: str, destination: str) -> None:
    import tensorflow as tf

    tf.io.gfile.makedirs(destination)
    for name in tf.io.gfile.listdir(source):
        tf.io.gfile.copy(f"{source}/{name}", f"{destination}/{name}", overwrite=True)


class _TokenizeFile(beam.DoFn):
    """(file index, path) -> (file index, documents): the file's corpus part written."""

    def __init__(self, tokenizer_spec: dict, work_dir: str):
        self.tokenizer_spec, self.work_dir = tokenizer_spec, work_dir

    def setup(self):
        self.tokenizer = _tokenizer(self.tokenizer_spec)

    def process(self, element):
        index, path = element
        destination = _part(self.work_dir, index)
        documents, size = text_corpus.read_text_file(path), text_corpus.file_size(path)
        if not text_corpus.is_remote(destination):
            sizes = store_corpus(documents, self.tokenizer, destination, size)
        else:  # Written locally (appended to), then copied.
            local = tempfile.mkdtemp(prefix="corpus-part-")
            try:
                sizes = store_corpus(documents, self.tokenizer, local, size)
                _copy_directory(local, destination)
            finally:
                shutil.rmtree(local, ignore_errors=True)
        yield index, sizes["documents"]


def _local_copy_directory(work_dir: str, run_id: str) -> str:
    import hashlib

    digest = hashlib.sha1(f"{work_dir} {run_id}".encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"pretraining-corpus-{digest}")


def _local_copy(work_dir: str, num_parts: int, run_id: str) -> list[str]:
    """The parts on this machine's disk: copied once per machine and run (a lock file makes
    the other worker processes of the machine wait for it, then read the same copy)."""
    import fcntl

    local = _local_copy_directory(work_dir, run_id)
    with open(local + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(local):
            partial = f"{local}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            for i in range(num_parts):
                _copy_directory(_part(work_dir, i), os.path.join(partial, f"part-{i:05d}"))
            os.rename(partial, local)
    return [os.path.join(local, f"part-{i:05d}") for i in range(num_parts)]


class _MakeRecords(beam.DoFn):
    """A task (dupe, start, end) -> its serialized records, reading every part as one corpus."""

    def __init__(self, work_dir, num_parts, run_id, options: InstanceOptions, vocab: Vocab):
        self.work_dir, self.num_parts, self.run_id = work_dir, num_parts, run_id
        self.options, self.vocab = options, vocab
        self.corpus = None

    def process(self, task):
        if self.corpus is None:  # Opened on the first task: every part is written by then.
            if text_corpus.is_remote(self.work_dir):
                directories = _local_copy(self.work_dir, self.num_parts, self.run_id)
            else:
                directories = [_part(self.work_dir, i) for i in range(self.num_parts)]
            parts = [corpus_store.StoredCorpus(d) for d in directories]
            self.corpus = corpus_store.ConcatenatedCorpus(parts)
        dupe, start, end = task
        instances = create_instances(self.corpus, dupe, start, end, self.options, self.vocab)
        yield from serialize_instances(instances)

    def teardown(self):
        if self.corpus is not None:
            self.corpus.close()


def _tasks(part_documents: list, dupe_factor: int):
    """All tasks of the corpus the parts make, once every part is written."""
    documents = sum(count for _, count in part_documents)
    return instance_tasks(documents, dupe_factor)


def _write_info(path: str, info: dict) -> str:
    """The shard's `.info.json` (its record count read back: shards are the runner's)."""
    import json

    import tensorflow as tf

    from data import fileio

    count = sum(1 for _ in tf.data.TFRecordDataset(path))
    fileio.write_atomic(path + INFO_SUFFIX, json.dumps(dict(info, num_instances=count), indent=2))
    return path


def build(
    pipeline: beam.Pipeline,
    input_files: list[str],
    output_prefix: str,
    num_shards: int,
    tokenizer_spec: dict,
    options: InstanceOptions,
    run_id: str = "",
) -> None:
    """Adds the four stages to `pipeline` (module docstring); `run_id` names this run's local
    copies of remote parts."""
    tokenizer = _tokenizer(tokenizer_spec)
    vocab = Vocab.from_tokenizer(tokenizer)
    info = record_info(options, vocab, tokenizer)
    work_dir = work_directory(output_prefix)
    parts = (
        pipeline
        | "Files" >> beam.Create(list(enumerate(input_files)))
        | "SpreadFiles" >> beam.Reshuffle()
        | "Tokenize" >> beam.ParDo(_TokenizeFile(tokenizer_spec, work_dir))
    )
    records = (
        parts
        | "AllParts" >> beam.combiners.ToList()
        | "Tasks" >> beam.FlatMap(_tasks, options.dupe_factor)
        | "SpreadTasks" >> beam.Reshuffle()
        | "Records" >> beam.ParDo(_MakeRecords(work_dir, len(input_files), run_id, options, vocab))
        | "SpreadRecords" >> beam.Reshuffle()
    )
    written = records | "Write" >> beam.io.WriteToTFRecord(
        output_prefix,
        num_shards=num_shards,
        shard_name_template="-SSSSS-of-NNNNN" if num_shards > 1 else "",
    )
    if info is not None:
        _ = written | "Info" >> beam.Map(_write_info, info)


def run(
    input_files: list[str],
    output_file: str,
    num_output_shards: int,
    tokenizer_spec: dict,
    options: InstanceOptions,
    runner: str,
    beam_args: list[str] = (),
) -> None:
    """Runs the pipeline on `runner` with Beam's own options (`beam_args`); waits for it."""
    if "," in output_file:
        raise ValueError(
            f"--output_file={output_file!r}: a Beam run writes one prefix with "
            "--num_output_shards (Beam's sink names the shards), not a comma list"
        )
    if not input_files:
        raise ValueError("A Beam run reads --input_file text files (none matched).")
    import uuid

    num_shards = max(1, num_output_shards)
    run_id = uuid.uuid4().hex
    pipeline_options = PipelineOptions([*beam_args, f"--runner={runner}"])
    with beam.Pipeline(options=pipeline_options) as pipeline:
        build(pipeline, input_files, output_file, num_shards, tokenizer_spec, options, run_id)
    work_dir = work_directory(output_file)
    if text_corpus.is_remote(work_dir):
        import tensorflow as tf

        tf.io.gfile.rmtree(work_dir)
        # A local runner's copy (remote runners' machines go away with the job).
        copy = _local_copy_directory(work_dir, run_id)
        shutil.rmtree(copy, ignore_errors=True)
        if os.path.exists(copy + ".lock"):
            os.remove(copy + ".lock")
    else:
        shutil.rmtree(work_dir, ignore_errors=True)
