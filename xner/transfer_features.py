"""Features of a (source, target) language pair that need no target labels: what a ranker of
teacher languages learns from (LangRank, Lin et al. 2019: URIEL distances and dataset
statistics; here with the word and subword overlap that NER transfer is known to follow).

Per pair:

- ``uriel_<kind>``: URIEL distances (genetic, geographic, syntactic, phonological, inventory,
  featural; :data:`xner.analysis.URIEL_FEATURES`);
- ``word_overlap``: share of the target's running unlabeled words (casefolded) that occur in
  the source's labelled train text, 0-100;
- ``subword_overlap``: the same for the model's subword pieces (what the encoder sees);
- ``source_train_log10``: log10 of the source's labelled train sentences;
- ``source_entity_density``: share of the source's train words inside an entity, 0-100;
- ``same_script``: 1 when both are written in the same script (ISO 15924), else 0.

>>> word_overlap([Sentence(("Kano", "ya"))], [Sentence(("kano", "ni", "ya"))])
66.66666666666667
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from xner.data.corpus import Sentence
from xner.languages import get_language
from xner.metrics import subword_ids
from xner.teacher_signals import entity_rate

__all__ = ["DATA_FEATURES", "SourceProfile", "pair_features", "word_overlap"]

DATA_FEATURES: tuple[str, ...] = (
    "uriel_genetic", "uriel_geographic", "uriel_syntactic", "uriel_phonological", "uriel_inventory",
    "uriel_featural", "word_overlap", "subword_overlap", "source_train_log10", "source_entity_density",
    "same_script",
)
"""The label-free, model-free features of a pair, in a fixed order (the ranker's inputs)."""


def word_overlap(source: Sequence[Sentence], target: Sequence[Sentence]) -> float:
    """Share (0-100) of the target's running words whose casefolded form the source has."""
    return _running_share(_words(source), _words(target))


def _words(sentences: Sequence[Sentence]) -> list[str]:
    return [token.casefold() for sentence in sentences for token in sentence.tokens]


def _running_share(vocabulary: Collection, running: Sequence) -> float:
    vocabulary = vocabulary if isinstance(vocabulary, (set, frozenset)) else set(vocabulary)
    return 100.0 * sum(item in vocabulary for item in running) / len(running) if running else float("nan")


@dataclass(frozen=True)
class SourceProfile:
    """What the pair features need of a source's labelled train text: its size, entity density,
    word and subword vocabularies. A candidate's text is read and tokenized once into this
    (``xner recommend`` keeps it on disk), not once per target.

    >>> SourceProfile.of([Sentence(("Kano", "ya"), ("B-LOC", "O"))]).entity_density
    50.0
    """

    sentences: int
    entity_density: float
    words: frozenset[str]
    subwords: frozenset[int] | None = None

    @classmethod
    def of(cls, sentences: Sequence[Sentence], tokenizer=None,
           normalize: Callable[[str], str] | None = None) -> "SourceProfile":
        """Profile labelled sentences; subwords only with the model's ``tokenizer``."""
        subwords = frozenset(subword_ids(sentences, tokenizer, normalize)) if tokenizer is not None else None
        return cls(len(sentences), entity_rate([s.tags for s in sentences if s.tags is not None]),
                   frozenset(_words(sentences)), subwords)

    def to_json(self) -> dict:
        return {"sentences": self.sentences, "entity_density": self.entity_density, "words": sorted(self.words),
                "subwords": None if self.subwords is None else sorted(self.subwords)}

    @classmethod
    def from_json(cls, data: Mapping) -> "SourceProfile":
        subwords = data["subwords"]
        return cls(int(data["sentences"]), float(data["entity_density"]), frozenset(data["words"]),
                   None if subwords is None else frozenset(subwords))


def _same_script(source: str, target: str) -> float:
    return float(get_language(source).script == get_language(target).script)


def pair_features(
    sources: Mapping[str, SourceProfile],
    target: str,
    target_text: Sequence[Sentence],
    *,
    tokenizer=None,
    normalize: Callable[[str], str] | None = None,
) -> pd.DataFrame:
    """One row of :data:`DATA_FEATURES` per candidate source for one target.

    Args:
        sources: each candidate source's code -> the profile of its labelled train text
            (:meth:`SourceProfile.of`, with the same tokenizer).
        target: the target's code.
        target_text: unlabeled target sentences (labels, if any, are not used).
        tokenizer, normalize: the model's fast tokenizer and normalisation for
            ``subword_overlap`` (NaN without a tokenizer).

    Returns:
        Columns ``source, target`` and :data:`DATA_FEATURES`.
    """
    from xner.analysis import URIEL_FEATURES, uriel_distances

    distances = uriel_distances([(source, target) for source in sources], kinds=tuple(URIEL_FEATURES))
    target_words = _words(target_text)
    target_subwords = subword_ids(target_text, tokenizer, normalize) if tokenizer is not None else None
    rows = []
    for source, profile in sources.items():
        subwords = (_running_share(profile.subwords, target_subwords)
                    if target_subwords is not None and profile.subwords is not None else float("nan"))
        rows.append({
            "source": source,
            "target": target,
            "word_overlap": _running_share(profile.words, target_words),
            "subword_overlap": subwords,
            "source_train_log10": math.log10(max(profile.sentences, 1)),
            "source_entity_density": profile.entity_density,
            "same_script": _same_script(source, target),
        })
    table = pd.DataFrame(rows).merge(distances, on=["source", "target"], how="left")
    return table[["source", "target", *DATA_FEATURES]]
