"""The perturbation kinds and their registry: pure, seeded functions over labelled sentences.

Each kind is a list of steps ``(sentence, rng, resources, rate) -> replacements``; the
registry holds them under versioned names (``"unseen-entity.v1"``), a bare name means the
latest version and ``a+b`` applies ``a`` then ``b``.

>>> res = PerturbationResources.from_sentences([Sentence(("in", "Paris"), ("O", "B-LOC"))])
>>> perturb(Sentence(("Rome", "!"), ("B-LOC", "O")), "mask-entity", np.random.default_rng(0), res)[0]
Sentence(tokens=('<mask>', '!'), tags=('B-LOC', 'O'), lang=None)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xner.data.corpus import Sentence, entity_spans
from xner.data.edits import Edit, edit_counts, replay
from xner.errors import XnerError
from xner.perturb.resources import Mention, PerturbationResources, is_word
from xner.registry import resolve_name

__all__ = ["PERTURBATIONS", "Perturbation", "get_perturbation", "list_perturbations", "perturb", "perturb_corpus"]

Replacement = tuple[int, int, Mention, tuple[str, ...]]
"""``(start, end, new_tokens, new_tags)`` over the input sentence, end exclusive."""


def _iob(etype: str, length: int) -> tuple[str, ...]:
    return (f"B-{etype}",) + (f"I-{etype}",) * (length - 1)


# --- the perturbation steps: (sentence, rng, resources, rate) -> replacements ---------------


def _pick(rng: np.random.Generator, units: Sequence, rate: float) -> list:
    """Each unit independently with probability ``rate`` (one draw per unit, always)."""
    keep = rng.random(len(units)) < rate
    return [u for u, k in zip(units, keep) if k]


def _draw_other(rng: np.random.Generator, pool: Sequence[Mention], current: Mention) -> Mention | None:
    """A uniform draw from the pool that is not ``current``; ``None`` if nothing else is there."""
    if all(m == current for m in pool):
        return None
    while (drawn := pool[int(rng.integers(len(pool)))]) == current:
        pass
    return drawn


def _mask_entity(s: Sentence, rng, res: PerturbationResources, rate: float) -> list[Replacement]:
    units = [i for i, tag in enumerate(s.tags) if tag != "O" and s.tokens[i] != res.mask_token]
    return [(i, i + 1, (res.mask_token,), (s.tags[i],)) for i in _pick(rng, units, rate)]


def _random_context(s: Sentence, rng, res: PerturbationResources, rate: float) -> list[Replacement]:
    units = _pick(rng, [i for i, tag in enumerate(s.tags) if tag == "O" and is_word(s.tokens[i])], rate)
    words = [res.vocabulary[j] for j in rng.integers(len(res.vocabulary), size=len(units))]
    return [(i, i + 1, (w,), ("O",)) for i, w in zip(units, words) if w != s.tokens[i]]


def _swap_entity(s: Sentence, rng, res: PerturbationResources, rate: float) -> list[Replacement]:
    out = []
    for etype, start, end in _pick(rng, entity_spans(s.tags), rate):
        new = _draw_other(rng, res.names.get(etype, ()), s.tokens[start:end])
        if new is not None:
            out.append((start, end, new, _iob(etype, len(new))))
    return out


def _unseen_entity(s: Sentence, rng, res: PerturbationResources, rate: float) -> list[Replacement]:
    shared = [
        (etype, start, end)
        for etype, start, end in entity_spans(s.tags)
        if (etype, s.tokens[start:end]) in res.source_mentions
    ]
    out = []
    for etype, start, end in _pick(rng, shared, rate):
        pool = res.unseen_names.get(etype, ())
        if not pool:
            raise XnerError(
                f"unseen-entity: the name inventory has no {etype} mention unseen in "
                f"{res.train_lang or 'the training language'}'s training data"
            )
        new = pool[int(rng.integers(len(pool)))]
        out.append((start, end, new, _iob(etype, len(new))))
    return out


def _shared_context(s: Sentence, res: PerturbationResources) -> list[int]:
    """Positions of the context words ``unseen-context`` must replace."""
    return [i for i, tag in enumerate(s.tags) if tag == "O" and res.shares_context(s.tokens[i])]


def _unseen_context(s: Sentence, rng, res: PerturbationResources, rate: float) -> list[Replacement]:
    units = _pick(rng, _shared_context(s, res), rate)
    table = res.neighbours.lookup(s.tokens[i] for i in units)
    return [(i, i + 1, (table[s.tokens[i]],), ("O",)) for i in units if table[s.tokens[i]] is not None]


def _prepare_neighbours(sentences: Sequence[Sentence], res: PerturbationResources) -> None:
    """Look up all of a corpus's shared context words in one batch before the per-sentence loop."""
    res.neighbours.lookup(s.tokens[i] for s in sentences for i in _shared_context(s, res))


# --- registry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Step:
    name: str
    replace: Callable[[Sentence, np.random.Generator, PerturbationResources, float], list[Replacement]]
    needs: tuple[str, ...] = ()
    prepare: Callable[[Sequence[Sentence], PerturbationResources], None] | None = None


@dataclass(frozen=True)
class Perturbation:
    """A registered perturbation: a versioned name and the steps it applies in order."""

    name: str
    description: str
    steps: tuple[_Step, ...]

    @property
    def needs(self) -> tuple[str, ...]:
        """Resource fields that must be non-empty for this perturbation."""
        return tuple(dict.fromkeys(n for step in self.steps for n in step.needs))


_NEEDS_HINT = {
    "vocabulary": "the target language's training data",
    "names": "a name inventory (the target's or --names-from language's training data)",
    "source_mentions": "the training language's training data (--train-lang)",
    "source_context": "the training language's training data (--train-lang)",
    "neighbours": "the training language (--train-lang) and a model's word vectors (--model)",
}
"""What to provide when a resource a perturbation needs is missing."""

_P1 = _Step("unseen-entity.v1", _unseen_entity, ("source_mentions",))
_P2 = _Step("unseen-context.v1", _unseen_context, ("source_context", "neighbours"), _prepare_neighbours)

PERTURBATIONS: dict[str, Perturbation] = {
    p.name: p
    for p in [
        Perturbation("unseen-entity.v1", "P1: L1-seen entity chunks -> same-type names unseen in L1", (_P1,)),
        Perturbation("unseen-context.v1", "P2: L1-seen context words -> nearest L2 word not in L1", (_P2,)),
        Perturbation("unseen-both.v1", "P3: P1 then P2", (_P1, _P2)),
        Perturbation(
            "mask-entity.v1", "entity tokens -> the mask token", (_Step("mask-entity.v1", _mask_entity),)
        ),
        Perturbation(
            "random-context.v1",
            "context words -> random training context words of the language",
            (_Step("random-context.v1", _random_context, ("vocabulary",)),),
        ),
        Perturbation(
            "swap-entity.v1",
            "mentions -> another same-type mention from a name inventory",
            (_Step("swap-entity.v1", _swap_entity, ("names",)),),
        ),
    ]
}
"""Every perturbation under its versioned name; old versions stay so old results keep their meaning."""


def list_perturbations() -> list[str]:
    """Versioned names of all registered perturbations."""
    return sorted(PERTURBATIONS)


def _resolve(part: str) -> Perturbation:
    return PERTURBATIONS[resolve_name("perturbation", part, PERTURBATIONS, list_versions=True)]


def get_perturbation(kind: str) -> Perturbation:
    """Resolve ``"name"``, ``"name.vN"`` or a ``+``-combination into one perturbation.

    >>> get_perturbation("mask-entity+random-context").name
    'mask-entity.v1+random-context.v1'
    """
    parts = [_resolve(part.strip()) for part in kind.split("+")]
    if len(parts) == 1:
        return parts[0]
    return Perturbation(
        "+".join(p.name for p in parts),
        "; then ".join(p.description for p in parts),
        tuple(step for p in parts for step in p.steps),
    )


def _check(perturbation: Perturbation, resources: PerturbationResources, rate: float) -> None:
    if not 0.0 <= rate <= 1.0:
        raise XnerError(f"perturbation rate must be between 0 and 1, got {rate}")
    for need in perturbation.needs:
        if not getattr(resources, need):
            raise XnerError(f"perturbation {perturbation.name!r} needs {_NEEDS_HINT[need]}")


def _apply(sentence: Sentence, replacements: list[Replacement], kind: str) -> tuple[Sentence, list[Edit]]:
    """Build the output of non-overlapping replacements and their edits (output positions)."""
    tokens: list[str] = []
    tags: list[str] = []
    edits = []
    done = 0
    for start, end, new_tokens, new_tags in sorted(replacements):
        tokens += sentence.tokens[done:start]
        tags += sentence.tags[done:start]
        old = (sentence.tokens[start:end], sentence.tags[start:end])
        edits.append(Edit(kind, len(tokens), old[0], tuple(new_tokens), old[1], tuple(new_tags)))
        tokens += new_tokens
        tags += new_tags
        done = end
    tokens += sentence.tokens[done:]
    tags += sentence.tags[done:]
    return Sentence(tuple(tokens), tuple(tags), sentence.lang), edits


def _run(
    sentence: Sentence,
    perturbation: Perturbation,
    rng: np.random.Generator,
    resources: PerturbationResources,
    rate: float,
) -> tuple[Sentence, list[Edit]]:
    edits: list[Edit] = []
    for step in perturbation.steps:
        sentence, step_edits = _apply(sentence, step.replace(sentence, rng, resources, rate), step.name)
        edits += step_edits
    return sentence, edits


def perturb(
    sentence: Sentence,
    kind: str,
    rng: np.random.Generator,
    resources: PerturbationResources,
    rate: float = 1.0,
) -> tuple[Sentence, list[Edit]]:
    """Perturb one labelled sentence.

    Args:
        sentence: a labelled sentence with valid IOB2 tags.
        kind: a registered name (bare or versioned) or a ``+``-combination.
        rng: the only source of randomness.
        resources: see :class:`PerturbationResources`.
        rate: probability that each eligible token or mention is edited.

    Returns:
        The new sentence (tags rebuilt as valid IOB2) and its edit records.
    """
    if sentence.tags is None:
        raise XnerError("perturbations need labelled sentences; this one has no tags")
    perturbation = get_perturbation(kind)
    _check(perturbation, resources, rate)
    return _run(sentence, perturbation, rng, resources, rate)


_SUMMARY_COUNTS = ("tokens", "entities", "sentences_edited", "tokens_edited", "entities_edited")


def perturb_corpus(
    sentences: Sequence[Sentence],
    kind: str,
    rate: float = 1.0,
    seed: int = 0,
    resources: PerturbationResources | None = None,
) -> tuple[list[Sentence], list[list[Edit]], dict[str, Any]]:
    """Perturb every sentence with its own generator ``default_rng([seed, index])``.

    Returns:
        The new sentences, each one's edits, and a summary: ``kind`` (versioned), ``rate``,
        ``seed``, ``sentences``/``tokens``/``entities`` of the input, and
        ``sentences_edited``, ``tokens_edited`` (output tokens written by an edit) and
        ``entities_edited`` (output mentions containing such a token).
    """
    resources = resources or PerturbationResources()
    perturbation = get_perturbation(kind)
    _check(perturbation, resources, rate)
    for index, s in enumerate(sentences):
        if s.tags is None:
            raise XnerError(f"sentence {index}: perturbations need labelled sentences")
    for step in perturbation.steps:
        if step.prepare is not None:
            step.prepare(sentences, resources)
    out, edits = [], []
    summary = Counter()
    for index, s in enumerate(sentences):
        new, sentence_edits = _run(s, perturbation, np.random.default_rng([seed, index]), resources, rate)
        _, touched = replay(s, sentence_edits)
        out.append(new)
        edits.append(sentence_edits)
        summary["tokens"] += len(s)
        summary["entities"] += len(entity_spans(s.tags))
        summary.update(edit_counts(new, touched))
    counts = {k: summary[k] for k in _SUMMARY_COUNTS}
    head = {"kind": perturbation.name, "rate": rate, "seed": seed, "sentences": len(sentences)}
    return out, edits, head | counts
