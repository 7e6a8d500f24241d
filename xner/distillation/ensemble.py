"""The teachers' weighted ensemble as a predictor (volume 0 of a sweep, zero-shot)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from xner.data.corpus import Sentence
from xner.decoding import DEFAULT_DECODING, decode
from xner.distillation.student import soft_labels
from xner.distillation.weighting import TeacherWeighting
from xner.models.tagger import Tagger

__all__ = ["Ensemble"]


class Ensemble:
    """The teachers' weighted ensemble as a predictor: volume 0 of a sweep, zero-shot.

    It offers what evaluation needs of a tagger (``labels``, ``predict_proba``, ``predict``, the first
    teacher's ``metadata`` and ``base_name`` for perturbation resources); one
    teacher is simply that teacher.
    """

    def __init__(self, teachers: Sequence[Tagger], weighting: TeacherWeighting) -> None:
        self.teachers = list(teachers)
        self.weighting = weighting
        self.labels = teachers[0].labels
        self.metadata = teachers[0].metadata
        self.base_name = teachers[0].base_name

    def predict_proba(self, sentences: Sequence[Sentence]) -> list[np.ndarray]:
        """The teachers' weighted word distributions (the soft labels a student learns from)."""
        distributions, _ = soft_labels(self.teachers, sentences, weighting=self.weighting)
        return distributions

    def predict(self, sentences: Sequence[Sentence], decoding: str = DEFAULT_DECODING) -> list[list[str]]:
        return [decode(d, self.labels, decoding) for d in self.predict_proba(sentences)]
