"""The unlabeled-volume sweep: one row per (volume, seed, test set), volume 0 = the teacher,
volumes beyond the pool reported as skipped, gains over the teacher, perturbed test sets; its
runs are study runs, kept in a store and never redone."""

from __future__ import annotations

import pytest
from test_tagger import FAST

from xner.distillation.ensemble import Ensemble
from xner.distillation.student import DistillConfig
from xner.distillation.weighting import resolve_weighting
from xner.models.tagger import Tagger, TrainConfig
from xner.perturb import PerturbationResources, perturb_corpus
from xner.pipeline import DataSpec
from xner.study import ResultStore
from xner.sweep import sweep_table, volume_sweep

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = DistillConfig(train=TrainConfig(epochs=1, train_layers=1, **FAST))
SCORES = ("precision", "recall", "f1", "f1_lo", "f1_hi")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XNER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("xner.models.features._STORES", {})


@pytest.fixture
def data(data_root):
    return DataSpec("wikiann", data_root)


@pytest.fixture
def teacher(data, tmp_path):
    """A tiny teacher trained on the fixture root's Dutch, saved as `xner train` does."""
    tagger = Tagger.create("tiny", data.labels, seed=0)
    tagger.fit(data.split("nl", "train"), config=TrainConfig(epochs=2, **FAST))
    tagger.save(tmp_path / "nl-teacher")
    return tmp_path / "nl-teacher"


def run(teachers, data, volumes, seeds=(0,), **options):
    return volume_sweep(teachers, "de", volumes, seeds, data=data, config=CONFIG, n_resamples=50, **options)


def test_rows_for_every_volume_and_seed(teacher, data):
    seen = []
    rows = run([teacher], data, [0, 10, 40, 1000], seeds=(0, 1), on_row=seen.append)
    assert seen == rows
    assert [(r["volume"], r["seed"]) for r in rows] == [(v, s) for s in (0, 1) for v in (0, 10, 40, 1000)]
    for row in rows:
        assert (row["target"], row["genus"], row["family"], row["source"], row["dataset"]) == (
            "de", "Germanic", "Indo-European", "nl", "wikiann")
        assert (row["perturbation"], row["weighting"], row["kind"]) == ("clean", "uniform.v1", "student")
        assert row["loss"] == "mse.v1"  # the loss is part of the result: MSE and KL students differ
    teacher_f1 = rows[0]["f1"]
    for row in rows:
        if row["volume"] == 1000:  # more than the 40 sentences of the pool: reported, not capped
            assert row["status"] == "skipped: volume 1000 > 40 unlabeled sentences available"
            assert not set(SCORES) & set(row)
            continue
        assert row["status"] == "done" and row["teacher_f1"] == teacher_f1
        assert row["gain"] == pytest.approx(row["f1"] - teacher_f1)
        assert row["f1_lo"] <= row["f1"] <= row["f1_hi"] and row["seconds"] >= 0
        if row["volume"] == 0:  # the teacher itself, zero-shot
            assert row["gain"] == 0 and row["f1"] == teacher_f1
    assert teacher_f1 == pytest.approx(Tagger.load(teacher).evaluate(data.split("de", "test"))["f1"])


def test_its_runs_are_kept_and_a_rerun_redoes_none(teacher, data, tmp_path):
    first = run([teacher], data, [0, 20], models_dir=tmp_path / "sweep")
    with ResultStore(tmp_path / "sweep" / "study.sqlite") as store:
        done = {r.id: r.finished for r in store.records("done")}
    assert sorted(r.spec.kind for r in ResultStore(tmp_path / "sweep" / "study.sqlite").records()) == [
        "distill", "distill", "evaluate", "evaluate", "teacher"]
    again = run([teacher], data, [0, 20], models_dir=tmp_path / "sweep")
    with ResultStore(tmp_path / "sweep" / "study.sqlite") as store:
        assert {r.id: r.finished for r in store.records("done")} == done
    assert [{k: r[k] for k in SCORES} for r in first] == [{k: r[k] for k in SCORES} for r in again]
    fresh = run([teacher], data, [0, 20], models_dir=tmp_path / "elsewhere")  # same numbers from scratch
    assert [{k: r[k] for k in SCORES} for r in first] == [{k: r[k] for k in SCORES} for r in fresh]


def test_a_raw_pool_file_extends_the_train_split(teacher, data, tmp_path, make_corpus):
    path = tmp_path / "pool.txt"
    path.write_text("".join(" ".join(s.tokens) + "\n" for s in make_corpus(15, "de", seed=3)))
    rows = run([teacher], data, [0, 50, 56], pool=["train", str(path)], models_dir=tmp_path / "sweep")
    assert [r["status"] for r in rows] == ["done", "done", "skipped: volume 56 > 55 unlabeled sentences available"]
    assert len({r["pool"] for r in rows}) == 1 and rows[0]["pool"] != run([teacher], data, [0])[0]["pool"]
    with ResultStore(tmp_path / "sweep" / "study.sqlite") as store:
        [student] = [r for r in store.records("done") if r.kind == "distill" and r.spec.params["volume"] == 50]
    assert student.metrics["pool_sentences"] == 55 and student.metrics["pool"] == rows[0]["pool"]
    assert student.spec.params["pool"][0] == "train" and list(student.spec.files.values()) == [str(path)]


def test_perturbed_test_sets_add_rows(teacher, data):
    test = data.split("de", "test")
    rows = run([teacher], data, [0, 20, 1000], perturbations=["mask-entity"])
    assert [(r["volume"], r["perturbation"]) for r in rows] == [
        (v, p) for v in (0, 20, 1000) for p in ("clean", "mask-entity")]
    teacher_rows = {r["perturbation"]: r for r in rows if r["volume"] == 0}
    model = Tagger.load(teacher)
    assert teacher_rows["clean"]["f1"] == pytest.approx(model.evaluate(test)["f1"])
    masked = perturb_corpus(test, "mask-entity", resources=PerturbationResources(mask_token=model.backbone.tokenizer.mask_token))[0]
    assert teacher_rows["mask-entity"]["f1"] == pytest.approx(model.evaluate(masked)["f1"])
    for row in rows:
        if row["status"] == "done":  # each test set's gain is over the teacher on that test set
            assert row["teacher_f1"] == teacher_rows[row["perturbation"]]["f1"]


def test_test_limit(teacher, data):
    [row] = run([teacher], data, [0], test_limit=5)
    assert row["f1"] == pytest.approx(Tagger.load(teacher).evaluate(data.split("de", "test")[:5])["f1"])


def test_multi_source_sweep(teacher, data, tmp_path):
    other = Tagger.create("tiny", data.labels, seed=1)
    other.fit(data.split("de", "dev"), config=TrainConfig(epochs=1, **FAST))
    other.metadata["languages"] = ["en"]
    other.save(tmp_path / "en-teacher", compact=True)
    rows = run([teacher, tmp_path / "en-teacher"], data, [0, 10])
    assert [(r["source"], r["weighting"]) for r in rows] == [("nl+en", "uniform.v1")] * 2
    ensemble = Ensemble([Tagger.load(teacher), Tagger.load(tmp_path / "en-teacher")], resolve_weighting("uniform"))
    test = data.split("de", "test")
    from xner.metrics import entity_scores

    assert rows[0]["f1"] == pytest.approx(entity_scores([list(s.tags) for s in test], ensemble.predict(test))["f1"])


def test_sweep_table_has_a_stable_column_order(teacher, data):
    table = sweep_table(run([teacher], data, [0, 1000]))
    assert list(table.columns) == ["kind", "model", "target", "genus", "family", "source", "dataset", "pool", "weighting", "loss", "volume", "seed",
                                   "perturbation", "precision", "recall", "f1", "f1_lo", "f1_hi",
                                   "teacher_f1", "gain", "seconds", "status"]
    assert table["status"].tolist() == ["done", "skipped: volume 1000 > 40 unlabeled sentences available"]
    assert table["f1"].isna().tolist() == [False, True]
