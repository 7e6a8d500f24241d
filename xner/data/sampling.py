"""Seeded, nested subsets of sentences and unlabeled pools.

Learning curves compare training sizes (or unlabeled volumes) of the same seed, so the sizes
must be nested: the 100-sentence subset is the first 100 of the 500-sentence one. Every
subset is therefore a prefix of one seeded permutation of the full list, which depends only
on the seed and the number of sentences. Following Wu et al. (2020), an unlabeled pool is
the target language's labelled train split with its labels dropped, or a raw text file.

>>> from xner.data.corpus import Sentence
>>> data = [Sentence((str(i),), ("O",)) for i in range(10)]
>>> small, large = nested_subset(data, 3, seed=1), nested_subset(data, 6, seed=1)
>>> large[:3] == small
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from xner.data.corpus import Sentence
from xner.data.formats import read_text
from xner.errors import XnerError

__all__ = ["ALL", "check_limit", "first", "nested_subset", "subset_indices", "training_subset", "unlabeled_pool"]

ALL = -1
"""``size`` meaning every sentence (``None`` means the same)."""


def first(items: Sequence, limit: int | None) -> list:
    """The first ``limit`` items (all with ``None``), for scoring on the head of a test split.

    Raises:
        XnerError: ``limit`` below 1 -- a slice would silently score nothing (0) or drop the
            last items (negative) and report an F1 of it.
    """
    return list(items[:check_limit(limit)])


def check_limit(limit: int | None, name: str = "limit") -> int | None:
    """``limit`` itself, if it is None or at least 1 (see :func:`first`); studies check it
    before their first run, not at their first evaluation."""
    if limit is not None and limit < 1:
        raise XnerError(f"{name}: the number of test sentences/documents to score must be at least 1, got {limit}")
    return limit


def nested_subset(sentences: Sequence[Sentence], size: int | None, seed: int) -> list[Sentence]:
    """The first ``size`` sentences of a seeded permutation: nested across sizes, per seed.

    Args:
        sentences: the full list.
        size: how many to take; ``None`` or ``-1`` (:data:`ALL`) takes all, still permuted.
        seed: the permutation's seed (numpy ``default_rng``).

    Returns:
        ``size`` sentences; for the same seed and list, a smaller size gives a prefix.

    Raises:
        XnerError: ``size`` exceeds the sentences available (never silently capped) or is
            negative other than ``-1``.

    >>> from xner.data.corpus import Sentence
    >>> len(nested_subset([Sentence(("a",), ("O",))] * 5, None, seed=0))
    5
    """
    return [sentences[i] for i in subset_indices(len(sentences), size, seed)]


def training_subset(items: Sequence, size: int | None, seed: int) -> list:
    """:func:`nested_subset` of a train split for a model to learn from, which must not be
    empty: size 0 is a volume (the teacher itself) but no training set -- the model would
    be saved untrained, its head still random, after zero updates.

    Raises:
        XnerError: ``size`` is 0, or a bad size (see :func:`subset_indices`).
    """
    if size == 0:
        raise XnerError("train_size: 0 training sentences/documents would train nothing; give at least 1 "
                        "(or -1 / none for the whole train split)")
    return nested_subset(items, size, seed)


def subset_indices(available: int, size: int | None, seed: int) -> tuple[int, ...]:
    """Indices of :func:`nested_subset`'s sentences (nested across sizes for one seed).

    >>> subset_indices(10, 3, seed=1) == subset_indices(10, 6, seed=1)[:3]
    True
    """
    if size is None or size == ALL:
        size = available
    if size < 0:
        raise XnerError(f"subset size must be >= 0, or -1 / None for all; got {size}")
    if size > available:
        raise XnerError(f"asked for {size} sentences but only {available} are available")
    return tuple(int(i) for i in np.random.default_rng(seed).permutation(available)[:size])


def unlabeled_pool(
    source: Sequence[Sentence] | str | Path,
    size: int | None,
    seed: int,
    lang: str | None = None,
    tokenize: Callable[[str], Sequence[str]] | None = None,
) -> list[Sentence]:
    """A nested, seeded pool of unlabeled sentences from a split or a raw text file.

    Args:
        source: sentences (their labels are dropped), or a text file with one sentence a
            line (see :func:`~xner.data.formats.read_text`).
        size: pool size; ``None`` / ``-1`` for everything.
        seed: the permutation's seed: pools of the same seed are nested.
        lang: language of the sentences read from a text file.
        tokenize: how a text line becomes tokens; default: split on whitespace.

    Returns:
        Unlabeled sentences (``tags is None``).

    Raises:
        XnerError: as :func:`nested_subset`, or an unreadable/empty text file.

    >>> from xner.data.corpus import Sentence
    >>> unlabeled_pool([Sentence(("Oslo",), ("B-LOC",), "no")], 1, seed=0)[0].tags is None
    True
    """
    if isinstance(source, (str, Path)):
        source = read_text(source, lang, tokenize)
    return [s.unlabeled() for s in nested_subset(source, size, seed)]
