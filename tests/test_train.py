"""Distillation: losses, the soft-label cache, nested volumes, thresholds, hard labels, source
mixing and multi-source teachers (Wu et al. 2020), on the synthetic task of ``test_tagger``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_tagger import FAST, LABELS, easy_corpus, train_tagger

from xner.data.corpus import Sentence
from xner.data.sampling import nested_subset, subset_indices
from xner.distillation.losses import LOSSES, CrossEntropyLoss, KLDistillLoss, MSEDistillLoss, make_loss
from xner.distillation.student import DistillConfig, distill, soft_labels
from xner.distillation.weighting import resolve_weighting
from xner.errors import XnerError
from xner.models.tagger import Tagger, TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")

STUDENT = TrainConfig(epochs=3, train_layers=1, **FAST)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XNER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("xner.models.features._STORES", {})
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def teachers():
    """Two teachers of the synthetic task, trained on 'nl' and 'en' sentences."""
    nl = train_tagger(easy_corpus(96, seed=11, lang="nl"))
    en = train_tagger(easy_corpus(96, seed=12, lang="en"), seed=1, epochs=2)
    nl.metadata["name"], en.metadata["name"] = "nl-teacher", "en-teacher"
    return nl, en


@pytest.fixture(scope="module")
def pool():
    """Unlabeled target ('de') sentences."""
    return [s.unlabeled() for s in easy_corpus(40, seed=13, lang="de")]


@pytest.fixture
def asked(teachers, monkeypatch):
    """Counts the sentences each teacher is asked to label."""
    counts = {}
    for teacher in teachers:
        predict = teacher.predict_proba

        def counting(sentences, *args, _predict=predict, _name=teacher.metadata["name"], **kwargs):
            counts[_name] = counts.get(_name, 0) + len(sentences)
            return _predict(sentences, *args, **kwargs)

        monkeypatch.setattr(teacher, "predict_proba", counting)
    return counts


def new_process(monkeypatch):
    monkeypatch.setattr("xner.models.features._STORES", {})


# --- losses ----------------------------------------------------------------------------------------

LOGITS = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
TEACHER = torch.tensor([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0]])


def by_hand_kl(logits, probs, temperature):
    student = torch.log_softmax(logits / temperature, dim=-1)
    terms = [[p * (math.log(p) - s) if p > 0 else 0.0 for p, s in zip(pr.tolist(), st.tolist())]
             for pr, st in zip(probs, student)]
    return sum(map(sum, terms)) / len(probs) * temperature**2


def test_mse_is_the_mean_squared_difference_of_probabilities():
    expected = ((torch.softmax(LOGITS, -1) - TEACHER) ** 2).mean()
    torch.testing.assert_close(MSEDistillLoss()(LOGITS, TEACHER), expected)
    assert float(MSEDistillLoss()(torch.log(TEACHER[:1]), TEACHER[:1])) == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
def test_kl_by_hand_and_zero_when_equal(temperature):
    loss = KLDistillLoss(temperature)
    assert float(loss(LOGITS, TEACHER)) == pytest.approx(by_hand_kl(LOGITS, TEACHER, temperature), rel=1e-5)
    matching = torch.softmax(LOGITS / temperature, dim=-1)
    assert float(loss(LOGITS, matching)) == pytest.approx(0, abs=1e-6)
    assert torch.isfinite(loss(LOGITS, TEACHER))  # zero teacher probabilities are fine


def test_cross_entropy_on_label_ids():
    labels = torch.tensor([0, 1])
    torch.testing.assert_close(CrossEntropyLoss()(LOGITS, labels), F.cross_entropy(LOGITS, labels))


def test_losses_train_the_student_towards_the_teacher():
    logits = torch.zeros(2, 3, requires_grad=True)
    for loss in (MSEDistillLoss(), KLDistillLoss(2.0)):
        value = loss(logits, TEACHER)
        value.backward()
        before = float(value.detach())
        with torch.no_grad():
            after = float(loss(logits - 1.0 * logits.grad, TEACHER))
        logits.grad = None
        assert after < before


@pytest.mark.parametrize(("name", "cls"), [
    ("mse", MSEDistillLoss), ("mse.v1", MSEDistillLoss), ("kl", KLDistillLoss), ("kl.v1", KLDistillLoss),
    ("ce", CrossEntropyLoss), ("ce.v1", CrossEntropyLoss),
])
def test_make_loss_by_name(name, cls):
    loss = make_loss(name, temperature=3.0)
    assert type(loss) is cls and loss.citation
    if cls is KLDistillLoss:
        assert loss.temperature == 3.0


@pytest.mark.parametrize("name", ["l2", "mse.v9", ""])
def test_unknown_loss_lists_the_options(name):
    with pytest.raises(XnerError, match="ce, kl, mse") as err:
        make_loss(name)
    assert "\n" not in str(err.value)
    assert set(LOSSES) == {"mse.v1", "kl.v1", "ce.v1"}


# --- nested pools ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("available", "sizes", "seed"), [(40, (0, 5, 20, 40), 0), (100, (1, 10, 99), 3)])
def test_volumes_are_nested_per_seed(available, sizes, seed):
    subsets = [subset_indices(available, size, seed) for size in sizes]
    for small, large in zip(subsets, subsets[1:]):
        assert large[: len(small)] == small
    assert len(set(subsets[-1])) == sizes[-1]
    assert subset_indices(available, sizes[-1], seed + 1) != subsets[-1] or sizes[-1] == available


# --- soft labels -------------------------------------------------------------------------------------

def test_soft_labels_of_one_teacher_are_its_probabilities(teachers, pool):
    distributions, weights = soft_labels(teachers[:1], pool)
    assert weights.shape == (40, 1) and (weights == 1).all()
    for d, p in zip(distributions, teachers[0].predict_proba(pool)):
        np.testing.assert_allclose(d, p, atol=1e-6)
    flat, _ = soft_labels(teachers[:1], pool, temperature=3.0)
    assert np.mean([d.max(axis=1).mean() for d in flat]) < np.mean([d.max(axis=1).mean() for d in distributions])


def test_soft_labels_are_reused_across_volumes_and_seeds(teachers, pool, asked):
    teacher = teachers[:1]
    for seed in (0, 1):
        for volume in (10, 20, 40):
            soft_labels(teacher, nested_subset(pool, volume, seed))
            if seed == 0:
                assert asked == {"nl-teacher": volume}  # only the sentences new to this volume
    assert asked == {"nl-teacher": 40}  # the second seed asks nothing: every sentence is known


def test_distillation_over_volumes_asks_each_sentence_once(teachers, pool, asked):
    students = [distill(teachers[:1], nested_subset(pool, volume, 0),
                        config=DistillConfig(train=STUDENT)) for volume in (40, 10, 20)]
    assert asked == {"nl-teacher": 40}
    assert [s.metadata["distillation"]["volume"] for s in students] == [40, 10, 20]


def test_the_soft_label_cache_survives_a_new_process(teachers, pool, asked, monkeypatch):
    first, _ = soft_labels(teachers[:1], pool)
    new_process(monkeypatch)
    again, _ = soft_labels(teachers[:1], pool)
    assert asked == {"nl-teacher": 40}
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("corrupt", [
    lambda shard: shard.write_bytes(shard.read_bytes()[:-8]),
    lambda shard: shard.with_suffix(".json").write_text("{"),
    lambda shard: shard.with_suffix(".json").write_text(json.dumps({"version": 2, "keys": [], "starts": [],
                                                                   "checksum": "0"})),
], ids=["truncated", "manifest not json", "wrong checksum"])
def test_corrupt_soft_labels_are_recomputed(teachers, pool, asked, cache, monkeypatch, corrupt):
    first, _ = soft_labels(teachers[:1], pool)
    [shard] = list((cache / "soft-labels").rglob("shard-*.npy"))
    corrupt(shard)
    new_process(monkeypatch)
    again, _ = soft_labels(teachers[:1], pool)
    assert asked == {"nl-teacher": 80}
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


def test_a_retrained_teacher_is_asked_again(teachers, pool, asked):
    soft_labels(teachers[:1], pool[:10])
    other = train_tagger(easy_corpus(30, seed=14, lang="nl"), epochs=1)
    other.metadata["languages"] = ["nl"]
    distributions, _ = soft_labels([other], pool[:10])
    assert asked == {"nl-teacher": 10}
    for d, p in zip(distributions, other.predict_proba(pool[:10])):
        np.testing.assert_allclose(d, p, atol=1e-6)


# --- distill ----------------------------------------------------------------------------------------

def test_distillation_loss_goes_down_and_the_student_learns(teachers, pool):
    student = distill(teachers[:1], pool, config=DistillConfig(train=STUDENT))
    losses = [h["loss"] for h in student.metadata["trainings"][-1]["history"]]
    assert losses[-1] < losses[0] / 2
    test = easy_corpus(40, seed=15, lang="de")
    assert student.evaluate(test)["f1"] > 80
    record = student.metadata["distillation"]
    assert (record["loss"], record["weighting"], record["teachers"]) == ("mse.v1", "uniform.v1", ["nl-teacher"])
    assert (record["volume"], record["kept"], record["teacher_weights_mean"]) == (40, 40, [1.0])
    assert student.base_name == "tiny" and student.n_frozen == 1 and student.labels == LABELS


@pytest.mark.parametrize(("loss", "hard", "recorded"), [("kl", False, "kl.v1"), ("mse", True, "ce.v1")])
def test_kl_and_hard_label_students(teachers, pool, loss, hard, recorded):
    config = DistillConfig(loss=loss, hard=hard, temperature=2.0, train=STUDENT)
    student = distill(teachers[:1], pool, config=config)
    assert student.metadata["distillation"]["loss"] == recorded
    assert student.evaluate(easy_corpus(40, seed=15, lang="de"))["f1"] > 80


def test_threshold_keeps_confident_sentences(teachers, pool):
    distributions, _ = soft_labels(teachers[:1], pool)
    confidence = sorted(float(d.max(axis=1).min()) for d in distributions)
    threshold = confidence[len(confidence) // 2]
    student = distill(teachers[:1], pool, config=DistillConfig(threshold=threshold, train=STUDENT))
    record = student.metadata["distillation"]
    assert record["kept"] == sum(c >= threshold for c in confidence) < 40 and record["threshold"] == threshold
    assert student.metadata["trainings"][-1]["train_sentences"] == record["kept"]


def test_no_sentence_above_the_threshold_is_an_error(teachers, pool):
    with pytest.raises(XnerError, match="no unlabeled sentence passes the confidence threshold 1.0"):
        distill(teachers[:1], pool, config=DistillConfig(threshold=1.0, train=STUDENT))


def test_a_threshold_above_1_fails_when_the_config_is_made():
    with pytest.raises(XnerError, match=r"^DistillConfig: threshold: must be <= 1.0$"):
        DistillConfig(threshold=1.01)


@pytest.mark.parametrize("hard", [False, True])
def test_source_sentences_are_mixed_in(teachers, pool, hard):
    source = easy_corpus(30, seed=16, lang="nl")
    student = distill(teachers[:1], pool[:10], source_train=source,
                      config=DistillConfig(source_mix=5, hard=hard, train=STUDENT))
    assert student.metadata["trainings"][-1]["train_sentences"] == 15
    assert student.metadata["languages"] == ["de", "nl"]


def test_empty_pool_is_an_error(teachers):
    with pytest.raises(XnerError, match="at least one unlabeled sentence"):
        distill(teachers[:1], [], config=DistillConfig(train=STUDENT))


# --- several teachers ----------------------------------------------------------------------------------

def test_uniform_weights_average_the_teachers(teachers, pool):
    distributions, weights = soft_labels(teachers, pool)
    np.testing.assert_array_equal(weights, np.full((40, 2), 0.5))
    nl, en = (t.predict_proba(pool) for t in teachers)
    for d, a, b in zip(distributions, nl, en):
        np.testing.assert_allclose(d, (a + b) / 2, atol=1e-6)
    student = distill(teachers, pool[:10], config=DistillConfig(train=STUDENT))
    record = student.metadata["distillation"]
    assert record["teacher_weights_mean"] == [0.5, 0.5] and record["teachers"] == ["nl-teacher", "en-teacher"]


def test_given_weights_are_normalised(teachers, pool):
    weighting = resolve_weighting("given", by_language={"nl": 3, "en": 1})
    distributions, weights = soft_labels(teachers, pool, weighting=weighting)
    np.testing.assert_allclose(weights, np.tile([0.75, 0.25], (40, 1)))
    nl, en = (t.predict_proba(pool) for t in teachers)
    for d, a, b in zip(distributions, nl, en):
        np.testing.assert_allclose(d, 0.75 * a + 0.25 * b, atol=1e-6)
    student = distill(teachers, pool[:10], weighting=weighting, config=DistillConfig(train=STUDENT))
    assert student.metadata["distillation"]["teacher_weights_mean"] == [0.75, 0.25]
    assert student.metadata["distillation"]["weighting"] == "given.v1"
    other, _ = soft_labels(teachers, pool, weighting=resolve_weighting("given", by_language={"nl": 1, "en": 3}))
    for d, a, b in zip(other, nl, en):  # the cache holds each teacher's labels, not a mix
        np.testing.assert_allclose(d, 0.25 * a + 0.75 * b, atol=1e-6)


def test_teachers_must_share_labels(teachers, pool):
    other = Tagger.create("tiny", ("O", "B-PER", "I-PER"))
    with pytest.raises(XnerError, match="teachers disagree on labels"):
        soft_labels([teachers[0], other], pool)


def test_empty_sentences_have_empty_soft_labels(teachers):
    distributions, _ = soft_labels(teachers[:1], [Sentence(()), Sentence(("Lima",))])
    assert distributions[0].shape == (0, len(LABELS)) and distributions[1].shape == (1, len(LABELS))
