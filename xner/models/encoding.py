"""Subword encoding of word-tokenized sentences, done once and shared by every run.

Every model in xner predicts one label per *word*; the encoder sees subwords. The
alignment follows Hugging Face's ``run_ner.py`` (fast tokenizer, ``word_ids()``,
the first subword of a word carries its label) but keeps the result as compact
numpy arrays so that it can be hashed, cached on disk and reused by every run
that trains or predicts on the same sentences (native, teacher, students, seeds).

Words cut off by ``max_length`` have no subword: they are predicted ``O``
(``EncodedCorpus.truncated_words`` counts them so that a report can say so).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from xner.data.corpus import Sentence

__all__ = ["EncodedCorpus", "encode_corpus"]

_TOKENIZE_CHUNK = 2048


@dataclass(frozen=True)
class EncodedCorpus:
    """Subword ids and word alignment of a list of sentences, in flat arrays.

    Attributes:
        input_ids: all sentences' subword ids (with special tokens), concatenated.
        offsets: ``input_ids[offsets[i]:offsets[i+1]]`` is sentence ``i``.
        first_subword: position (within its sentence) of each kept word's first
            subword, concatenated over sentences.
        word_offsets: ``first_subword[word_offsets[i]:word_offsets[i+1]]`` are
            the kept words of sentence ``i`` (a prefix of its words).
        n_words: number of words of each sentence before truncation.
    """

    input_ids: np.ndarray
    offsets: np.ndarray
    first_subword: np.ndarray
    word_offsets: np.ndarray
    n_words: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        """Subword length of each sentence (special tokens included)."""
        return np.diff(self.offsets)

    @property
    def truncated_words(self) -> int:
        """Words that fell beyond ``max_length`` (predicted as ``O``)."""
        return int(self.n_words.sum() - (self.word_offsets[-1] - self.word_offsets[0]))

    def ids(self, i: int) -> np.ndarray:
        return self.input_ids[self.offsets[i] : self.offsets[i + 1]]

    def word_starts(self, i: int) -> np.ndarray:
        return self.first_subword[self.word_offsets[i] : self.word_offsets[i + 1]]

    def subset(self, indices: np.ndarray) -> "EncodedCorpus":
        """The encoding of some of the sentences, in the order of ``indices``."""
        indices = np.asarray(indices, dtype=np.int64)
        lengths = self.lengths[indices]
        kept = np.diff(self.word_offsets)[indices]
        return EncodedCorpus(
            input_ids=_gather(self.input_ids, self.offsets, indices),
            offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            first_subword=_gather(self.first_subword, self.word_offsets, indices),
            word_offsets=np.concatenate([[0], np.cumsum(kept)]).astype(np.int64),
            n_words=self.n_words[indices],
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
        max_length: subwords per sentence, special tokens included.
        normalize: a text normalisation the tokenizer expects to have been
            applied to each word (the embedded model's character map).

    Returns:
        The flat :class:`EncodedCorpus`.

    Example:
        >>> enc = encode_corpus([Sentence(("Hi", "there"))], tok)  # doctest: +SKIP
        >>> enc.word_starts(0)  # doctest: +SKIP
        array([1, 2])
    """
    ids_parts: list[np.ndarray] = []
    starts_parts: list[np.ndarray] = []
    lengths = np.zeros(len(sentences), dtype=np.int64)
    kept_words = np.zeros(len(sentences), dtype=np.int64)
    n_words = np.fromiter((len(s.tokens) for s in sentences), dtype=np.int64, count=len(sentences))
    for chunk_start in range(0, len(sentences), _TOKENIZE_CHUNK):
        chunk = sentences[chunk_start : chunk_start + _TOKENIZE_CHUNK]
        words = [_words(s, normalize) for s in chunk]
        batch = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
        for j, ids in enumerate(batch["input_ids"]):
            i = chunk_start + j
            starts = _first_subwords(batch.word_ids(j))
            ids_parts.append(np.asarray(ids, dtype=np.int32))
            starts_parts.append(starts)
            lengths[i] = len(ids)
            kept_words[i] = len(starts)
    return EncodedCorpus(
        input_ids=np.concatenate(ids_parts) if ids_parts else np.zeros(0, np.int32),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        first_subword=np.concatenate(starts_parts) if starts_parts else np.zeros(0, np.int32),
        word_offsets=np.concatenate([[0], np.cumsum(kept_words)]).astype(np.int64),
        n_words=n_words,
    )


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
