"""The one in-memory representation of NER data that every module shares.

A sentence is plain data: a tuple of tokens, a parallel tuple of IOB2 tags (or
``None`` for unlabeled text) and the language code it came from. Tuples keep
sentences immutable and hashable, so perturbations stay pure functions and
caches can key on content.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

__all__ = ["Sentence", "entity_spans"]


@dataclass(frozen=True, slots=True)
class Sentence:
    """One tokenized sentence, labelled (``tags``) or not (``tags is None``).

    >>> Sentence(("Angela", "Merkel", "spoke"), ("B-PER", "I-PER", "O"), "de").is_labelled
    True
    """

    tokens: tuple[str, ...]
    tags: tuple[str, ...] | None = None
    lang: str | None = None

    def __post_init__(self) -> None:
        if self.tags is not None and len(self.tags) != len(self.tokens):
            raise ValueError(f"{len(self.tokens)} tokens but {len(self.tags)} tags")

    @property
    def is_labelled(self) -> bool:
        return self.tags is not None

    def unlabeled(self) -> "Sentence":
        """The same sentence with its labels dropped (an unlabeled-pool item)."""
        return Sentence(self.tokens, None, self.lang)

    def __len__(self) -> int:
        return len(self.tokens)


def entity_spans(tags: tuple[str, ...] | list[str]) -> list[tuple[str, int, int]]:
    """Entity mentions of an IOB2 tag sequence as ``(type, start, end)``, end exclusive.

    Uses seqeval's chunker so that xner and its metric agree on what an entity is; each
    distinct sequence is chunked once per process (a study reads the same train and test
    sentences in every evaluation: perturbation resources, perturbations, overlap).

    >>> entity_spans(["B-PER", "I-PER", "O", "B-LOC"])
    [('PER', 0, 2), ('LOC', 3, 4)]
    """
    return list(_chunked(tuple(tags)))


@functools.lru_cache(maxsize=200_000)
def _chunked(tags: tuple[str, ...]) -> tuple[tuple[str, int, int], ...]:
    from seqeval.metrics.sequence_labeling import get_entities

    return tuple((etype, start, end + 1) for etype, start, end in get_entities(list(tags)))

