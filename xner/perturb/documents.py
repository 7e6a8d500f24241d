"""The reference study's document-level perturbations P4 and P5, and the overlap they remove.

Manafi & Krishnaswamy (2024) perturb the test text of their section-title task relative to the
training language L1 of the model under test:

- ``nearest-unseen-word`` (P4): every word of the target test text that also occurs in L1's
  training text is replaced by the target word most similar to it that L1's training text does
  not have. Similarity is the cosine between static word vectors taken from the model's own
  input embeddings: a word's vector is the mean of the input-embedding rows of its subword
  pieces (unknown-token pieces left out; :mod:`xner.models.word_vectors`), no forward pass;
- ``random-unseen-word`` (P5): the same words, each replaced by a word drawn uniformly (seeded)
  from the same candidates.

Words are maximal runs of letters, marks and digits (the ``regex`` module's ``\\p{L}\\p{M}\\p{N}``);
punctuation and spacing are kept as they are. The candidates are the target language's words
(from its train and dev splits; dev only for the six MasakhaNEWS languages without a train
split here) that are letters only, longer than one character, absent from L1's training
text and not among the target's 100 most frequent words; those frequent words are never
replaced either (as in ``unseen-context``, :mod:`xner.perturb`, whose machinery runs both kinds
on a document's words). They are registered with the NER kinds (:mod:`xner.perturb.kinds`). Only the text is perturbed, never the candidate headlines or labels.

The overlap they remove: :func:`word_overlap` is the share of the target test text's word
tokens (with a letter) that occur in L1's training text; evaluation reports it before and after.

>>> round(word_overlap([Document("the cat sat")], [Document("a cat")]), 2)
33.33
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import regex

from xner.data.corpus import Sentence
from xner.data.news import ChoiceItem, Document
from xner.errors import XnerError
from xner.perturb.kinds import (
    PERTURBATIONS, Perturbation, _pick, _prepare_neighbours, _shared_context, _Step, _unseen_context,
    get_perturbation, perturb_corpus,
)
from xner.perturb.resources import PerturbationResources

__all__ = ["DOCUMENT_PERTURBATIONS", "document_resources", "perturb_documents", "word_overlap", "words"]

_WORD = regex.compile(r"[\p{L}\p{M}\p{N}]+")
_SPLIT = regex.compile(r"([\p{L}\p{M}\p{N}]+)")


def words(text: str) -> list[str]:
    """The words of a text (see the module docstring)."""
    return _WORD.findall(text)


def _random_unseen(s: Sentence, rng: np.random.Generator, res: PerturbationResources, rate: float) -> list:
    """P5: each shared word -> a uniform draw from the unseen-word candidates."""
    units = _pick(rng, _shared_context(s, res), rate)
    pool = res.neighbours.candidates
    drawn = rng.integers(len(pool), size=len(units)) if pool else []
    return [(i, i + 1, (pool[j],), ("O",)) for i, j in zip(units, drawn)]


DOCUMENT_PERTURBATIONS = (
    Perturbation("nearest-unseen-word.v1",
                 "P4: words of the text seen in L1 training text -> nearest target word L1 lacks",
                 (_Step("nearest-unseen-word.v1", _unseen_context, ("source_context", "neighbours"),
                        _prepare_neighbours),)),
    Perturbation("random-unseen-word.v1",
                 "P5: words of the text seen in L1 training text -> random target word L1 lacks",
                 (_Step("random-unseen-word.v1", _random_unseen, ("source_context", "neighbours")),)),
)
PERTURBATIONS.update({p.name: p for p in DOCUMENT_PERTURBATIONS})


def _as_sentence(text: str, lang: str | None) -> Sentence:
    tokens = tuple(words(text))
    return Sentence(tokens, ("O",) * len(tokens), lang)


def document_resources(target_text: Sequence[Document], source_text: Sequence[Document], *,
                       load_vectors: Callable[[], Any], model_fingerprint: str | None = None,
                       cache_dir: Path | None = None, train_lang: str | None = None) -> PerturbationResources:
    """Resources of P4/P5 for one (L1 training text, target language) pair.

    Args:
        target_text: the target language's documents the candidates come from (train and dev).
        source_text: the documents the model under test was trained on.
        load_vectors: returns the model's word vectors (:class:`~xner.models.word_vectors.WordVectors`).
    """
    target = [_as_sentence(d.text, d.lang) for d in target_text]
    source = [_as_sentence(d.text, d.lang) for d in source_text]
    return PerturbationResources.from_sentences(target, source_train=source, load_vectors=load_vectors,
                                                model_fingerprint=model_fingerprint, cache_dir=cache_dir,
                                                train_lang=train_lang)


def perturb_documents(examples: Sequence[Document | ChoiceItem], kind: str, resources: PerturbationResources,
                      seed: int = 0) -> tuple[list[Document | ChoiceItem], dict]:
    """Perturb the text of every example (documents or questions), one seeded generator each.

    Returns:
        The new examples and a summary: ``kind`` (versioned), ``words``, ``words_edited``,
        ``documents_edited``.

    Raises:
        XnerError: a kind that is not a document perturbation, or missing resources.
    """
    names = {p.name for p in DOCUMENT_PERTURBATIONS}
    if get_perturbation(kind).name not in names:
        raise XnerError(f"{kind!r} is not a document perturbation; valid: {', '.join(sorted(names))}")
    pieces = [_SPLIT.split(e.text) for e in examples]  # separators at even, words at odd positions
    sentences = [Sentence(tuple(p[1::2]), ("O",) * (len(p) // 2), e.lang) for p, e in zip(pieces, examples)]
    new, _, summary = perturb_corpus(sentences, kind, 1.0, seed, resources)
    out = []
    for example, parts, sentence in zip(examples, pieces, new):
        parts = list(parts)
        parts[1::2] = sentence.tokens
        out.append(replace(example, text="".join(parts)))
    return out, {"kind": summary["kind"], "words": summary["tokens"], "words_edited": summary["tokens_edited"],
                 "documents_edited": summary["sentences_edited"]}


def word_overlap(target: Sequence[Document | ChoiceItem], source: Sequence[Document]) -> float:
    """Share (0-100) of the target texts' word tokens with a letter that occur in the source texts."""
    seen = {w for d in source for w in words(d.text)}
    tokens = [w for e in target for w in words(e.text) if any(c.isalpha() for c in w)]
    if not tokens:
        raise XnerError("no words in the target texts to measure overlap on")
    return 100.0 * sum(w in seen for w in tokens) / len(tokens)
