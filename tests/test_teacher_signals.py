"""Label-free signals of a teacher on unlabeled target text, and agreement between teachers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xner.data.corpus import Sentence
from xner.teacher_signals import agreement, encode_tags, entity_rate, unlabeled_signals

LABELS = ["O", "B-PER", "I-PER"]


def test_signals_of_known_distributions():
    probs = [np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]]), np.array([[0.0, 0.5, 0.5]])]
    taught = [Sentence(("a", "b", "c", "d"), ("B-PER", "O", "O", "O"))]
    signals = unlabeled_signals(probs, LABELS, taught)
    assert signals["teacher_confidence"] == pytest.approx((1.0 + 0.5 + 0.5) / 3)
    assert signals["teacher_entropy"] == pytest.approx(2 * math.log(2) / 3, abs=1e-9)
    # O, O (a tie goes to the first label); a sentence cannot start inside an entity: B-PER
    assert signals["teacher_entity_rate"] == pytest.approx(100 / 3)
    assert signals["source_entity_rate"] == 25.0 and signals["entity_rate_ratio"] == pytest.approx(4 / 3)
    assert signals["tags"] == "00|1"


def test_without_training_data_the_ratio_is_unknown():
    signals = unlabeled_signals([np.array([[0.2, 0.8, 0.0]])], LABELS)
    assert math.isnan(signals["entity_rate_ratio"]) and signals["teacher_entity_rate"] == 100.0


@pytest.mark.parametrize(("tags", "expected"), [
    ({"a": "12|0", "b": "12|0"}, {"a": 100.0, "b": 100.0}),
    ({"a": "12|0", "b": "10|0"}, {"a": 0.0, "b": 0.0}),           # PER(0,2) vs PER(0,1): no chunk in common
    ({"a": "1010", "b": "1000"}, {"a": pytest.approx(200 / 3), "b": pytest.approx(200 / 3)}),
    ({"a": "00", "b": "00"}, {"a": 100.0, "b": 100.0}),             # nobody finds anything: they agree
])
def test_agreement_is_mean_entity_f1_against_the_other_teachers(tags, expected):
    assert agreement(tags, LABELS) == expected


def test_a_lone_teacher_has_no_agreement():
    assert math.isnan(agreement({"a": "10"}, LABELS)["a"])


def test_tags_round_trip_through_the_compact_string():
    assert encode_tags([["O", "B-PER"], ["I-PER"]], LABELS) == "01|2"
    assert entity_rate([["O", "B-PER"], ["I-PER"]]) == pytest.approx(200 / 3)
