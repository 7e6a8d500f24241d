"""Entity-level NER scores, bootstrap confidence intervals and source/target overlap.

Scores follow seqeval in strict IOB2 mode (an ``I-`` tag after ``O`` starts no
entity), which is what CoNLL-style NER papers report. Entities are extracted once
per sentence and turned into per-sentence counts (true positives, predicted, gold);
the scores are ratios of summed counts, so the bootstrap only resamples count rows
instead of re-running the scorer a thousand times.

Overlap measures say how much of a target test set a model trained on the source
language has already seen (Manafi & Krishnaswamy 2024: transfer F1 follows
entity-chunk overlap).

>>> entity_scores([["B-PER", "I-PER", "O"]], [["B-PER", "I-PER", "O"]])["f1"]
100.0
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from seqeval.scheme import IOB2, Entities

from xner.data.corpus import Sentence, entity_spans
from xner.errors import XnerError

__all__ = [
    "PRIMARY_METRIC",
    "EntityCounts",
    "bootstrap_f1",
    "entity_overlap",
    "entity_scores",
    "entity_sets",
    "pair_overlap",
    "subword_ids",
    "subword_overlap",
]

PRIMARY_METRIC = "f1"
"""The key of :func:`entity_scores` that model selection and reports rank by."""

_TP, _PRED, _GOLD = 0, 1, 2


def _check_aligned(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> None:
    if len(gold) != len(pred):
        raise XnerError(f"{len(gold)} gold sentences but {len(pred)} predicted sentences")
    for index, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if len(g) != len(p):
            raise XnerError(f"sentence {index}: {len(g)} gold tags but {len(p)} predicted tags")


Entity = tuple[int, int, str]


def entity_sets(sequences: Sequence[Sequence[str]]) -> list[frozenset[Entity]]:
    """Strict-IOB2 entities of each sentence as ``{(start, end, type)}`` (seqeval's reading):
    what :class:`EntityCounts` compares; compute a gold side once to score several predictions.

    seqeval reads each distinct tag sequence once per process: an evaluation scores the same
    sentences under three decodings, clean and perturbed, and most of those tag sequences
    repeat (they were a tenth of a study's evaluation time)."""
    return [_strict_entities(tuple(sequence)) for sequence in sequences]


@functools.lru_cache(maxsize=200_000)
def _strict_entities(tags: tuple[str, ...]) -> frozenset[Entity]:
    (sentence,) = Entities([list(tags)], IOB2, suffix=False).entities
    return frozenset((e.start, e.end, e.tag) for e in sentence)


@dataclass(frozen=True)
class EntityCounts:
    """Per sentence and entity type, the (true positive, predicted, gold) entity counts of one
    prediction against gold: micro and per-type scores and the bootstrap over sentences both
    come from it, so the entities of a scoring are extracted once."""

    types: list[str]
    counts: np.ndarray  # (sentences, types, 3)

    @classmethod
    def of(cls, gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]],
           gold_entities: list[frozenset[Entity]] | None = None) -> "EntityCounts":
        """Count ``pred`` against ``gold`` (``gold_entities``: :func:`entity_sets` of ``gold``,
        when the caller already has them)."""
        _check_aligned(gold, pred)
        gold_sets = entity_sets(gold) if gold_entities is None else gold_entities
        pred_sets = entity_sets(pred)
        types = sorted({t for s in gold_sets + pred_sets for _, _, t in s})
        column = {t: i for i, t in enumerate(types)}
        counts = np.zeros((len(gold_sets), len(types), 3), dtype=np.int64)
        for row, (g, p) in enumerate(zip(gold_sets, pred_sets, strict=True)):
            for which, entities in ((_TP, g & p), (_PRED, p), (_GOLD, g)):
                for _, _, etype in entities:
                    counts[row, column[etype], which] += 1
        return cls(types, counts)

    def scores(self, prefix: str = "") -> dict[str, float]:
        """See :func:`entity_scores`."""
        per_type = self.counts.sum(axis=0)
        rows = [("", per_type.sum(axis=0))] + [(f"{t}/", per_type[i]) for i, t in enumerate(self.types)]
        scores: dict[str, float] = {}
        for key, row in rows:
            precision, recall, f1 = _prf(row)
            scores |= {
                f"{prefix}{key}precision": float(precision),
                f"{prefix}{key}recall": float(recall),
                f"{prefix}{key}f1": float(f1),
                f"{prefix}{key}support": int(row[_GOLD]),
            }
        return scores

    def bootstrap_f1(self, n_resamples: int = 1000, seed: int = 0,
                     confidence: float = 0.95) -> tuple[float, float, float]:
        """See :func:`bootstrap_f1`."""
        if not 0.0 < confidence < 1.0:
            raise XnerError(f"confidence must be between 0 and 1, got {confidence}")
        if n_resamples < 1:
            raise XnerError(f"n_resamples must be at least 1, got {n_resamples}")
        per_sentence = self.counts.sum(axis=1)  # (sentences, 3)
        point = float(_prf(per_sentence.sum(axis=0))[2])
        n = len(per_sentence)
        if n == 0:
            return point, point, point
        rng = np.random.default_rng(seed)
        chunk = max(1, 2_000_000 // n)  # bounds the (chunk, n, 3) gather to a few dozen MB
        f1s = np.concatenate(
            [
                _prf(per_sentence[rng.integers(0, n, size=(min(chunk, n_resamples - done), n))].sum(axis=1))[2]
                for done in range(0, n_resamples, chunk)
            ]
        )
        tail = 100.0 * (1.0 - confidence) / 2.0
        low, high = np.percentile(f1s, [tail, 100.0 - tail])
        return point, float(low), float(high)


def _prf(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 (0-100) from ``(..., 3)`` count arrays; 0 where undefined."""
    tp, predicted, gold = (counts[..., i].astype(float) for i in (_TP, _PRED, _GOLD))
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, 100.0 * tp / predicted, 0.0)
        recall = np.where(gold > 0, 100.0 * tp / gold, 0.0)
        f1 = np.where(predicted + gold > 0, 200.0 * tp / (predicted + gold), 0.0)
    return precision, recall, f1


def entity_scores(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], prefix: str = ""
) -> dict[str, float]:
    """Micro precision/recall/F1 over entities plus the same per entity type (0-100).

    Scores are 0 where undefined (no predictions, no gold entities), like seqeval's
    ``zero_division=0``. The primary metric is ``f1`` (:data:`PRIMARY_METRIC`).

    Args:
        gold: IOB2 tag sequences, one list per sentence.
        pred: predicted IOB2 tag sequences, aligned with ``gold``.
        prefix: put in front of every key, e.g. ``"de/test/"`` for the flat
            ``{"<lang>/<split>/<metric>": value}`` dicts of an evaluation.

    Returns:
        ``{"precision", "recall", "f1", "support", "<TYPE>/precision", "<TYPE>/recall",
        "<TYPE>/f1", "<TYPE>/support"}``; support counts gold entities.

    >>> s = entity_scores([["B-PER", "O", "B-LOC"]], [["B-PER", "O", "B-ORG"]])
    >>> s["f1"], s["PER/f1"], s["LOC/recall"], s["support"]
    (50.0, 100.0, 0.0, 2)
    """
    return EntityCounts.of(gold, pred).scores(prefix)


def bootstrap_f1(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """Micro entity F1 with a percentile bootstrap confidence interval over sentences.

    Test sentences are resampled with replacement (Koehn 2004's paired bootstrap
    unit); each resample's F1 comes from summed per-sentence counts, so 1000
    resamples of a 10,000-sentence test set take well under a second.

    Args:
        gold, pred: aligned IOB2 tag sequences.
        n_resamples: number of bootstrap samples.
        seed: numpy seed; the same seed gives the same interval.
        confidence: coverage of the interval, e.g. 0.95.

    Returns:
        ``(f1, low, high)`` on the 0-100 scale; ``f1`` is the full-sample estimate.

    >>> bootstrap_f1([["B-PER"]] * 4, [["B-PER"]] * 4, n_resamples=10)
    (100.0, 100.0, 100.0)
    """
    return EntityCounts.of(gold, pred).bootstrap_f1(n_resamples, seed, confidence)


def _share(hits: int, total: int) -> float:
    return 100.0 * hits / total if total else 0.0


def _mentions(sentences: Sequence[Sentence]) -> list[tuple[str, tuple[str, ...]]]:
    """Every entity mention as ``(type, tokens)``; unlabeled sentences have none."""
    return [
        (etype, s.tokens[start:end])
        for s in sentences
        if s.tags is not None
        for etype, start, end in entity_spans(s.tags)
    ]


def _tokens_by_role(sentences: Sequence[Sentence]) -> tuple[list[str], list[str]]:
    """All entity tokens and all context (``O``) tokens, as running lists."""
    entity: list[str] = []
    context: list[str] = []
    for s in sentences:
        if s.tags is None:
            continue
        for token, tag in zip(s.tokens, s.tags, strict=True):
            (context if tag == "O" else entity).append(token)
    return entity, context


def entity_overlap(
    source_train: Sequence[Sentence], target_test: Sequence[Sentence]
) -> dict[str, float]:
    """How much of a target test set's entities and context the source training data contains.

    All measures count running occurrences in the target test set (0-100):
    - ``entity_overlap``: mentions whose exact string is an entity mention in the source;
    - ``entity_overlap_casefold``: the same after Unicode casefolding;
    - ``entity_overlap_typed``: mentions whose string *and* type occur in the source
      (the chunks that ``unseen-entity`` replaces);
    - ``entity_token_overlap``: entity tokens seen as entity tokens in the source;
    - ``context_overlap``: ``O`` tokens seen as ``O`` tokens in the source.
    ``target_mentions`` is the number of target mentions the shares are over.

    >>> src = [Sentence(("Paris", "is"), ("B-LOC", "O"))]
    >>> entity_overlap(src, [Sentence(("Paris", "was"), ("B-PER", "O"))])["entity_overlap_typed"]
    0.0
    """
    source_mentions = set(_mentions(source_train))
    strings = {tokens for _, tokens in source_mentions}
    folded = {" ".join(tokens).casefold() for tokens in strings}
    source_entity_tokens, source_context = map(set, _tokens_by_role(source_train))
    target_mentions = _mentions(target_test)
    target_entity_tokens, target_context = _tokens_by_role(target_test)
    n = len(target_mentions)
    return {
        "entity_overlap": _share(sum(t in strings for _, t in target_mentions), n),
        "entity_overlap_casefold": _share(
            sum(" ".join(t).casefold() in folded for _, t in target_mentions), n
        ),
        "entity_overlap_typed": _share(sum(m in source_mentions for m in target_mentions), n),
        "entity_token_overlap": _share(
            sum(t in source_entity_tokens for t in target_entity_tokens), len(target_entity_tokens)
        ),
        "context_overlap": _share(
            sum(t in source_context for t in target_context), len(target_context)
        ),
        "target_mentions": n,
    }


def subword_ids(
    sentences: Sequence[Sentence], tokenizer, normalize: Callable[[str], str] | None
) -> list[int]:
    """The model's subword ids of every word of ``sentences``, in running order."""
    words = [[normalize(t) for t in s.tokens] if normalize else list(s.tokens) for s in sentences if s.tokens]
    if not words:
        return []
    encoded = tokenizer(words, is_split_into_words=True, add_special_tokens=False, verbose=False)
    encoded = encoded["input_ids"]
    return [piece for ids in encoded for piece in ids]


def subword_overlap(
    source_sentences: Sequence[Sentence],
    target_sentences: Sequence[Sentence],
    tokenizer,
    normalize: Callable[[str], str] | None = None,
) -> dict[str, float]:
    """Share of the target's subword pieces that the source text contains (0-100).

    Subwords are what a multilingual encoder actually sees, so this is the
    vocabulary overlap that matters for transfer, whatever the scripts.

    Args:
        source_sentences, target_sentences: tokenized sentences (labels unused).
        tokenizer: a Hugging Face fast tokenizer (the model's own).
        normalize: the model's text normalisation, applied to each word first.

    Returns:
        ``subword_overlap_tokens`` (running target pieces whose id occurs in the
        source) and ``subword_overlap_types`` (distinct target pieces that do).
    """
    source_vocab = set(subword_ids(source_sentences, tokenizer, normalize))
    target = Counter(subword_ids(target_sentences, tokenizer, normalize))
    seen = [piece for piece in target if piece in source_vocab]
    return {
        "subword_overlap_tokens": _share(sum(target[p] for p in seen), sum(target.values())),
        "subword_overlap_types": _share(len(seen), len(target)),
    }


def pair_overlap(
    source_lang: str,
    target_lang: str,
    *,
    source_dataset: str = "wikiann",
    target_dataset: str | None = None,
    data_dir: str | Path | None = None,
    model: str | None = None,
) -> dict[str, float | str]:
    """All overlap measures between a source language's train split and a target's test split.

    Args:
        source_lang, target_lang: language codes, e.g. ``"en"``, ``"de"``.
        source_dataset: the source's dataset; ``target_dataset`` defaults to it.
        data_dir: the local data root (default ``$XNER_DATA_DIR``, else the hub).
        model: a backbone name; adds :func:`subword_overlap` under its tokenizer.

    Returns:
        ``{"source", "target", **entity_overlap(...), **subword_overlap(...)}``.
    """
    from xner.data import load_split

    source = load_split(source_lang, "train", dataset=source_dataset, data_dir=data_dir)
    target = load_split(target_lang, "test", dataset=target_dataset or source_dataset, data_dir=data_dir)
    row: dict[str, float | str] = {"source": source_lang, "target": target_lang}
    row |= entity_overlap(source, target)
    if model is not None:
        from xner.models.backbone import load_backbone

        backbone = load_backbone(model)
        row |= subword_overlap(source, target, backbone.tokenizer, backbone.normalize)
    return row
