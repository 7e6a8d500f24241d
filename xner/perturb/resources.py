"""What perturbations look up, built once per (training language L1, target language L2):
L1 chunks, vocabularies, name inventories, stopwords and word neighbours."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xner.data.corpus import Sentence, entity_spans
from xner.perturb.neighbours import ContextNeighbours

__all__ = ["DEFAULT_STOPWORDS", "Mention", "PerturbationResources", "build_resources", "is_word"]

Mention = tuple[str, ...]

DEFAULT_STOPWORDS = 100
"""How many of a language's most frequent training words count as its stopwords."""


def is_word(token: str) -> bool:
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
    counts = Counter(t.casefold() for s in sentences for t in s.tokens if is_word(t))
    return frozenset(w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n])



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
            vocabulary=tuple(sorted(w for w in target_context if is_word(w))),
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
            and is_word(token)
            and token.casefold() not in self.stopwords
        )




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
