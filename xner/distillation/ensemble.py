"""The teachers' weighted ensemble as a predictor (volume 0 of a sweep, zero-shot)."""

from __future__ import annotations

from collections.abc import Sequence

from xner.data.corpus import Sentence
from xner.distillation.student import soft_labels
from xner.distillation.weighting import TeacherWeighting
from xner.models.tagger import Tagger, repair_iob2

__all__ = ["Ensemble"]


class Ensemble:
    """The teachers' weighted ensemble as a predictor: volume 0 of a sweep, zero-shot.

    It offers what evaluation needs of a tagger (``labels``, ``predict``, the first
    teacher's ``metadata`` and ``base_name`` for perturbation resources); one
    teacher is simply that teacher.
    """

    def __init__(self, teachers: Sequence[Tagger], weighting: TeacherWeighting) -> None:
        self.teachers = list(teachers)
        self.weighting = weighting
        self.labels = teachers[0].labels
        self.metadata = teachers[0].metadata
        self.base_name = teachers[0].base_name

    def predict(self, sentences: Sequence[Sentence]) -> list[list[str]]:
        distributions, _ = soft_labels(self.teachers, sentences, weighting=self.weighting)
        return [repair_iob2([self.labels[j] for j in d.argmax(axis=1)]) for d in distributions]
