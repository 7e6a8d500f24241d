"""What a teacher's behaviour on *unlabeled* target text says about how well it will transfer.

Choosing a source language before spending compute needs signals that use no target labels.
Besides typology and overlap (:mod:`xner.transfer_features`), a trained candidate teacher can
be run on a few hundred unlabeled target sentences: a teacher that is unsure (low confidence,
high entropy), that finds far fewer or far more entities than it was trained to find, or that
disagrees with the other candidates is likely to transfer badly (confidence-based source
selection: e.g. Chen et al. 2019's multi-source agreement, and MasakhaNER 2.0's observation
that entity density shifts hurt transfer).

>>> probs = [np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1]])]
>>> signals = unlabeled_signals(probs, ["O", "B-PER", "I-PER"])
>>> round(signals["teacher_confidence"], 2), signals["teacher_entity_rate"]
(0.8, 50.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from xner.data.corpus import Sentence, entity_spans
from xner.decoding import DEFAULT_DECODING, decode

__all__ = ["agreement", "encode_tags", "entity_rate", "unlabeled_signals"]

_TAG_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def entity_rate(tag_sequences: Sequence[Sequence[str]]) -> float:
    """Share of words inside an entity (tag other than ``O``), 0-100."""
    words = sum(len(tags) for tags in tag_sequences)
    inside = sum(tag != "O" for tags in tag_sequences for tag in tags)
    return 100.0 * inside / words if words else 0.0


def encode_tags(tag_sequences: Sequence[Sequence[str]], labels: Sequence[str]) -> str:
    """Predicted tags as one compact string (a character per word, sentences split by ``|``),
    so that a store keeps them for agreement between teachers at analysis time."""
    index = {label: _TAG_CHARS[i] for i, label in enumerate(labels)}
    return "|".join("".join(index[tag] for tag in tags) for tags in tag_sequences)


def _decode_tags(encoded: str, labels: Sequence[str]) -> list[list[str]]:
    label_of = {_TAG_CHARS[i]: label for i, label in enumerate(labels)}
    return [[label_of[c] for c in sentence] for sentence in encoded.split("|")]


def unlabeled_signals(
    probs: Sequence[np.ndarray], labels: Sequence[str], source_train: Sequence[Sentence] | None = None
) -> dict[str, float | str]:
    """Signals of one teacher from its word distributions on unlabeled target sentences.

    Args:
        probs: ``[n_words, n_labels]`` per sentence (``Tagger.predict_proba``).
        labels: the teacher's labels.
        source_train: the teacher's labelled training sentences, for the entity rate it was
            taught (``None``: the ratio is NaN).

    Returns:
        ``teacher_confidence`` (mean max probability per word, 0-1), ``teacher_entropy`` (mean
        word entropy, nats), ``teacher_entity_rate`` (share of words predicted inside an
        entity, 0-100), ``source_entity_rate`` (the same for the gold training tags),
        ``entity_rate_ratio`` (predicted over taught), ``tags`` (:func:`encode_tags`) and
        ``labels`` (what the tag characters stand for).
    """
    words = np.concatenate([np.asarray(p, dtype=np.float64) for p in probs]) if probs else np.zeros((0, len(labels)))
    clipped = np.clip(words, 1e-12, 1.0)
    tags = [decode(p, labels, DEFAULT_DECODING) for p in probs]
    predicted = entity_rate(tags)
    taught = entity_rate([s.tags for s in source_train if s.tags is not None]) if source_train else float("nan")
    return {
        "teacher_confidence": float(words.max(axis=1).mean()) if len(words) else float("nan"),
        "teacher_entropy": float(-(clipped * np.log(clipped)).sum(axis=1).mean()) if len(words) else float("nan"),
        "teacher_entity_rate": predicted,
        "source_entity_rate": taught,
        "entity_rate_ratio": predicted / taught if taught else float("nan"),
        "tags": encode_tags(tags, labels),
        "labels": list(labels),
    }


def _chunks(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    return set(entity_spans(list(tags)))


def agreement(tags_by_teacher: Mapping[str, str], labels: Sequence[str]) -> dict[str, float]:
    """Each teacher's mean entity-level agreement (F1 of its chunks against another's, 0-100)
    with every other candidate teacher on the same unlabeled sentences.

    A teacher alone has no one to agree with: NaN.

    >>> agreement({"a": "12|0", "b": "12|0", "c": "00|1"}, ["O", "B-PER", "I-PER"])
    {'a': 50.0, 'b': 50.0, 'c': 0.0}
    """
    chunks = {name: [_chunks(s) for s in _decode_tags(encoded, labels)] for name, encoded in tags_by_teacher.items()}
    result = {}
    for name, mine in chunks.items():
        scores = []
        for other, theirs in chunks.items():
            if other == name:
                continue
            shared = sum(len(a & b) for a, b in zip(mine, theirs, strict=True))
            total = sum(len(a) + len(b) for a, b in zip(mine, theirs, strict=True))
            scores.append(200.0 * shared / total if total else 100.0)
        result[name] = float(np.mean(scores)) if scores else float("nan")
    return result
