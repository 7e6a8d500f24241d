"""Headline selection as multiple choice: an article's text and ``k`` candidate headlines.

The distractors are the headlines of other articles of the same language and split, drawn
with a generator seeded by ``(seed, article index)``: they depend only on the articles, ``k``
and the seed, so every model (native, transferred, clean or perturbed text) answers the very
same questions. The right headline's position is drawn the same way (uniform over ``k``), so
chance is ``1/k``.

>>> docs = [Document(f"text {i}", headline=f"title {i}") for i in range(5)]
>>> item = choice_items(docs, k=3, seed=0)[0]
>>> item.candidates[item.answer]
'title 0'
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from xner.data.news import ChoiceItem, Document
from xner.errors import XnerError

__all__ = ["DEFAULT_CHOICES", "choice_items"]

DEFAULT_CHOICES = 4
"""Candidates per question, as in the reference study's section-title task."""


def choice_items(documents: Sequence[Document], k: int = DEFAULT_CHOICES, seed: int = 0) -> list[ChoiceItem]:
    """One multiple-choice question per document (see the module docstring).

    Args:
        documents: articles with headlines, all of one language and split.
        k: candidates per question (the right one + ``k - 1`` distractors), at least 2.
        seed: seeds the distractor draws and the answer positions.

    Raises:
        XnerError: ``k < 2``, a document without a headline, or fewer than ``k`` distinct
            headlines to draw from.
    """
    if k < 2:
        raise XnerError(f"a multiple-choice question needs at least 2 candidates, got k={k}")
    for index, doc in enumerate(documents):
        if not doc.headline:
            raise XnerError(f"{doc.source or f'document {index}'}: no headline to ask for")
    pool = sorted({doc.headline for doc in documents})
    if len(pool) < k:
        raise XnerError(f"{len(pool)} distinct headlines, fewer than the k={k} candidates a question needs")
    items = []
    for index, doc in enumerate(documents):
        rng = np.random.default_rng([seed, index])
        distractors: list[str] = []
        while len(distractors) < k - 1:
            drawn = pool[int(rng.integers(len(pool)))]
            if drawn != doc.headline and drawn not in distractors:
                distractors.append(drawn)
        answer = int(rng.integers(k))
        candidates = distractors[:answer] + [doc.headline] + distractors[answer:]
        items.append(ChoiceItem(doc.text, tuple(candidates), answer, doc.lang, doc.source))
    return items
