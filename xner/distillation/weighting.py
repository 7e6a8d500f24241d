"""How several teachers' soft labels are combined (multi-source distillation).

Each weighting returns a ``[n_sentences, n_teachers]`` matrix whose rows sum to 1;
the combined target of a word is the weighted mean of the teachers'
distributions. Named, versioned options (a result records which one it used):

* ``uniform.v1``: every teacher counts the same.
* ``uriel.v1``: static weights from URIEL typological similarity of each teacher's
  language to the target (PyPI ``lang2vec``, offline), softmax over ``-distance / tau``.
* ``given.v1``: static weights supplied by the caller (e.g. from entity overlap).
* ``langid.v1``: Wu et al. 2020's per-sentence weights: a language-identification
  classifier over the pretrained encoder's sentence representations, trained on the
  source languages' sentences; its softmax over sources weights each teacher.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from xner.data.corpus import Sentence
from xner.errors import XnerError
from xner.registry import resolve_name

__all__ = ["TeacherWeighting", "WEIGHTINGS", "resolve_weighting", "teacher_language"]


class TeacherWeighting(Protocol):
    name: str

    def weights(self, teachers: Sequence, pool: Sequence[Sentence]) -> np.ndarray: ...


def teacher_language(teacher) -> str:
    """The (first) training language recorded in a teacher's metadata."""
    languages = teacher.metadata.get("languages") or []
    if not languages:
        raise XnerError("teacher has no recorded training language (metadata 'languages'); retrain or set it")
    return languages[0]


@dataclass
class Uniform:
    name: str = "uniform.v1"

    def weights(self, teachers, pool) -> np.ndarray:
        return np.full((len(pool), len(teachers)), 1.0 / len(teachers))


@dataclass
class Given:
    """Caller-supplied weights per teacher language, normalised to sum to 1."""

    by_language: Mapping[str, float]
    name: str = "given.v1"

    def weights(self, teachers, pool) -> np.ndarray:
        try:
            raw = np.array([float(self.by_language[teacher_language(t)]) for t in teachers])
        except KeyError as err:
            raise XnerError(f"no weight given for teacher language {err.args[0]!r}") from None
        if (raw < 0).any() or raw.sum() <= 0:
            raise XnerError(f"teacher weights must be non-negative and not all zero, got {raw.tolist()}")
        return np.tile(raw / raw.sum(), (len(pool), 1))


@dataclass
class Uriel:
    """Softmax over negative URIEL distances (mean of genetic, syntactic and featural)."""

    tau: float = 0.1
    features: tuple[str, ...] = ("syntax_knn", "phonology_knn", "inventory_knn", "fam", "geo")
    name: str = "uriel.v1"

    def weights(self, teachers, pool) -> np.ndarray:
        from xner.languages import get_language
        from xner.typology import uriel_distance

        target = pool[0].lang if pool and pool[0].lang else None
        if target is None:
            raise XnerError("uriel weighting needs the target language on the pool's sentences")
        distances = np.array([
            uriel_distance(get_language(teacher_language(t)).iso3, get_language(target).iso3, self.features)
            for t in teachers
        ])
        scores = np.exp(-(distances - distances.min()) / self.tau)
        return np.tile(scores / scores.sum(), (len(pool), 1))


@dataclass
class LanguageId:
    """Per-sentence weights from a language classifier (Wu et al. 2020, multi-source).

    ``sources`` maps each teacher language to sentences of that language (its
    training data); the classifier is a multinomial logistic regression over the
    mean-pooled final-layer states of the pretrained encoder (``backbone``, default: the
    teachers' base model, whether they were saved compact or in full).
    """

    sources: Mapping[str, Sequence[Sentence]]
    backbone: object = None
    max_per_language: int = 2000
    name: str = "langid.v1"
    accuracy: float | None = field(default=None, init=False)

    def weights(self, teachers, pool) -> np.ndarray:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import cross_val_score

        from xner.models.backbone import load_backbone
        from xner.models.sentence_vectors import sentence_vectors

        # the *pretrained* encoder: a teacher saved in full carries its fine-tuned one (with its
        # own classifier), which neither builds the single-label model nor is what Wu et al. use
        backbone = self.backbone or load_backbone(teachers[0].base_name)
        languages = [teacher_language(t) for t in teachers]
        missing = [lang for lang in languages if lang not in self.sources]
        if missing:
            raise XnerError(f"langid weighting: no source sentences for teacher language(s) {missing}")
        xs, ys = [], []
        for index, lang in enumerate(languages):
            sentences = list(self.sources[lang])[: self.max_per_language]
            xs.append(sentence_vectors(backbone, sentences))
            ys.append(np.full(len(sentences), index))
        features, classes = np.concatenate(xs), np.concatenate(ys)
        classifier = LogisticRegression(max_iter=1000, random_state=0)
        smallest = int(np.bincount(classes).min())
        if smallest < 2:
            raise XnerError(f"langid weighting needs at least 2 sentences per teacher language, got {smallest}")
        self.accuracy = float(cross_val_score(classifier, features, classes, cv=min(3, smallest)).mean())
        classifier.fit(features, classes)
        return classifier.predict_proba(sentence_vectors(backbone, pool))


WEIGHTINGS = {"uniform.v1": Uniform, "given.v1": Given, "uriel.v1": Uriel, "langid.v1": LanguageId}


def resolve_weighting(name: str | TeacherWeighting, **resources) -> TeacherWeighting:
    """A weighting by (versioned) name; ``resources`` are its constructor arguments.

    >>> resolve_weighting("uniform").name
    'uniform.v1'
    """
    if not isinstance(name, str):
        return name
    key = resolve_name("teacher weighting", name, WEIGHTINGS)
    try:
        return WEIGHTINGS[key](**resources)
    except TypeError as err:
        raise XnerError(f"teacher weighting {key!r}: {err}") from None
