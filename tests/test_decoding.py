"""Decodings of word distributions into IOB2 tags: the three readings, and that evaluations
score every one of them on the same predictions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from xner.data.corpus import Sentence
from xner.decoding import DECODINGS, allowed_transitions, decode, decoding_name, repair_iob2
from xner.errors import XnerError
from xner.evaluation import evaluate_tagger

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def _probs(rows: list[list[float]]) -> np.ndarray:
    return np.array(rows, dtype=np.float32)


def _valid(tags: list[str]) -> bool:
    return repair_iob2(tags) == tags


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # O then a confident I-PER: repair starts a PER chunk, strict keeps the raw tag,
        # viterbi picks the best valid path (B-PER beats O here: 0.4 vs 0.1)
        ([[0.9, 0.0, 0.0, 0.1, 0.0], [0.1, 0.4, 0.5, 0.0, 0.0]],
         {"repair": ["O", "B-PER"], "strict": ["O", "I-PER"], "viterbi": ["O", "B-PER"]}),
        # B-LOC I-PER: viterbi continues the LOC chunk when I-LOC is the better valid choice
        ([[0.0, 0.1, 0.0, 0.9, 0.0], [0.05, 0.05, 0.5, 0.0, 0.4]],
         {"repair": ["B-LOC", "B-PER"], "strict": ["B-LOC", "I-PER"], "viterbi": ["B-LOC", "I-LOC"]}),
        # already valid: every decoding agrees with the argmax
        ([[0.1, 0.8, 0.1, 0.0, 0.0], [0.1, 0.0, 0.9, 0.0, 0.0], [0.9, 0.0, 0.1, 0.0, 0.0]],
         {name: ["B-PER", "I-PER", "O"] for name in ("repair", "strict", "viterbi")}),
        ([], {name: [] for name in ("repair", "strict", "viterbi")}),
    ],
)
def test_each_decoding_reads_invalid_argmax_its_own_way(rows, expected):
    probs = _probs(rows).reshape(len(rows), len(LABELS))
    assert {name: decode(probs, LABELS, name) for name in expected} == expected


def test_viterbi_is_the_best_valid_path_by_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(30):
        probs = rng.dirichlet(np.ones(len(LABELS)) * 0.5, size=4)
        paths = [list(p) for p in itertools.product(LABELS, repeat=4) if _valid(list(p))]
        score = lambda path: sum(np.log(probs[t, LABELS.index(tag)]) for t, tag in enumerate(path))  # noqa: E731
        best = max(paths, key=score)
        found = decode(probs, LABELS, "viterbi")
        assert _valid(found) and score(found) == pytest.approx(score(best))


def test_transition_table_is_iob2():
    start, step = allowed_transitions(LABELS)
    assert start.tolist() == [True, True, False, True, False]
    assert step[LABELS.index("O"), LABELS.index("I-PER")] == False  # noqa: E712
    assert step[LABELS.index("B-LOC"), LABELS.index("I-PER")] == False  # noqa: E712
    assert step[LABELS.index("I-PER"), LABELS.index("I-PER")] == True  # noqa: E712


def test_names_are_versioned_and_unknown_ones_list_the_valid():
    assert decoding_name("viterbi") == "viterbi.v1" and decoding_name("strict.v1") == "strict.v1"
    assert set(DECODINGS) == {"repair.v1", "strict.v1", "viterbi.v1"}
    with pytest.raises(XnerError, match="unknown decoding 'crf'; valid: repair, strict, viterbi"):
        decoding_name("crf")


class _FixedTagger:
    """A predictor whose word distributions are given (what evaluation needs of a tagger)."""

    labels = LABELS

    def __init__(self, probs: list[np.ndarray]) -> None:
        self.probs = probs

    def predict_proba(self, sentences):
        return self.probs


def test_evaluation_scores_every_decoding_on_the_same_distributions():
    sentences = [Sentence(("Ada", "Lovelace", "spoke"), ("B-PER", "I-PER", "O")),
                 Sentence(("in", "Paris"), ("O", "B-LOC"))]
    probs = [_probs([[0.2, 0.3, 0.5, 0, 0], [0.1, 0, 0.9, 0, 0], [1, 0, 0, 0, 0]]),  # I-PER I-PER O
             _probs([[1, 0, 0, 0, 0], [0.15, 0, 0, 0.35, 0.5]])]                    # O I-LOC
    result = evaluate_tagger(_FixedTagger(probs), sentences, n_resamples=50, decoding="strict")
    # repair and viterbi recover both chunks; strict drops both (an I- after O or at the start)
    assert (result["f1_repair"], result["f1_viterbi"], result["f1_strict"]) == (100.0, 100.0, 0.0)
    assert result["decoding"] == "strict.v1" and result["f1"] == result["f1_strict"]
    assert result["f1_repair_lo"] <= result["f1_repair"] <= result["f1_repair_hi"]
