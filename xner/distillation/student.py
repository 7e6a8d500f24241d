"""Teacher-student distillation on unlabeled target text: soft labels and the student.

Follows Wu et al. 2020, "Single-/Multi-Source Cross-Lingual NER via
Teacher-Student Learning on Unlabeled Data in Target Language" (ACL 2020): a
teacher trained on a source language labels unlabeled target sentences with
per-word label distributions; a student, fresh from the pretrained encoder with
its bottom layers frozen, fits those distributions with MSE (no temperature).
KL with a temperature, hard pseudo-labels, a confidence threshold and mixing in
source labelled data are named options.

The losses are in :mod:`xner.distillation.losses`, the teacher weightings in
:mod:`xner.distillation.weighting`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from pydantic import Field

from xner.data.corpus import Sentence
from xner.distillation.losses import distill_loss_name, make_loss
from xner.distillation.weighting import TeacherWeighting, resolve_weighting
from xner.errors import XnerError
from xner.models.features import FeatureStore, content_key
from xner.models.tagger import Tagger, TrainConfig
from xner.options import DEFAULT_STUDENT, DistillationOptions, OneLineErrors
from xner.paths import cache_dir

__all__ = ["DistillConfig", "distill", "soft_labels", "teacher_distributions"]

class DistillConfig(OneLineErrors, DistillationOptions):
    """How a student learns from its teacher(s): the :class:`~xner.options.DistillationOptions`
    and the student's training options (hashed into a study's run id)."""

    train: TrainConfig = Field(default_factory=lambda: TrainConfig(**DEFAULT_STUDENT.model_dump()),
                               description="The student's training options.")


def soft_labels(
    teachers: Sequence[Tagger],
    sentences: Sequence[Sentence],
    *,
    temperature: float = 1.0,
    weighting: TeacherWeighting | None = None,
    precision: str = "auto",
) -> tuple[list[np.ndarray], np.ndarray]:
    """Teachers' combined per-word label distributions on unlabeled sentences.

    Each teacher's distributions are cached per sentence (content-addressed, under
    ``$XNER_CACHE/soft-labels``): nested volumes, seeds and reruns only ever ask a
    teacher about sentences it has not labelled before. ``precision`` is the teachers'
    inference precision (:meth:`Tagger.predict_proba`; part of the cache key unless ``auto``).

    Returns:
        ``(distributions, weights)``: one ``[n_words, n_labels]`` array per
        sentence, and the ``[n_sentences, n_teachers]`` teacher weights used.
    """
    labels = teachers[0].labels
    for teacher in teachers[1:]:
        if teacher.labels != labels:
            raise XnerError(f"teachers disagree on labels: {list(labels)} vs {list(teacher.labels)}")
    weighting = weighting or resolve_weighting("uniform")
    weights = weighting.weights(teachers, sentences)
    per_teacher = [teacher_distributions(teacher, sentences, temperature, precision) for teacher in teachers]
    combined = [
        sum(weights[i, t] * per_teacher[t][i] for t in range(len(teachers))).astype(np.float32)
        for i in range(len(sentences))
    ]
    return combined, weights


def teacher_distributions(teacher: Tagger, sentences: Sequence[Sentence], temperature: float = 1.0,
                          precision: str = "auto") -> list[np.ndarray]:
    """One teacher's per-word distributions, computed only for sentences not cached yet."""
    # v2: sentences longer than the model's max_length are predicted whole (windows), not cut;
    # v3: predicted in exact-length batches, so a sentence's entry does not depend on its batch
    key = f"v3|{teacher.fingerprint}|{temperature}" + ("" if precision == "auto" else f"|{precision}")
    name = hashlib.blake2b(key.encode(), digest_size=12).hexdigest()
    store = FeatureStore.open(cache_dir() / "soft-labels" / name)

    def compute(missing: list[int]) -> tuple[np.ndarray, list[int]]:
        probs = teacher.predict_proba([sentences[i] for i in missing], temperature=temperature, precision=precision)
        starts = np.concatenate([[0], np.cumsum([len(p) for p in probs])[:-1]]).astype(int).tolist()
        return np.concatenate(probs).astype(np.float32), starts

    keys = [content_key(np.frombuffer("\x1f".join(s.tokens).encode(), dtype=np.uint8)) for s in sentences]
    shard_of, starts = store.locate(keys, compute)
    return [np.asarray(store.shards[shard][start : start + len(s)])
            for shard, start, s in zip(shard_of, starts, sentences)]


def distill(
    teachers: Sequence[Tagger],
    unlabeled: Sequence[Sentence],
    *,
    config: DistillConfig | None = None,
    weighting: TeacherWeighting | None = None,
    dev: Sequence[Sentence] | None = None,
    source_train: Sequence[Sentence] = (),
    model: str | None = None,
    progress: bool = False,
) -> Tagger:
    """Train a student on teacher-labelled target text.

    Args:
        teachers: trained taggers (one: single-source; several: multi-source).
        unlabeled: the student's target sentences (labels, if any, are ignored). Soft
            labels and frozen features are cached per sentence, so the nested volumes
            of a sweep only compute what the previous volumes did not.
        config: loss, temperature, hard labels, threshold, weighting, training options.
        weighting: a ready :class:`~xner.distillation.weighting.TeacherWeighting` (e.g. ``langid``
            with its source sentences); default: ``config.weighting`` by name.
        dev: labelled *source-language* sentences for early stopping, if wanted
            (target labels are not available in a zero-resource setting).
        source_train: labelled source sentences; ``config.source_mix`` of them are
            mixed into the student's data with their gold labels.
        model: the student's encoder (default: the first teacher's pretrained encoder).

    Returns:
        The trained student; ``student.metadata["distillation"]`` records the
        loss, weighting and teacher weights used.
    """
    config = config or DistillConfig()
    if not len(unlabeled):
        raise XnerError("distillation needs at least one unlabeled sentence (volume 0 is the teacher itself)")
    weighting = weighting or resolve_weighting(config.weighting)
    distributions, weights = soft_labels(teachers, unlabeled, temperature=config.temperature, weighting=weighting)
    kept = [i for i in range(len(unlabeled)) if _confident(distributions[i], config.threshold)]
    if not kept:
        raise XnerError(f"no unlabeled sentence passes the confidence threshold {config.threshold}")
    sentences: Sequence[Sentence] = [unlabeled[i] for i in kept]
    targets = [distributions[i].argmax(axis=1) if config.hard else distributions[i] for i in kept]
    if config.source_mix:
        mixed = list(source_train)[: config.source_mix]
        sentences = list(sentences) + mixed
        targets += [_one_hot(s, teachers[0].labels, hard=config.hard) for s in mixed]
    loss_name = distill_loss_name(config)
    student = Tagger.create(model or teachers[0].base_name, labels=teachers[0].labels, seed=config.train.seed)
    student.fit(sentences, dev=dev, config=config.train, targets=targets,
                loss=make_loss(loss_name, config.temperature), progress=progress)
    student.metadata["distillation"] = {
        **config.model_dump(),
        "loss": loss_name,
        "weighting": weighting.name,
        "teachers": [t.metadata.get("name", t.fingerprint) for t in teachers],
        "teacher_weights_mean": weights.mean(axis=0).round(4).tolist(),
        "volume": len(unlabeled),
        "kept": len(kept),
    }
    return student


def _confident(distribution: np.ndarray, threshold: float | None) -> bool:
    """Whether every word's teacher confidence reaches the threshold (sentence-level filter:
    dropping single words would break the sentence context the student sees)."""
    return threshold is None or len(distribution) == 0 or float(distribution.max(axis=1).min()) >= threshold


def _one_hot(sentence: Sentence, labels: tuple[str, ...], hard: bool) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted(set(sentence.tags or ()) - set(index))
    if unknown:
        raise XnerError(f"source sentence tags {unknown} are not among the teachers' labels {list(labels)}; "
                        "map them explicitly (label_map)")
    ids = np.array([index[t] for t in sentence.tags or ()], dtype=np.int64)
    return ids if hard else np.eye(len(labels), dtype=np.float32)[ids]
