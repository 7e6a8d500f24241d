"""Evaluate a tagger on a test set, clean and perturbed, with label sets reconciled explicitly.

A model and a test set may disagree on entity types (a MasakhaNER model knows DATE,
WikiANN does not). Evaluation is then on the *shared* types: gold tags of types the
model lacks and predicted tags of types the data lacks become ``O``, and the result
says so (``label_map``) — never silently.

Every evaluation returns flat ``{metric: value}`` rows, F1 on a 0-100
scale with a bootstrap 95% CI over test sentences. The model's word distributions are
computed once and decoded every way :mod:`xner.decoding` knows: ``f1`` (and P/R, per type)
follow the chosen ``decoding``, and ``f1_<decoding>`` with its CI is there for each of them,
so that a choice of decoding can be judged on the same predictions.
"""

from __future__ import annotations

from collections.abc import Sequence

from xner.data.corpus import Sentence
from xner.data.labels import describe_label_map, entity_types, label_map_between, map_tags
from xner.decoding import DECODINGS, DEFAULT_DECODING, decode, decoding_name
from xner.metrics import EntityCounts, entity_sets

__all__ = ["GoldSide", "evaluate_perturbed", "evaluate_tagger", "score_predictions"]


class GoldSide:
    """The gold half of a scoring, computed once for any number of predictions (the decodings
    of one evaluation): the label maps between the model's and the data's types, the mapped
    gold tags and their entities.

    Without ``data_labels`` the data's types are read off the gold tags; a model type
    absent from them may just be rare in this sample, so its predictions are kept
    (they count as false positives), and only gold types the model lacks are mapped.
    """

    def __init__(self, gold: Sequence[Sequence[str]], model_labels: Sequence[str],
                 data_labels: Sequence[str] | None = None) -> None:
        declared = data_labels is not None
        data_labels = data_labels or sorted({t for tags in gold for t in tags})
        self.gold_map = label_map_between(data_labels, model_labels)
        self.pred_map = label_map_between(model_labels, data_labels) if declared else {}
        self.gold = [list(map_tags(g, self.gold_map)) if self.gold_map else list(g) for g in gold]
        self.entities = entity_sets(self.gold)
        self.shared = sorted(t for t in entity_types(model_labels) if t not in self.pred_map)

    def score(self, pred: Sequence[Sequence[str]], *, n_resamples: int = 1000, seed: int = 0) -> dict:
        """Entity P/R/F1 (micro and per type) + bootstrap CI of F1 of ``pred`` on the shared types."""
        pred = [list(map_tags(p, self.pred_map)) if self.pred_map else list(p) for p in pred]
        counts = EntityCounts.of(self.gold, pred, self.entities)
        _, low, high = counts.bootstrap_f1(n_resamples, seed)
        return {
            **counts.scores(),
            "f1_lo": low,
            "f1_hi": high,
            "types": ",".join(self.shared),
            "label_map": "; ".join(
                f"{side}: {describe_label_map(m)}" for side, m in (("gold", self.gold_map), ("predicted", self.pred_map))
                if m
            ) or "none",
        }


def score_predictions(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    model_labels: Sequence[str],
    data_labels: Sequence[str] | None = None,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict:
    """Entity P/R/F1 (micro and per type) + bootstrap CI of F1 on the shared entity types
    (label maps as :class:`GoldSide` explains)."""
    return GoldSide(gold, model_labels, data_labels).score(pred, n_resamples=n_resamples, seed=seed)


def evaluate_tagger(tagger, sentences: Sequence[Sentence], data_labels: Sequence[str] | None = None,
                    *, decoding: str = DEFAULT_DECODING, n_resamples: int = 1000, seed: int = 0,
                    precision: str | None = None) -> dict:
    """Score a tagger on labelled sentences under every decoding (see :func:`score_predictions`),
    ``precision``: its inference precision (``None``: the predictor's default).

    Returns:
        The scores of ``decoding`` plus its versioned name (``decoding``) and, for every
        decoding ``d`` (``repair``, ``strict``, ``viterbi``), ``f1_d``, ``f1_d_lo``, ``f1_d_hi``.
    """
    chosen = decoding_name(decoding)
    gold = GoldSide([s.tags for s in sentences], tagger.labels, data_labels)
    probs = tagger.predict_proba(sentences) if precision is None else tagger.predict_proba(sentences, precision=precision)
    result: dict = {}
    for name in DECODINGS:
        scores = gold.score([decode(p, tagger.labels, name) for p in probs], n_resamples=n_resamples, seed=seed)
        short = name.split(".")[0]
        result |= {f"f1_{short}": scores["f1"], f"f1_{short}_lo": scores["f1_lo"], f"f1_{short}_hi": scores["f1_hi"]}
        if name == chosen:
            chosen_scores = scores
    return {**chosen_scores, "decoding": chosen, **result}


def evaluate_perturbed(
    tagger,
    test: Sequence[Sentence],
    kinds: Sequence[str],
    resources,
    *,
    data_labels: Sequence[str] | None = None,
    decoding: str = DEFAULT_DECODING,
    rate: float = 1.0,
    seed: int = 0,
    n_resamples: int = 1000,
    precision: str | None = None,
) -> list[dict]:
    """One row for the clean test set and one per perturbation, with the drop in F1.

    Args:
        tagger: the model under test.
        test: the clean labelled test sentences.
        kinds: perturbation names (:func:`xner.perturb.list_perturbations`, ``+``-combinations).
        resources: :class:`xner.perturb.PerturbationResources` built for the model's
            training language and the test language.
        decoding: how word distributions become tags for ``f1`` (:mod:`xner.decoding`).
        rate: share of eligible tokens/mentions the generic perturbations edit.
        precision: the tagger's inference precision (``None``: its default).
    """
    from xner.perturb import perturb_corpus

    clean = {"perturbation": "clean", **evaluate_tagger(tagger, test, data_labels, decoding=decoding,
                                                       n_resamples=n_resamples, seed=seed, precision=precision)}
    rows = [clean]
    for kind in kinds:
        perturbed, _, summary = perturb_corpus(test, kind, rate=rate, seed=seed, resources=resources)
        scores = evaluate_tagger(tagger, perturbed, data_labels, decoding=decoding, n_resamples=n_resamples, seed=seed,
                                 precision=precision)
        rows.append({
            "perturbation": kind,
            **scores,
            "drop": clean["f1"] - scores["f1"],
            "tokens_edited": summary["tokens_edited"],
            "entities_edited": summary["entities_edited"],
            "sentences_edited": summary["sentences_edited"],
        })
    return rows
