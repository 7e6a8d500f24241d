"""Topic categories across languages: mapped explicitly, never silently.

MasakhaNEWS languages have different category sets (Oromo has no ``business``, Yoruba no
``business`` but ``religion``...). A model knows the categories it was trained on; a document
of another category cannot be scored by it. A study therefore states a category map applied to
every language's data (``{entertainment: drop}`` removes those documents, ``{religion: society}``
renames), and scoring fails with a message naming any category that is still unknown to the model.

>>> docs = [Document("a", category="sports"), Document("b", category="religion")]
>>> [d.category for d in map_categories(docs, {"religion": "drop"})]
['sports']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from xner.data.news import Document
from xner.errors import XnerError

__all__ = ["DROP", "check_categories", "map_categories"]

DROP = "drop"
"""Category-map value that removes a category's documents."""


def map_categories(documents: Sequence[Document], category_map: Mapping[str, str]) -> list[Document]:
    """Documents with their categories renamed by the map, those mapped to :data:`DROP` removed."""
    out = []
    for doc in documents:
        category = category_map.get(doc.category, doc.category) if doc.category else doc.category
        if category != DROP:
            out.append(doc if category == doc.category else replace(doc, category=category))
    return out


def check_categories(documents: Sequence[Document], labels: Sequence[str], where: str) -> None:
    """Raise unless every document's category is one of the model's ``labels``.

    Raises:
        XnerError: names the unmapped categories, the model's, and how to map them.
    """
    unknown = sorted({doc.category or "(none)" for doc in documents} - set(labels))
    if unknown:
        raise XnerError(f"{where}: categories {', '.join(unknown)} are not among the model's categories "
                        f"({', '.join(labels)}); map them explicitly (category map, e.g. {unknown[0]}=drop)")
