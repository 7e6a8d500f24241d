"""Context neighbours: the most similar target word of a context word, cached on disk.

``unseen-context`` replaces each context word a model saw in training by its nearest word,
by the model's word vectors, among target words that model never saw.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xner.models.word_vectors import nearest_words

__all__ = ["ContextNeighbours"]


class ContextNeighbours:
    """For each context word, the most similar candidate word by the model's word vectors.

    Lookups are computed in vectorised batches and kept in a JSON file under
    ``cache_dir``, named by the language pair, the model's fingerprint and a hash of the
    candidate list; later runs of the same model and pair read the dict.

    Args:
        load_vectors: returns the model's :class:`~xner.models.word_vectors.WordVectors`
            (called once, on the first lookup).
        candidates: the words a replacement may be (sorted for determinism).
        cache_dir: where to keep the replacement lists; ``None`` keeps them in memory.
        pair: ``"<L1>-<L2>"``, part of the cache file name.
        fingerprint: the model's fingerprint if known without loading it (then a cached
            list is read without loading the vectors at all).
    """

    def __init__(
        self,
        load_vectors: Callable[[], Any],
        candidates: Sequence[str],
        cache_dir: Path | None = None,
        pair: str = "",
        fingerprint: str | None = None,
    ) -> None:
        self._load_vectors = load_vectors
        self.candidates = tuple(sorted(set(candidates)))
        self._cache_dir = cache_dir
        self._pair = pair
        self._fingerprint = fingerprint
        self._vectors: Any = None
        self._candidate_matrix: np.ndarray | None = None
        self._table: dict[str, str | None] | None = None

    @property
    def vectors(self) -> Any:
        """The model's word vectors, loaded on first use."""
        if self._vectors is None:
            self._vectors = self._load_vectors()
        return self._vectors

    @property
    def cache_path(self) -> Path | None:
        if self._cache_dir is None:
            return None
        model = self._fingerprint or self.vectors.fingerprint
        words = hashlib.blake2b("\n".join(self.candidates).encode(), digest_size=8).hexdigest()
        return self._cache_dir / f"unseen-context-{self._pair}-{model[:16]}-{words}.json"

    def _read(self) -> dict[str, str | None]:
        path = self.cache_path
        return json.loads(path.read_text(encoding="utf-8")) if path is not None and path.exists() else {}

    def _save(self) -> None:
        path = self.cache_path
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self._table, ensure_ascii=False, sort_keys=True), encoding="utf-8")
        tmp.replace(path)

    def lookup(self, words: Iterable[str]) -> dict[str, str | None]:
        """Replacement of each word (``None`` if it has no vector or there are no candidates)."""
        wanted = set(words)
        if self._table is None:
            self._table = self._read()
        missing = sorted(wanted - self._table.keys())
        if missing:
            if self._candidate_matrix is None:
                self._candidate_matrix = self.vectors(list(self.candidates))
            index, _ = nearest_words(self.vectors(missing), self._candidate_matrix)
            self._table |= {w: self.candidates[i] if i >= 0 else None for w, i in zip(missing, index)}
            self._save()
        return {w: self._table[w] for w in wanted}

