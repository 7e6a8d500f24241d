"""Static word vectors from a pretrained encoder's input embeddings, and nearest neighbours.

The ``unseen-context`` perturbation (Manafi & Krishnaswamy 2024) replaces a context
word by the most similar target-language word the model was not trained on, with
similarity measured in the model's own embedding space. A word's vector is the mean of
the input-embedding rows of its subword pieces (the encoder's view of the word before
any context), so no forward pass is needed and ten thousand words take milliseconds.

>>> import numpy as np
>>> nearest_words(np.eye(2), np.array([[0.0, 2.0], [3.0, 0.1]]))[0].tolist()
[1, 0]
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import cached_property

import numpy as np

__all__ = ["WordVectors", "nearest_words", "word_vectors"]


def _as_matrix(embeddings) -> np.ndarray:
    """A float32 numpy view of an embedding matrix given as numpy or a torch tensor."""
    if hasattr(embeddings, "detach"):  # torch.Tensor
        embeddings = embeddings.detach().float().cpu().numpy()
    return np.ascontiguousarray(embeddings, dtype=np.float32)


def word_vectors(
    words: Sequence[str],
    tokenizer,
    embeddings,
    normalize: Callable[[str], str] | None = None,
) -> np.ndarray:
    """Mean input-embedding row of each word's subword pieces; zeros for a word without any.

    Unknown-token pieces are left out of the mean: they say nothing about the word, and
    would make every unknown word look alike.

    Args:
        words: the words, each tokenized on its own (as a sentence-initial word).
        tokenizer: the model's Hugging Face fast tokenizer.
        embeddings: its input-embedding matrix ``(vocab, dim)``, numpy or torch.
        normalize: the model's text normalisation, applied before tokenizing.

    Returns:
        A float32 array of shape ``(len(words), dim)``.
    """
    table = _as_matrix(embeddings)
    out = np.zeros((len(words), table.shape[1]), dtype=np.float32)
    if not words:
        return out
    texts = [normalize(w) for w in words] if normalize else list(words)
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    unk = tokenizer.unk_token_id
    pieces = [[i for i in ids if i != unk] for ids in encoded]
    counts = np.array([len(p) for p in pieces])
    flat = np.fromiter((i for p in pieces for i in p), dtype=np.int64, count=int(counts.sum()))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    has = counts > 0
    if has.any():
        # reduceat sums each non-empty word's contiguous run of rows in one call
        out[has] = np.add.reduceat(table[flat], starts[has]) / counts[has, None]
    return out


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix, dtype=np.float32), where=norms > 0)


def nearest_words(
    queries: np.ndarray, candidates: np.ndarray, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Index and cosine of each query's most similar candidate row.

    Rows are normalised once, then similarities are one matrix product per chunk of
    queries, so memory stays ``chunk x len(candidates)``. A zero query (a word without
    pieces) or an empty candidate set gives index ``-1``; zero candidates never win.

    Args:
        queries: ``(n, dim)`` vectors.
        candidates: ``(m, dim)`` vectors.
        chunk: queries per matrix product.

    Returns:
        ``(index, cosine)`` arrays of length ``n``; ties go to the lower index.
    """
    index = np.full(len(queries), -1, dtype=np.int64)
    score = np.full(len(queries), -np.inf, dtype=np.float32)
    if len(candidates) == 0 or len(queries) == 0:
        return index, score
    cand = _unit_rows(np.asarray(candidates, dtype=np.float32))
    dead = ~np.any(cand, axis=1)
    unit = _unit_rows(np.asarray(queries, dtype=np.float32))
    for lo in range(0, len(unit), chunk):
        sims = unit[lo : lo + chunk] @ cand.T
        sims[:, dead] = -np.inf
        best = sims.argmax(axis=1)
        index[lo : lo + chunk] = best
        score[lo : lo + chunk] = sims[np.arange(len(best)), best]
    zero = ~np.any(unit, axis=1) | ~np.isfinite(score)
    index[zero], score[zero] = -1, -np.inf
    return index, score


class WordVectors:
    """A model's word-vector function with a fingerprint for cache keys.

    Args:
        tokenizer: the model's Hugging Face fast tokenizer.
        embeddings: its input-embedding matrix (numpy or torch).
        normalize: the model's text normalisation, if it has one.
        fingerprint: the model's identity; default a hash of the tokenizer and the matrix.

    >>> # vectors = WordVectors.from_backbone(load_backbone("embedded"))
    >>> # vectors(["Haus", "house"]).shape  -> (2, 384)
    """

    def __init__(
        self,
        tokenizer,
        embeddings,
        normalize: Callable[[str], str] | None = None,
        fingerprint: str | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.embeddings = _as_matrix(embeddings)
        self.normalize = normalize
        if fingerprint is not None:
            self.fingerprint = fingerprint

    @classmethod
    def from_backbone(cls, backbone) -> "WordVectors":
        """The input embeddings of a :class:`~xner.models.backbone.Backbone`'s pretrained weights."""
        import torch

        with torch.random.fork_rng(devices=[]):  # the throwaway head must not move the global seed
            model = backbone.token_classification_model(["O"])
        embeddings = model.get_input_embeddings().weight
        return cls(backbone.tokenizer, embeddings, backbone.normalize, backbone.fingerprint)

    def __call__(self, words: Sequence[str]) -> np.ndarray:
        return word_vectors(words, self.tokenizer, self.embeddings, self.normalize)

    @cached_property
    def fingerprint(self) -> str:
        """Hash of the tokenizer and the embedding matrix: equal vectors, equal key."""
        digest = hashlib.blake2b(digest_size=16)
        digest.update(self.tokenizer.backend_tokenizer.to_str().encode())
        digest.update(str(self.embeddings.shape).encode())
        digest.update(memoryview(self.embeddings).cast("B"))
        return digest.hexdigest()
