"""Training objectives and teacher-student distillation on unlabeled target text.

Follows Wu et al. 2020, "Single-/Multi-Source Cross-Lingual NER via
Teacher-Student Learning on Unlabeled Data in Target Language" (ACL 2020): a
teacher trained on a source language labels unlabeled target sentences with
per-word label distributions; a student, fresh from the pretrained encoder with
its bottom layers frozen, fits those distributions with MSE (no temperature).
KL with a temperature, hard pseudo-labels, a confidence threshold and mixing in
source labelled data are named options.

Losses are ``nn.Module(word_logits, word_targets)`` with a ``citation``
(sentence-transformers style) and live in a registry with versioned names, so a
result row records exactly which objective produced it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xner.data.corpus import Sentence, SentenceSubset
from xner.errors import XnerError, one_of
from xner.models.tagger import Tagger, TrainConfig
from xner.paths import cache_dir
from xner.weighting import TeacherWeighting, resolve_weighting

__all__ = ["DistillConfig", "LOSSES", "distill", "make_loss", "soft_labels"]

WU_2020 = (
    "Wu, Q., Lin, Z., Karlsson, B., Lou, J.-G., Huang, B. (2020). Single-/Multi-Source "
    "Cross-Lingual NER via Teacher-Student Learning on Unlabeled Data in Target Language. ACL."
)


class MSEDistillLoss(nn.Module):
    """Mean squared error between student and teacher label distributions (Wu et al. 2020)."""

    citation = WU_2020

    def forward(self, word_logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(torch.softmax(word_logits, dim=-1), teacher_probs.float())


class KLDistillLoss(nn.Module):
    """KL(teacher || student) at temperature T, scaled by T^2 (Hinton et al. 2015)."""

    citation = "Hinton, G., Vinyals, O., Dean, J. (2015). Distilling the Knowledge in a Neural Network."

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, word_logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
        log_student = torch.log_softmax(word_logits / self.temperature, dim=-1)
        return F.kl_div(log_student, teacher_probs.float(), reduction="batchmean") * self.temperature**2


class CrossEntropyLoss(nn.CrossEntropyLoss):
    """Cross-entropy on hard labels (gold tags, or argmax pseudo-labels)."""

    citation = "Standard supervised token classification (Devlin et al. 2019)."


LOSSES: dict[str, type[nn.Module]] = {
    "mse.v1": MSEDistillLoss,
    "kl.v1": KLDistillLoss,
    "ce.v1": CrossEntropyLoss,
}


def make_loss(name: str, temperature: float = 1.0) -> nn.Module:
    """A loss by registry name (``mse``, ``kl``, ``ce`` or a versioned ``mse.v1``)."""
    key = _versioned(name, LOSSES)
    return KLDistillLoss(temperature) if key.startswith("kl.") else LOSSES[key]()


def _versioned(name: str, registry: dict) -> str:
    if name in registry:
        return name
    versions = sorted(k for k in registry if k.split(".")[0] == name)
    if not versions:
        raise one_of("loss", name, sorted({k.split(".")[0] for k in registry}))
    return versions[-1]


@dataclass
class DistillConfig:
    """How a student learns from its teacher(s); hashed into a study's run id."""

    loss: str = "mse"  # mse (Wu et al.) | kl | ce (with hard=True)
    temperature: float = 1.0  # softens the teacher's distribution (kl; also applied to mse targets)
    hard: bool = False  # argmax pseudo-labels + cross-entropy instead of soft labels
    threshold: float | None = None  # drop words whose teacher confidence is below this
    weighting: str = "uniform"  # multi-source teacher weighting (see xner.weighting)
    source_mix: int = 0  # labelled source sentences mixed into the student's training data
    train: TrainConfig = field(default_factory=lambda: TrainConfig(train_layers=9, patience=None))


def soft_labels(
    teachers: Sequence[Tagger],
    pool: Sequence[Sentence],
    *,
    temperature: float = 1.0,
    weighting: TeacherWeighting | None = None,
    use_cache: bool = True,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Teachers' combined per-word label distributions on an unlabeled pool.

    Computed once per (teachers, pool, temperature, weighting) and cached on disk
    under ``$XNER_CACHE/soft-labels``; every student volume and seed then reads
    rows of the same file (nested pools share a prefix).

    Returns:
        ``(distributions, weights)``: one ``[n_words, n_labels]`` array per pool
        sentence, and the ``[n_sentences, n_teachers]`` teacher weights used.
    """
    labels = teachers[0].labels
    for teacher in teachers[1:]:
        if teacher.labels != labels:
            raise XnerError(f"teachers disagree on labels: {list(labels)} vs {list(teacher.labels)}")
    weighting = weighting or resolve_weighting("uniform")
    key = _soft_label_key(teachers, pool, temperature, weighting)
    path = cache_dir() / "soft-labels" / f"{key}.npz"
    if use_cache and path.is_file():
        try:
            return _read_soft_labels(path, len(pool))
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # corrupt: recompute
    weights = weighting.weights(teachers, pool)
    per_teacher = [teacher.predict_proba(pool, temperature=temperature) for teacher in teachers]
    combined = [
        sum(weights[i, t] * per_teacher[t][i] for t in range(len(teachers))).astype(np.float32)
        for i in range(len(pool))
    ]
    if use_cache:
        _write_soft_labels(path, combined, weights)
    return combined, weights


def _soft_label_key(teachers, pool, temperature, weighting) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for teacher in teachers:
        digest.update(teacher.fingerprint.encode())
    for sentence in pool:
        digest.update("\x1f".join(sentence.tokens).encode() + b"\x1e")
    digest.update(f"{temperature}|{weighting.name}".encode())
    return digest.hexdigest()


def _write_soft_labels(path, distributions, weights) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lengths = np.array([len(d) for d in distributions], dtype=np.int64)
    flat = np.concatenate(distributions) if distributions else np.zeros((0, 1), np.float32)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, flat=flat.astype(np.float16), lengths=lengths, weights=weights)
    tmp.replace(path)


def _read_soft_labels(path, expected: int) -> tuple[list[np.ndarray], np.ndarray]:
    with np.load(path) as data:
        flat, lengths, weights = data["flat"].astype(np.float32), data["lengths"], data["weights"]
    if len(lengths) != expected or flat.shape[0] != lengths.sum():
        raise ValueError("soft-label cache does not match its pool")
    return np.split(flat, np.cumsum(lengths)[:-1]), weights


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
        unlabeled: the student's target sentences (labels, if any, are ignored). A
            :class:`~xner.data.corpus.SentenceSubset` (the nested volumes of a sweep)
            shares the soft labels and frozen features computed once for its pool.
        config: loss, temperature, hard labels, threshold, weighting, training options.
        weighting: a ready :class:`~xner.weighting.TeacherWeighting` (e.g. ``langid``
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
    if isinstance(unlabeled, SentenceSubset):
        pool, indices = unlabeled.pool, np.asarray(unlabeled.indices, dtype=np.int64)
    else:
        pool, indices = unlabeled, np.arange(len(unlabeled))
    distributions, weights = soft_labels(teachers, pool, temperature=config.temperature, weighting=weighting)
    kept = [i for i in indices if _confident(distributions[i], config.threshold)]
    if not kept:
        raise XnerError(f"no unlabeled sentence passes the confidence threshold {config.threshold}")
    sentences: Sequence[Sentence] = SentenceSubset(pool, tuple(int(i) for i in kept))
    targets = [distributions[i].argmax(axis=1) if config.hard else distributions[i] for i in kept]
    if config.source_mix:
        mixed = list(source_train)[: config.source_mix]
        sentences = list(sentences) + mixed
        targets += [_one_hot(s, teachers[0].labels, hard=config.hard) for s in mixed]
    loss_name = "ce" if config.hard else config.loss
    student = Tagger.create(model or teachers[0].base_name, labels=teachers[0].labels, seed=config.train.seed)
    student.fit(sentences, dev=dev, config=config.train, targets=targets,
                loss=make_loss(loss_name, config.temperature), progress=progress)
    student.metadata["distillation"] = {
        **asdict(config),
        "loss": _versioned(loss_name, LOSSES),
        "weighting": weighting.name,
        "teachers": [t.metadata.get("name", t.fingerprint) for t in teachers],
        "teacher_weights_mean": weights[indices].mean(axis=0).round(4).tolist(),
        "volume": len(indices),
        "kept": len(kept),
    }
    return student


def _confident(distribution: np.ndarray, threshold: float | None) -> bool:
    """Whether every word's teacher confidence reaches the threshold (sentence-level filter:
    dropping single words would break the sentence context the student sees)."""
    return threshold is None or len(distribution) == 0 or float(distribution.max(axis=1).min()) >= threshold


def _one_hot(sentence: Sentence, labels: tuple[str, ...], hard: bool) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    ids = np.array([index[t] for t in sentence.tags or ()], dtype=np.int64)
    return ids if hard else np.eye(len(labels), dtype=np.float32)[ids]
