"""Label-preserving test-set perturbations: pure, seeded functions over labelled sentences.

Two families (definitions in DESIGN.md, "Perturbations"):

- the reference study's overlap removers (Manafi & Krishnaswamy 2024), relative to the
  training language L1 of the model under test: ``unseen-entity`` (P1) replaces every
  test entity chunk that is an L1 training chunk of the same type by a same-type name
  L1 never saw; ``unseen-context`` (P2) replaces every context word shared with L1's
  training context words by the most similar target word outside L1's vocabulary;
  ``unseen-both`` (P3) does both;
- generic ones at a rate p of eligible units (Srinivasan & Vajjala 2023 style):
  ``mask-entity``, ``random-context``, ``swap-entity``.

Kinds live in a registry under versioned names (``"unseen-entity.v1"``); a bare name
means its latest version, and ``a+b`` applies ``a`` then ``b``. Every perturbation
returns the new sentence and :class:`Edit` records that replay it exactly
(:func:`apply_edits`). Randomness comes only from the ``rng`` argument;
:func:`perturb_corpus` seeds one generator per sentence from ``(seed, index)``, so the
output does not depend on order or batching. The rate applies to every kind: each
eligible unit (token or mention) is edited with probability ``rate``; 1 edits all of
them (the reference study's setting) and 0 is the identity.

What perturbations look up (L1 chunks, vocabularies, name inventories, stopwords, word
neighbours) is built once per (training language, target language) into
:class:`PerturbationResources`.

>>> res = PerturbationResources.from_sentences([Sentence(("in", "Paris"), ("O", "B-LOC"))])
>>> perturb(Sentence(("Rome", "!"), ("B-LOC", "O")), "mask-entity", np.random.default_rng(0), res)[0]
Sentence(tokens=('<mask>', '!'), tags=('B-LOC', 'O'), lang=None)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xner.data.corpus import Sentence, entity_spans
from xner.errors import XnerError
from xner.io import atomic_write
from xner.registry import resolve_name
from xner.models.word_vectors import nearest_words

__all__ = [
    "PERTURBATIONS",
    "ContextNeighbours",
    "Edit",
    "Perturbation",
    "PerturbationResources",
    "apply_edits",
    "build_resources",
    "get_perturbation",
    "list_perturbations",
    "perturb",
    "perturb_corpus",
    "perturb_file",
]

Mention = tuple[str, ...]
Replacement = tuple[int, int, Mention, tuple[str, ...]]
"""``(start, end, new_tokens, new_tags)`` over the input sentence, end exclusive."""

DEFAULT_STOPWORDS = 100
"""How many of a language's most frequent training words count as its stopwords."""


@dataclass(frozen=True, slots=True)
class Edit:
    """One replacement made by a perturbation step.

    Edits are sequential patches: ``start`` indexes the sentence with all earlier edits
    of the list applied, so for a single (non-``+``) kind it is the position of
    ``new_tokens`` in the output. ``old_*`` were replaced by ``new_*`` (lengths may
    differ when a mention is swapped for a longer or shorter one).
    """

    kind: str
    start: int
    old_tokens: tuple[str, ...]
    new_tokens: tuple[str, ...]
    old_tags: tuple[str, ...]
    new_tags: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types (tuples as lists), one line of an ``*.edits.jsonl`` file."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> "Edit":
        """Inverse of :meth:`to_json`; other keys of the record (``sentence``) are ignored."""
        sequences = (tuple(record[k]) for k in ("old_tokens", "new_tokens", "old_tags", "new_tags"))
        return cls(record["kind"], record["start"], *sequences)


def _replay(sentence: Sentence, edits: Iterable[Edit]) -> tuple[Sentence, list[bool]]:
    """Apply edits in order; also mark which output tokens some edit wrote."""
    tokens, tags = list(sentence.tokens), list(sentence.tags or ())
    touched = [False] * len(tokens)
    for e in edits:
        end = e.start + len(e.old_tokens)
        if tuple(tokens[e.start : end]) != e.old_tokens or tuple(tags[e.start : end]) != e.old_tags:
            raise XnerError(f"edit at token {e.start} does not match the sentence: {e.to_json()}")
        tokens[e.start : end] = e.new_tokens
        tags[e.start : end] = e.new_tags
        touched[e.start : end] = [True] * len(e.new_tokens)
    return Sentence(tuple(tokens), tuple(tags), sentence.lang), touched


def _edit_counts(edited: Sentence, touched: Sequence[bool]) -> Counter:
    """Tokens some edit wrote, mentions containing one, and whether the sentence changed."""
    return Counter(
        sentences_edited=int(any(touched)),
        tokens_edited=sum(touched),
        entities_edited=sum(any(touched[a:b]) for _, a, b in entity_spans(edited.tags)),
    )


def edit_summary(edited: Sequence[Sentence], edits_path: str | Path) -> dict[str, int]:
    """What a perturbation changed, from its output and its ``*.edits.jsonl`` alone.

    Args:
        edited: the perturbed sentences, in file order.
        edits_path: the edit records :func:`perturb_file` wrote beside them.
    """
    by_sentence: dict[int, list[Edit]] = {}
    with open(edits_path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                record = json.loads(line)
                by_sentence.setdefault(int(record["sentence"]), []).append(Edit.from_json(record))
            except (ValueError, KeyError, TypeError) as err:
                raise XnerError(f"{edits_path}:{number}: not an edit record ({err})") from None
    totals: Counter = Counter(sentences_edited=0, tokens_edited=0, entities_edited=0)
    for index, edits in by_sentence.items():
        if index >= len(edited):
            raise XnerError(f"{edits_path}: edit of sentence {index} but the file has {len(edited)} sentences")
        sentence = edited[index]
        length = len(sentence) - sum(len(e.new_tokens) - len(e.old_tokens) for e in edits)
        touched = [False] * length
        for e in edits:
            touched[e.start : e.start + len(e.old_tokens)] = [True] * len(e.new_tokens)
        totals.update(_edit_counts(sentence, touched))
    return dict(totals)


def apply_edits(sentence: Sentence, edits: Iterable[Edit]) -> Sentence:
    """Replay edit records on the original sentence; raises if an edit does not fit.

    >>> s = Sentence(("a", "b"), ("O", "O"))
    >>> apply_edits(s, [Edit("x", 1, ("b",), ("c", "d"), ("O",), ("O", "O"))]).tokens
    ('a', 'c', 'd')
    """
    return _replay(sentence, edits)[0]


def _iob(etype: str, length: int) -> tuple[str, ...]:
    return (f"B-{etype}",) + (f"I-{etype}",) * (length - 1)


def _is_word(token: str) -> bool:
    """A token with at least one letter: punctuation and numbers are not context words."""
    return any(c.isalpha() for c in token)


def _mentions_by_type(sentences: Iterable[Sentence]) -> dict[str, tuple[Mention, ...]]:
    """Distinct entity mentions per type, sorted, so that draws are reproducible."""
    found: dict[str, set[Mention]] = {}
    for s in sentences:
        for etype, start, end in entity_spans(s.tags or ()):
            found.setdefault(etype, set()).add(s.tokens[start:end])
    return {etype: tuple(sorted(mentions)) for etype, mentions in sorted(found.items())}


def _context_words(sentences: Iterable[Sentence]) -> set[str]:
    return {t for s in sentences for t, tag in zip(s.tokens, s.tags or (), strict=True) if tag == "O"}


def _frequent_words(sentences: Iterable[Sentence], n: int) -> frozenset[str]:
    """The ``n`` most frequent casefolded words: a data-driven stopword list for any language."""
    counts = Counter(t.casefold() for s in sentences for t in s.tokens if _is_word(t))
    return frozenset(w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n])


class ContextNeighbours:
    """For each context word, the most similar candidate word by the model's word vectors.

    Lookups are computed in vectorised batches and kept in a JSON file under
    ``cache_dir``, named by the language pair, the model's fingerprint and a hash of the
    candidate list; later runs of the same model and pair read the dict.

    Args:
        load_vectors: returns the model's :class:`~xner.models.word_vectors.WordVectors`
            (called once, on the first lookup).
        candidates: the words a replacement may be (sorted for determinism).
        cache_dir: where to keep the replacement lists; ``None`` keeps them in memory.
        pair: ``"<L1>-<L2>"``, part of the cache file name.
        fingerprint: the model's fingerprint if known without loading it (then a cached
            list is read without loading the vectors at all).
    """

    def __init__(
        self,
        load_vectors: Callable[[], Any],
        candidates: Sequence[str],
        cache_dir: Path | None = None,
        pair: str = "",
        fingerprint: str | None = None,
    ) -> None:
        self._load_vectors = load_vectors
        self.candidates = tuple(sorted(set(candidates)))
        self._cache_dir = cache_dir
        self._pair = pair
        self._fingerprint = fingerprint
        self._vectors: Any = None
        self._candidate_matrix: np.ndarray | None = None
        self._table: dict[str, str | None] | None = None

    @property
    def vectors(self) -> Any:
        """The model's word vectors, loaded on first use."""
        if self._vectors is None:
            self._vectors = self._load_vectors()
        return self._vectors

    @property
    def cache_path(self) -> Path | None:
        if self._cache_dir is None:
            return None
        model = self._fingerprint or self.vectors.fingerprint
        words = hashlib.blake2b("\n".join(self.candidates).encode(), digest_size=8).hexdigest()
        return self._cache_dir / f"unseen-context-{self._pair}-{model[:16]}-{words}.json"

    def _read(self) -> dict[str, str | None]:
        path = self.cache_path
        return json.loads(path.read_text(encoding="utf-8")) if path is not None and path.exists() else {}

    def _save(self) -> None:
        path = self.cache_path
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self._table, ensure_ascii=False, sort_keys=True), encoding="utf-8")
        tmp.replace(path)

    def lookup(self, words: Iterable[str]) -> dict[str, str | None]:
        """Replacement of each word (``None`` if it has no vector or there are no candidates)."""
        wanted = set(words)
        if self._table is None:
            self._table = self._read()
        missing = sorted(wanted - self._table.keys())
        if missing:
            if self._candidate_matrix is None:
                self._candidate_matrix = self.vectors(list(self.candidates))
            index, _ = nearest_words(self.vectors(missing), self._candidate_matrix)
            self._table |= {w: self.candidates[i] if i >= 0 else None for w, i in zip(missing, index)}
            self._save()
        return {w: self._table[w] for w in wanted}


@dataclass(frozen=True)
class PerturbationResources:
    """What perturbations look up, built once per (training language L1, target language L2).

    Attributes:
        mask_token: what ``mask-entity`` writes (the model's mask token).
        vocabulary: L2 training context words (with a letter) for ``random-context``.
        names: same-type mention inventory for ``swap-entity`` (L2's train split or another
            language's).
        source_mentions: L1 training ``(type, tokens)`` chunks; what ``unseen-entity`` removes.
        unseen_names: ``names`` minus every L1 training chunk string, per type.
        source_context: L1 training context (``O``) words.
        stopwords: L2's most frequent training words (casefolded), never ``unseen-context``
            targets.
        neighbours: most similar L2 word of a context word among L2's training context words
            that are letters only, not stopwords and absent from L1's training tokens
            (``unseen-context``).
        train_lang: L1, for messages.
    """

    mask_token: str = "<mask>"
    vocabulary: tuple[str, ...] = ()
    names: Mapping[str, tuple[Mention, ...]] = field(default_factory=dict)
    source_mentions: frozenset[tuple[str, Mention]] = frozenset()
    unseen_names: Mapping[str, tuple[Mention, ...]] = field(default_factory=dict)
    source_context: frozenset[str] = frozenset()
    stopwords: frozenset[str] = frozenset()
    neighbours: ContextNeighbours | None = None
    train_lang: str | None = None

    @classmethod
    def from_sentences(
        cls,
        target_train: Sequence[Sentence],
        *,
        source_train: Sequence[Sentence] | None = None,
        names_train: Sequence[Sentence] | None = None,
        load_vectors: Callable[[], Any] | None = None,
        model_fingerprint: str | None = None,
        cache_dir: Path | None = None,
        mask_token: str = "<mask>",
        stopword_count: int = DEFAULT_STOPWORDS,
        train_lang: str | None = None,
    ) -> "PerturbationResources":
        """Build resources from in-memory training data.

        Args:
            target_train: L2's labelled training sentences (vocabulary, stopwords, names).
            source_train: L1's labelled training sentences (needed by the ``unseen-*`` kinds).
            names_train: where mention inventories come from; default ``target_train``.
            load_vectors: returns the model's word vectors (needed by ``unseen-context``).
            model_fingerprint: the model's identity, if known before loading its vectors.
            cache_dir: where ``unseen-context`` keeps its replacement lists.
            mask_token: what ``mask-entity`` writes.
            stopword_count: how many most frequent L2 words are stopwords.
            train_lang: L1's code, for cache names and messages.
        """
        target_context = _context_words(target_train)
        stopwords = _frequent_words(target_train, stopword_count)
        names = _mentions_by_type(names_train if names_train is not None else target_train)
        source = {
            "source_mentions": frozenset(),
            "unseen_names": {},
            "source_context": frozenset(),
            "neighbours": None,
        }
        if source_train is not None:
            mentions = _mentions_by_type(source_train)
            seen = {m for inventory in mentions.values() for m in inventory}
            source_vocab = {t for s in source_train for t in s.tokens}
            source["source_mentions"] = frozenset((t, m) for t, ms in mentions.items() for m in ms)
            source["unseen_names"] = {
                t: tuple(m for m in ms if m not in seen) for t, ms in names.items()
            }
            source["source_context"] = frozenset(_context_words(source_train))
            if load_vectors is not None:
                candidates = [
                    w
                    for w in target_context - source_vocab
                    if w.isalpha() and len(w) > 1 and w.casefold() not in stopwords
                ]
                lang = target_train[0].lang if target_train else None
                pair = f"{train_lang or 'src'}-{lang or 'tgt'}"
                source["neighbours"] = ContextNeighbours(
                    load_vectors, candidates, cache_dir, pair, model_fingerprint
                )
        return cls(
            mask_token=mask_token,
            vocabulary=tuple(sorted(w for w in target_context if _is_word(w))),
            names=names,
            stopwords=stopwords,
            train_lang=train_lang,
            **source,
        )

    def shares_context(self, token: str) -> bool:
        """Whether ``unseen-context`` must replace this ``O`` token."""
        return (
            token in self.source_context
            and len(token) > 1
            and _is_word(token)
            and token.casefold() not in self.stopwords
        )


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
    units = _pick(rng, [i for i, tag in enumerate(s.tags) if tag == "O" and _is_word(s.tokens[i])], rate)
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
        _, touched = _replay(s, sentence_edits)
        out.append(new)
        edits.append(sentence_edits)
        summary["tokens"] += len(s)
        summary["entities"] += len(entity_spans(s.tags))
        summary.update(_edit_counts(new, touched))
    counts = {k: summary[k] for k in _SUMMARY_COUNTS}
    head = {"kind": perturbation.name, "rate": rate, "seed": seed, "sentences": len(sentences)}
    return out, edits, head | counts


def build_resources(
    target_lang: str,
    *,
    train_lang: str | None = None,
    names_from: str | None = None,
    dataset: str = "wikiann",
    train_dataset: str | None = None,
    names_dataset: str | None = None,
    data_dir: str | Path | None = None,
    model: str | None = None,
    stopword_count: int = DEFAULT_STOPWORDS,
    train_sentences: Sequence[Sentence] | None = None,
) -> PerturbationResources:
    """Build the resources of a (training language, target language) pair from train splits.

    Args:
        target_lang: L2, the language of the sentences to perturb.
        train_lang: L1, the training language of the model under test (``unseen-*`` kinds).
        names_from: language whose train split gives the name inventories (default L2).
        dataset: L2's dataset; ``train_dataset`` and ``names_dataset`` default to it.
        data_dir: local data root (default ``$XNER_DATA_DIR``, else the hub).
        model: backbone (:func:`~xner.models.backbone.load_backbone` name) whose mask token
            and word vectors are used; without it the mask token is ``<mask>`` and
            ``unseen-context`` is unavailable. Its weights load only when ``unseen-context``
            first needs a word that its cached replacement list lacks.
        stopword_count: how many most frequent L2 words count as stopwords.
        train_sentences: the sentences the model under test was actually trained on (e.g.
            a 2,000-sentence subset of L1's train split); default: all of L1's train split.
            "Unseen" then means unseen by that model.
    """
    key = _resources_key(
        dict(target_lang=target_lang, train_lang=train_lang, names_from=names_from, dataset=dataset,
             train_dataset=train_dataset, names_dataset=names_dataset, data_dir=data_dir, model=model,
             stopword_count=stopword_count, data_env=os.environ.get("XNER_DATA_DIR")), train_sentences)
    if key in _RESOURCES:
        return _RESOURCES[key]
    from xner.data import load_split
    from xner.paths import cache_dir

    def train(lang: str | None, name: str | None) -> list[Sentence] | None:
        return load_split(lang, "train", dataset=name or dataset, data_dir=data_dir) if lang else None

    backbone = None
    if model is not None:
        from xner.models.backbone import load_backbone

        backbone = load_backbone(model)
    resources = PerturbationResources.from_sentences(
        train(target_lang, dataset),
        source_train=train_sentences if train_sentences is not None else train(train_lang, train_dataset),
        names_train=train(names_from, names_dataset),
        load_vectors=(lambda: _vectors(backbone)) if backbone is not None else None,
        model_fingerprint=backbone.fingerprint if backbone is not None else None,
        cache_dir=cache_dir() / "perturb",
        mask_token=(backbone.tokenizer.mask_token if backbone is not None else None) or "<mask>",
        stopword_count=stopword_count,
        train_lang=train_lang,
    )
    _RESOURCES[key] = resources
    while len(_RESOURCES) > _RESOURCES_KEPT:
        _RESOURCES.pop(next(iter(_RESOURCES)))
    return resources


_RESOURCES: dict[str, PerturbationResources] = {}
_RESOURCES_KEPT = 8  # a study evaluates many models against the same few (L1, L2) pairs


def _resources_key(arguments: dict, train_sentences: Sequence[Sentence] | None) -> str:
    """What :func:`build_resources` depends on, including the content of ``train_sentences``
    and where ``$XNER_CACHE`` points (the word-vector neighbours live there)."""
    from xner.paths import cache_dir

    digest = hashlib.blake2b(b"all" if train_sentences is None else b"given", digest_size=16)
    for sentence in train_sentences or ():
        digest.update("\x1f".join(sentence.tokens + tuple(sentence.tags or ())).encode())
        digest.update(b"\x1e")
    plain = {k: str(v) for k, v in sorted(arguments.items())}
    return json.dumps([plain, digest.hexdigest(), str(cache_dir())])


def _vectors(backbone):
    from xner.models.word_vectors import WordVectors

    return WordVectors.from_backbone(backbone)


_SPLIT_REF = re.compile(r"^(?P<lang>[A-Za-z][A-Za-z-]*):(?P<split>train|dev|test)$")
"""``LANG:SPLIT`` input references, e.g. ``de:test``."""


def _read_input(source: str, lang: str | None, dataset: str, data_dir: str | Path | None):
    """A file (any :mod:`xner.data.formats` format) or a ``LANG:SPLIT`` of ``dataset``."""
    from xner.data import read_split
    from xner.data.formats import parse_conll

    if Path(source).is_file():
        return parse_conll(source, lang=lang)
    if match := _SPLIT_REF.match(source):
        return read_split(match["lang"], match["split"], dataset=dataset, data_dir=data_dir)
    raise XnerError(f"{source}: no such file, and not LANG:SPLIT (e.g. de:test)")


def perturb_file(
    source: str,
    out: str | Path,
    kind: str,
    rate: float = 1.0,
    seed: int = 0,
    *,
    lang: str | None = None,
    dataset: str = "wikiann",
    data_dir: str | Path | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Perturb a file or split and write the result plus its edit records.

    Writes ``out`` in the input's line format and ``<out>.edits.jsonl`` (one edit per line,
    with the index of its sentence).

    Args:
        source: a token-per-line file or ``LANG:SPLIT`` of ``dataset`` (e.g. ``de:test``).
        out: the file to write.
        kind, rate, seed: as :func:`perturb_corpus`.
        lang: the input's language when the file does not say (needed for its resources).
        dataset, data_dir: where ``LANG:SPLIT`` and the training splits are read from.
        options: the other keywords of :func:`build_resources` (``train_lang``,
            ``names_from``, ``train_dataset``, ``names_dataset``, ``model``, ...).

    Returns:
        The :func:`perturb_corpus` summary plus ``input``, ``output`` and ``edits`` paths.
    """
    from xner.data import FORMATS, write_conll

    report = _read_input(source, lang, dataset, data_dir)
    target = lang or report.sentences[0].lang
    if not target:
        raise XnerError(f"{source}: the file does not say its language; pass --lang")
    resources = build_resources(target, dataset=dataset, data_dir=data_dir, **options)
    sentences, edits, summary = perturb_corpus(report.sentences, kind, rate, seed, resources)
    records = [json.dumps({"sentence": index, **edit.to_json()}, ensure_ascii=False) + "\n"
               for index, sentence_edits in enumerate(edits) for edit in sentence_edits]
    edits_path = Path(out).with_name(Path(out).name + ".edits.jsonl")
    atomic_write(edits_path, "".join(records))
    try:
        out = write_conll(sentences, out, format=report.format if report.format in FORMATS else "conll")
    except XnerError:
        edits_path.unlink()  # both files or neither
        raise
    return {**summary, "input": source, "output": str(out), "edits": str(edits_path)}
