"""The tokenized corpus on disk: written in chunks, read a document at a time.

Creating pretraining data for Wikipedia and BooksCorpus (billions of tokens) cannot hold
the corpus in memory, yet every instance whose next sentence is random reads a document
drawn from the WHOLE corpus. So the corpus is four flat little-endian files in a directory:

  tokens.bin     int32  every token id, sentence after sentence, document after document
  sentences.bin  int64  token offset of each sentence's start, then of the end (S + 1)
  documents.bin  int64  sentence index of each document's start, then of the end (D + 1)
  bytes.bin      int64  UTF-8 bytes of each document's text (progress in MB/s)

`CorpusWriter` appends `TokenizedCorpus` chunks to them; `StoredCorpus` reads them with
positioned reads (no memory map: pages read stay in the page cache, not in this process)
and keeps only the document index (8 bytes per document) in memory. It has the three
methods instance creation calls on an in-memory `TokenizedCorpus` (`num_documents`,
`sentence_offsets`, `gather`), so both give the same instances; `open_corpus` loads it into
memory instead when it fits a budget (positioned reads make a task ~1.5x slower).
`ConcatenatedCorpus` has the three methods too: stored parts (one per input file, tokenized
on different machines) read as the one corpus their concatenation is.
"""

import os

import numpy as np

from data.pretraining_instances import TokenizedCorpus

FILES = {"tokens": "<i4", "sentences": "<i8", "documents": "<i8", "bytes": "<i8"}


def _path(directory: str, name: str) -> str:
    return os.path.join(directory, f"{name}.bin")


class CorpusWriter:
    """Appends tokenized chunks (documents in order) to the files of a stored corpus."""

    def __init__(self, directory: str):
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self._files = {name: open(_path(directory, name), "wb") for name in FILES}  # noqa: SIM115
        self.tokens = self.sentences = self.documents = 0
        # The leading 0 of the offset arrays; every chunk then adds its ends.
        self._write("sentences", np.zeros([1], np.int64))
        self._write("documents", np.zeros([1], np.int64))

    def _write(self, name: str, values: np.ndarray) -> None:
        self._files[name].write(np.asarray(values).astype(FILES[name]).tobytes())

    def append(self, chunk: TokenizedCorpus) -> None:
        """Adds the documents of `chunk` (its offsets start at 0) after those written."""
        self._write("tokens", chunk.token_ids)
        self._write("sentences", chunk.sentence_starts[1:] + self.tokens)
        self._write("documents", chunk.document_starts[1:] + self.sentences)
        self._write("bytes", chunk.document_bytes)
        self.tokens += len(chunk.token_ids)
        self.sentences += len(chunk.sentence_starts) - 1
        self.documents += chunk.num_documents

    def close(self) -> None:
        for f in self._files.values():
            f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class StoredCorpus:
    """A corpus written by `CorpusWriter`, read a document at a time.

    Only the document index is held (8 bytes per document). Each process opens its own
    file descriptors (`os.pread` does not move a shared file position, so forked workers may
    also share them).
    """

    def __init__(self, directory: str):
        self.directory = directory
        self.document_starts = np.fromfile(_path(directory, "documents"), "<i8")
        self.document_bytes = np.fromfile(_path(directory, "bytes"), "<i8")
        self._fds = {
            name: os.open(_path(directory, name), os.O_RDONLY) for name in ("tokens", "sentences")
        }
        self.num_tokens = os.path.getsize(_path(directory, "tokens")) // 4
        # What `load` adds to the index held: the tokens and the sentence offsets.
        self.nbytes = sum(os.path.getsize(_path(directory, n)) for n in ("tokens", "sentences"))

    @property
    def num_documents(self) -> int:
        return len(self.document_starts) - 1

    def _read(self, name: str, start: int, end: int) -> np.ndarray:
        dtype = np.dtype(FILES[name])
        size = dtype.itemsize
        data = os.pread(self._fds[name], (end - start) * size, start * size)
        if len(data) != (end - start) * size:
            raise ValueError(
                f"{_path(self.directory, name)}: expected {end - start} values from {start}, "
                f"read {len(data) // size} (the stored corpus is incomplete)"
            )
        return np.frombuffer(data, dtype)

    def sentence_offsets(self, document: int) -> list[int]:
        """Token offsets of the document's sentences, and of its end (sentences + 1)."""
        first, end = self.document_starts[document], self.document_starts[document + 1]
        return self._read("sentences", int(first), int(end) + 1).tolist()

    def gather(self, offsets: np.ndarray, max_gap: int = 512) -> np.ndarray:
        """The token ids at `offsets` (any shape): one read per run of nearby offsets."""
        offsets = np.asarray(offsets)
        wanted = np.sort(offsets, axis=None)  # (repeats are harmless; np.unique is slower)
        if not wanted.size:
            return np.zeros(offsets.shape, np.int32)
        # Runs of offsets at most max_gap apart are read as one span.
        breaks = np.flatnonzero(np.diff(wanted) > max_gap) + 1
        lows = wanted[np.concatenate([[0], breaks])]
        highs = wanted[np.concatenate([breaks - 1, [len(wanted) - 1]])] + 1
        spans = [self._read("tokens", int(lo), int(hi)) for lo, hi in zip(lows, highs)]
        starts = np.concatenate([[0], np.cumsum(highs - lows)[:-1]])
        flat = np.concatenate(spans)
        span = np.searchsorted(lows, offsets, side="right") - 1
        return flat[starts[span] + offsets - lows[span]].astype(np.int32)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}

    def load(self) -> TokenizedCorpus:
        """The whole corpus in memory (small corpora and tests)."""
        return TokenizedCorpus(
            token_ids=np.fromfile(_path(self.directory, "tokens"), "<i4").astype(np.int32),
            sentence_starts=np.fromfile(_path(self.directory, "sentences"), "<i8"),
            document_starts=self.document_starts.copy(),
            document_bytes=self.document_bytes.copy(),
        )


def open_corpus(directory: str, max_bytes: float = 0) -> "StoredCorpus | TokenizedCorpus":
    """The stored corpus in `directory`, loaded into memory if that takes at most `max_bytes`
    more than its index, else read from disk."""
    corpus = StoredCorpus(directory)
    if corpus.nbytes > max_bytes:
        return corpus
    loaded = corpus.load()
    corpus.close()
    return loaded


class ConcatenatedCorpus:
    """Stored corpora read as their concatenation, in order (documents and tokens renumbered).

    A corpus tokenized one input file per part, in parallel, is then the corpus the files
    make when read one after another (a document never spans two files), and gives the same
    instances.
    """

    def __init__(self, parts: list[StoredCorpus]):
        self.parts = parts
        self._document_base = np.cumsum([0] + [p.num_documents for p in parts])
        self._token_base = np.cumsum([0] + [p.num_tokens for p in parts])
        self.document_bytes = np.concatenate([p.document_bytes for p in parts] or [[]])
        self.num_tokens = int(self._token_base[-1])

    @property
    def num_documents(self) -> int:
        return int(self._document_base[-1])

    def sentence_offsets(self, document: int) -> list[int]:
        # side="right": the last part starting at or before the document (empty parts skipped).
        part = int(np.searchsorted(self._document_base, document, side="right")) - 1
        base = int(self._token_base[part])
        local = self.parts[part].sentence_offsets(document - int(self._document_base[part]))
        return [offset + base for offset in local]

    def gather(self, offsets: np.ndarray, max_gap: int = 512) -> np.ndarray:
        offsets = np.asarray(offsets)
        parts = np.searchsorted(self._token_base, offsets, side="right") - 1
        tokens = np.zeros(offsets.shape, np.int32)
        for part in np.unique(parts).tolist():
            mine = parts == part
            local = offsets[mine] - self._token_base[part]
            tokens[mine] = self.parts[part].gather(local, max_gap)
        return tokens

    def close(self) -> None:
        for part in self.parts:
            part.close()
