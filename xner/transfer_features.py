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
from collections.abc import Callable, Mapping, Sequence

import pandas as pd

from xner.data.corpus import Sentence
from xner.languages import get_language
from xner.metrics import subword_overlap
from xner.teacher_signals import entity_rate

__all__ = ["DATA_FEATURES", "pair_features", "word_overlap"]

DATA_FEATURES: tuple[str, ...] = (
    "uriel_genetic", "uriel_geographic", "uriel_syntactic", "uriel_phonological", "uriel_inventory",
    "uriel_featural", "word_overlap", "subword_overlap", "source_train_log10", "source_entity_density",
    "same_script",
)
"""The label-free, model-free features of a pair, in a fixed order (the ranker's inputs)."""


def word_overlap(source: Sequence[Sentence], target: Sequence[Sentence]) -> float:
    """Share (0-100) of the target's running words whose casefolded form the source has."""
    vocabulary = {token.casefold() for sentence in source for token in sentence.tokens}
    words = [token.casefold() for sentence in target for token in sentence.tokens]
    return 100.0 * sum(word in vocabulary for word in words) / len(words) if words else float("nan")


def _same_script(source: str, target: str) -> float:
    return float(get_language(source).script == get_language(target).script)


def pair_features(
    sources: Mapping[str, Sequence[Sentence]],
    target: str,
    target_text: Sequence[Sentence],
    *,
    tokenizer=None,
    normalize: Callable[[str], str] | None = None,
) -> pd.DataFrame:
    """One row of :data:`DATA_FEATURES` per candidate source for one target.

    Args:
        sources: each candidate source's code -> its labelled train sentences.
        target: the target's code.
        target_text: unlabeled target sentences (labels, if any, are not used).
        tokenizer, normalize: the model's fast tokenizer and normalisation for
            ``subword_overlap`` (NaN without a tokenizer).

    Returns:
        Columns ``source, target`` and :data:`DATA_FEATURES`.
    """
    from xner.analysis import URIEL_FEATURES, uriel_distances

    distances = uriel_distances([(source, target) for source in sources], kinds=tuple(URIEL_FEATURES))
    rows = []
    for source, sentences in sources.items():
        subwords = (subword_overlap(sentences, target_text, tokenizer, normalize)["subword_overlap_tokens"]
                    if tokenizer is not None else float("nan"))
        rows.append({
            "source": source,
            "target": target,
            "word_overlap": word_overlap(sentences, target_text),
            "subword_overlap": subwords,
            "source_train_log10": math.log10(max(len(sentences), 1)),
            "source_entity_density": entity_rate([s.tags for s in sentences if s.tags is not None]),
            "same_script": _same_script(source, target),
        })
    table = pd.DataFrame(rows).merge(distances, on=["source", "target"], how="left")
    return table[["source", "target", *DATA_FEATURES]]
