"""Subword encoding of word-tokenized sentences, done once and shared by every run.

Every model in xner predicts one label per *word*; the encoder sees subwords. The
alignment follows Hugging Face's ``run_ner.py`` (fast tokenizer, ``word_ids()``,
the first subword of a word carries its label) but keeps the result as compact
numpy arrays so that it can be hashed, cached on disk and reused by every run
that trains or predicts on the same sentences (native, teacher, students, seeds).

A sentence longer than ``max_length`` subwords is not cut: it becomes several
overlapping *windows* of whole words (strided, as Hugging Face's question-answering
preprocessing does with documents). Each word is *owned* by one window, the one that
sees it with context on both sides; only owned words are trained on and predicted
from, so every word of the sentence gets exactly one prediction. A sentence that fits
is one window, encoded exactly as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from xner.data.corpus import Sentence

__all__ = ["EncodedCorpus", "encode_corpus", "window_bounds"]

_TOKENIZE_CHUNK = 2048


@dataclass(frozen=True)
class EncodedCorpus:
    """Subword ids and word alignment of a list of sentences, in flat arrays.

    A *row* is what the network sees at once: a whole sentence, or one window of a
    sentence longer than ``max_length`` (see the module docstring).

    Attributes:
        input_ids: all rows' subword ids (with special tokens), concatenated.
        offsets: ``input_ids[offsets[i]:offsets[i+1]]`` is row ``i``.
        first_subword: position (within its row) of the first subword of each word the
            row owns, concatenated over rows.
        word_offsets: ``first_subword[word_offsets[i]:word_offsets[i+1]]`` are the owned
            words of row ``i`` that have a subword (a trailing word without one has none).
        n_words: number of words each row owns.
        sentence_rows: rows ``sentence_rows[s]:sentence_rows[s+1]`` are sentence ``s``;
            their owned words, in order, are the sentence's words.
    """

    input_ids: np.ndarray
    offsets: np.ndarray
    first_subword: np.ndarray
    word_offsets: np.ndarray
    n_words: np.ndarray
    sentence_rows: np.ndarray

    def __len__(self) -> int:
        """Number of rows (the sentences, unless some were split into windows)."""
        return len(self.offsets) - 1

    @property
    def n_sentences(self) -> int:
        return len(self.sentence_rows) - 1

    @property
    def windowed(self) -> int:
        """Sentences longer than ``max_length``, split into several windows."""
        return int((np.diff(self.sentence_rows) > 1).sum())

    @property
    def lengths(self) -> np.ndarray:
        """Subword length of each sentence (special tokens included)."""
        return np.diff(self.offsets)

    def to_rows(self, per_sentence: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Split per-word arrays of each sentence (targets) into the words each row owns
        and has a subword for."""
        kept = np.diff(self.word_offsets)
        rows: list[np.ndarray] = []
        for s, values in enumerate(per_sentence):
            start = 0
            for row in range(int(self.sentence_rows[s]), int(self.sentence_rows[s + 1])):
                rows.append(np.asarray(values)[start : start + int(kept[row])])
                start += int(self.n_words[row])
        return rows

    def to_sentences(self, per_row: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Join per-row word arrays (predictions) back into one array per sentence."""
        bounds = self.sentence_rows
        return [per_row[int(bounds[s])] if bounds[s + 1] - bounds[s] == 1
                else np.concatenate(per_row[int(bounds[s]) : int(bounds[s + 1])])
                for s in range(self.n_sentences)]

    def ids(self, i: int) -> np.ndarray:
        return self.input_ids[self.offsets[i] : self.offsets[i + 1]]

    def word_starts(self, i: int) -> np.ndarray:
        return self.first_subword[self.word_offsets[i] : self.word_offsets[i + 1]]

    def subset(self, indices: np.ndarray) -> "EncodedCorpus":
        """The encoding of some rows, in the order of ``indices`` (each a sentence of its own)."""
        indices = np.asarray(indices, dtype=np.int64)
        lengths = self.lengths[indices]
        kept = np.diff(self.word_offsets)[indices]
        return EncodedCorpus(
            input_ids=_gather(self.input_ids, self.offsets, indices),
            offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            first_subword=_gather(self.first_subword, self.word_offsets, indices),
            word_offsets=np.concatenate([[0], np.cumsum(kept)]).astype(np.int64),
            n_words=self.n_words[indices],
            sentence_rows=np.arange(len(indices) + 1, dtype=np.int64),
        )

    @property
    def fingerprint(self) -> str:
        """Content hash of the encoding: the cache key of anything computed from it."""
        digest = hashlib.blake2b(digest_size=16)
        for array in (self.input_ids, self.offsets, self.first_subword, self.word_offsets):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()


def encode_corpus(
    sentences: Sequence[Sentence],
    tokenizer,
    max_length: int = 256,
    normalize: Callable[[str], str] | None = None,
) -> EncodedCorpus:
    """Tokenize sentences into subwords and record where each word starts.

    Args:
        sentences: word-tokenized sentences (labels are not needed).
        tokenizer: a Hugging Face *fast* tokenizer (``word_ids()`` is required).
        max_length: subwords per row, special tokens included; a longer sentence is
            split into overlapping windows (see the module docstring).
        normalize: a text normalisation the tokenizer expects to have been
            applied to each word (the embedded model's character map).

    Returns:
        The flat :class:`EncodedCorpus`.

    Example:
        >>> enc = encode_corpus([Sentence(("Hi", "there"))], tok)  # doctest: +SKIP
        >>> enc.word_starts(0)  # doctest: +SKIP
        array([1, 2])
    """
    rows: list[tuple[np.ndarray, np.ndarray, int]] = []  # (ids, owned words' starts, owned words)
    rows_per_sentence = np.zeros(len(sentences), dtype=np.int64)
    for chunk_start in range(0, len(sentences), _TOKENIZE_CHUNK):
        chunk = sentences[chunk_start : chunk_start + _TOKENIZE_CHUNK]
        words = [_words(s, normalize) for s in chunk]
        batch = tokenizer(words, is_split_into_words=True, verbose=False)
        for j, ids in enumerate(batch["input_ids"]):
            if len(ids) <= max_length:
                sentence = [(np.asarray(ids, dtype=np.int32), _first_subwords(batch.word_ids(j)), len(chunk[j].tokens))]
            else:
                sentence = _windows(words[j], batch.word_ids(j), tokenizer, max_length)
            rows_per_sentence[chunk_start + j] = len(sentence)
            rows.extend(sentence)
    return EncodedCorpus(
        input_ids=np.concatenate([r[0] for r in rows]) if rows else np.zeros(0, np.int32),
        offsets=_cumulative([len(r[0]) for r in rows]),
        first_subword=np.concatenate([r[1] for r in rows]) if rows else np.zeros(0, np.int32),
        word_offsets=_cumulative([len(r[1]) for r in rows]),
        n_words=np.asarray([r[2] for r in rows], dtype=np.int64),
        sentence_rows=_cumulative(rows_per_sentence),
    )


def _cumulative(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)


def _windows(words: list[str], word_ids: list[int | None], tokenizer, max_length: int) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """The rows of a sentence longer than ``max_length``: one per window of :func:`window_bounds`."""
    counts = np.bincount([w for w in word_ids if w is not None], minlength=len(words))
    budget = max(1, max_length - tokenizer.num_special_tokens_to_add())
    rows = []
    for start, end, own_start, own_end in window_bounds(counts.tolist(), budget):
        encoding = tokenizer(words[start:end], is_split_into_words=True, truncation=True, max_length=max_length)
        starts = _first_subwords(encoding.word_ids())[own_start - start : own_end - start]
        rows.append((np.asarray(encoding["input_ids"], dtype=np.int32), starts, own_end - own_start))
    return rows


def window_bounds(counts: Sequence[int], budget: int) -> list[tuple[int, int, int, int]]:
    """Word ranges ``(start, end, own_start, own_end)`` of the windows over a long sentence.

    The sentence's words (``counts[w]`` subwords each) are cut into consecutive owned
    chunks of at most ``budget // 2`` subwords (a longer word is a chunk of its own);
    each chunk is then widened by whole context words, first to the left up to half of
    the remaining room, then to the right, then to the left again, within ``budget``.

    >>> window_bounds([1, 1, 1, 1, 1, 1], budget=4)
    [(0, 4, 0, 2), (1, 5, 2, 4), (2, 6, 4, 6)]
    """
    half = max(1, budget // 2)
    bounds = []
    own_start = 0
    while own_start < len(counts):
        own_end, size = own_start + 1, counts[own_start]
        while own_end < len(counts) and size + counts[own_end] <= half:
            size += counts[own_end]
            own_end += 1
        start, end, room = own_start, own_end, budget - size
        left = room // 2
        while start > 0 and counts[start - 1] <= left:
            start, left, room = start - 1, left - counts[start - 1], room - counts[start - 1]
        while end < len(counts) and counts[end] <= room:
            end, room = end + 1, room - counts[end]
        while start > 0 and counts[start - 1] <= room:
            start, room = start - 1, room - counts[start - 1]
        bounds.append((start, end, own_start, own_end))
        own_start = own_end
    return bounds


def _words(sentence: Sentence, normalize: Callable[[str], str] | None) -> list[str]:
    """Normalised words; a normaliser with a ``words`` method (the embedded model's
    character map) also trims the spaces its map leaves at word edges."""
    words = list(sentence.tokens)
    if normalize is None:
        return words
    if hasattr(normalize, "words"):
        return normalize.words(words)
    return [normalize(w) for w in words]


def _first_subwords(word_ids: list[int | None]) -> np.ndarray:
    """Positions of the first subword of each word; words with no subword get none.

    A word that the tokenizer maps to nothing (e.g. a lone zero-width character)
    would shift every later label; it is given its neighbour's position instead
    so that words and positions stay in one-to-one order.
    """
    starts: list[int] = []
    expected = 0
    for position, word in enumerate(word_ids):
        if word is None or word < expected:
            continue
        while expected < word:  # words without subwords share the next word's start
            starts.append(position)
            expected += 1
        starts.append(position)
        expected = word + 1
    return np.asarray(starts, dtype=np.int32)


def _gather(flat: np.ndarray, offsets: np.ndarray, indices: np.ndarray) -> np.ndarray:
    parts = [flat[offsets[i] : offsets[i + 1]] for i in indices]
    return np.concatenate(parts) if parts else flat[:0]
