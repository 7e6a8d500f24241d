"""Exact and near-duplicate sentence detection, independent of how the text was tokenized.

A raw-text pool must not repeat itself (news sites reprint wire stories, with a changed word)
nor contain the labelled dev and test sentences a student is scored on, which MasakhaNER
tokenized by hand while the pool went through :mod:`xner.data.rawtext`. Sentences are
therefore compared as their *key*: the characters without whitespace, NFC, case-folded, so
``Ọ̀túnba , Táíwò`` and ``ọ̀túnba, táíwò`` are the same sentence. Near-duplicates are keys
whose character 5-gram sets have a Jaccard similarity at or above a threshold; MinHash LSH
(``datasketch``, Broder 1997; Leskovec et al. 2014 ch. 3) proposes candidates and the exact
Jaccard of the two shingle sets decides, so LSH never adds a false match; it may miss a
few (``benchmarks/near_duplicates.py`` measures its recall against brute force).

>>> index = NearDuplicates(threshold=0.8)
>>> index.add(["Rais", "alisema", "leo", "kwamba", "mvua", "itanyesha", "."])
True
>>> index.match(["rais", "alisema", "leo", "kwamba", "mvua", "itanyesha", "!"])
True
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import numpy as np

__all__ = ["NearDuplicates", "sentence_key"]

SHINGLE = 5
"""Characters per shingle: long enough that two unrelated sentences share few."""

NUM_PERM = 128
"""MinHash permutations (datasketch's default; LSH bands are tuned to the threshold)."""


LSH_MARGIN = 0.8
"""The LSH index looks for candidates from ``0.8 * threshold``: a pair just above the
threshold is then a candidate with high probability (LSH's S-curve is steep but not a step),
and the exact Jaccard check discards the extra candidates."""


def sentence_key(tokens: Sequence[str]) -> str:
    """What two sentences must share to be the same: characters without whitespace, NFC, folded.

    >>> sentence_key(["Ọ̀túnba", ",", "Táíwò"]) == sentence_key(["ọ̀túnba,", "táíwò"])
    True
    """
    return unicodedata.normalize("NFC", "".join("".join(tokens).split())).casefold()


def _shingles(key: str) -> np.ndarray:
    """Sorted unique 32-bit hashes of the key's character 5-grams (the whole key if shorter)."""
    from datasketch.hashfunc import sha1_hash32

    grams = {key[i : i + SHINGLE] for i in range(max(len(key) - SHINGLE + 1, 1))}
    return np.unique(np.fromiter((sha1_hash32(g.encode()) for g in grams), dtype=np.uint64, count=len(grams)))


class NearDuplicates:
    """An index of sentences answering "is this sentence (nearly) one of them?".

    Args:
        threshold: the Jaccard similarity of 5-gram sets from which two sentences are
            near-duplicates (``1.0`` leaves only exact matches).
    """

    def __init__(self, threshold: float = 0.8) -> None:
        from datasketch import MinHashLSH

        self.threshold = threshold
        self.keys: set[str] = set()
        # LSH tuned below the threshold: more candidates, fewer missed near-duplicates
        lsh_threshold = threshold * LSH_MARGIN
        self._lsh = MinHashLSH(threshold=lsh_threshold, num_perm=NUM_PERM) if threshold < 1 else None
        self._shingles: list[np.ndarray] = []

    def _minhash(self, shingles: np.ndarray):  # noqa: ANN202 - datasketch.MinHash
        from datasketch import MinHash

        minhash = MinHash(num_perm=NUM_PERM, seed=1, hashfunc=int)
        minhash.update_batch(shingles.tolist())
        return minhash

    def exact(self, tokens: Sequence[str]) -> bool:
        """Whether the index holds a sentence with the same key."""
        return sentence_key(tokens) in self.keys

    def match(self, tokens: Sequence[str]) -> bool:
        """Whether the index holds the same sentence or a near-duplicate of it."""
        return self._lookup(sentence_key(tokens))[0]

    def add(self, tokens: Sequence[str]) -> bool:
        """Index a sentence unless it (nearly) is one already; whether it was new."""
        key = sentence_key(tokens)
        found, shingles, minhash = self._lookup(key)
        if found:
            return False
        self.keys.add(key)
        if self._lsh is not None:
            self._lsh.insert(len(self._shingles), minhash)
            self._shingles.append(shingles)
        return True

    def _lookup(self, key: str) -> tuple[bool, np.ndarray | None, object]:
        """(found, shingles, MinHash) of a key; LSH candidates are checked by exact Jaccard."""
        if key in self.keys:
            return True, None, None
        if self._lsh is None:
            return False, None, None
        shingles = _shingles(key)
        minhash = self._minhash(shingles)
        for candidate in self._lsh.query(minhash):
            other = self._shingles[candidate]
            common = len(np.intersect1d(shingles, other, assume_unique=True))
            if common / (len(shingles) + len(other) - common) >= self.threshold:
                return True, shingles, minhash
        return False, shingles, minhash
