"""Tasks: what a model predicts, under versioned names (spaCy style), so old results keep their meaning.

- ``ner.v1``: named-entity tags per word (:class:`xner.models.tagger.Tagger`), the default;
- ``headline.v1``: multiple choice: an article's text and ``k`` candidate headlines of the same
  language and split (one its own, ``k - 1`` drawn seeded from the other articles, the same draw
  for every model); ``AutoModelForMultipleChoice`` on the backbone. The analogue of the reference
  study's Wikipedia section-title prediction (Manafi & Krishnaswamy 2024), which WikiTitle files
  and WikiExtractor dumps (:mod:`xner.data.wiki`) feed exactly;
- ``topic.v1``: document classification into the language's news categories
  (``AutoModelForSequenceClassification``); category sets differ between languages, so a model
  is scored on another language only through an explicit category map
  (:func:`xner.tasks.topic.map_categories`).

Document models read the first ``max_length`` subwords of a text (candidate headline first, then
the text; the text is what is cut) and say so in their results.

>>> get_task("headline").name
'headline.v1'
"""

from __future__ import annotations

from dataclasses import dataclass

from xner.errors import XnerError
from xner.registry import resolve_name

__all__ = ["DEFAULT_TASK", "TASKS", "Task", "get_task", "list_tasks"]


@dataclass(frozen=True)
class Task:
    """A registered task.

    Attributes:
        name: versioned name (``topic.v1``).
        description: one line for ``--help`` and reports.
        head: the transformers auto class of its model (``None``: NER's own tagger).
        metric: its primary metric (``f1`` or ``accuracy``).
    """

    name: str
    description: str
    head: str | None
    metric: str

    @property
    def base(self) -> str:
        """The name without its version (``topic``)."""
        return self.name.rsplit(".v", 1)[0]


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task("ner.v1", "named entities per word (IOB2), entity F1", None, "f1"),
        Task("headline.v1", "pick an article's headline among k candidates of its language and split",
             "AutoModelForMultipleChoice", "accuracy"),
        Task("topic.v1", "classify a document into its language's categories",
             "AutoModelForSequenceClassification", "accuracy"),
    )
}
"""Every task under its versioned name."""

DEFAULT_TASK = "ner.v1"


def list_tasks() -> list[str]:
    """Versioned names of all tasks."""
    return sorted(TASKS)


def get_task(name: str) -> Task:
    """The task a bare or versioned name means.

    Raises:
        XnerError: unknown task; the message lists the valid ones.
    """
    if not isinstance(name, str):
        raise XnerError(f"a task is a name, got {name!r}")
    return TASKS[resolve_name("task", name, TASKS, list_versions=True)]
