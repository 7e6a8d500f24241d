"""Evaluation with label reconciliation, the train/evaluate pipeline, and the CLI commands
``xner train``, ``xner evaluate`` and ``xner distill`` on the fixture data root (tiny model)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from xner.cli import app
from xner.data.labels import iob2_tags
from xner.errors import XnerError
from xner.evaluation import evaluate_perturbed, score_predictions
from xner.metrics import entity_scores
from xner.models.tagger import Tagger, TrainConfig
from xner.pipeline import DataSpec, evaluate_model, teacher_weighting, train_model, training_sentences
from xner.study import ResultStore

pytestmark = pytest.mark.usefixtures("one_thread")

WIKIANN = iob2_tags(["PER", "ORG", "LOC"])
MASAKHANER = iob2_tags(["PER", "ORG", "LOC", "DATE"])
TRAIN = ("--model", "tiny", "--epochs", "2", "--lr", "0.02", "--batch-size", "8")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XNER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("xner.models.features._STORES", {})


def cli(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def nl_model(data_root, tmp_path):
    """`xner train` on the fixture root's Dutch: a model directory."""
    out = tmp_path / "nl-model"
    result = cli("train", "--lang", "nl", "--data-dir", data_root, "--train-size", 30, "--out", out, *TRAIN)
    assert result.exit_code == 0, result.output
    return out


# --- evaluation: label sets reconciled, never silently ------------------------------------------------

GOLD_DATE = [["B-PER", "I-PER", "O", "B-DATE", "I-DATE"], ["B-LOC", "O", "B-ORG"], ["O", "B-DATE"]]
PRED_NO_DATE = [["B-PER", "I-PER", "O", "O", "O"], ["B-LOC", "O", "B-LOC"], ["O", "O"]]


@pytest.mark.parametrize(("gold", "pred", "model_labels", "data_labels", "label_map"), [
    (GOLD_DATE, PRED_NO_DATE, WIKIANN, MASAKHANER, "gold: B-/I-DATE -> O"),  # WikiANN model, MasakhaNER data
    (PRED_NO_DATE, GOLD_DATE, MASAKHANER, WIKIANN, "predicted: B-/I-DATE -> O"),  # and the other way
    (PRED_NO_DATE, PRED_NO_DATE, WIKIANN, WIKIANN, "none"),
    (GOLD_DATE, GOLD_DATE, MASAKHANER, None, "none"),  # data labels read off the gold tags
])
def test_scores_on_the_shared_types_with_the_mapping_stated(gold, pred, model_labels, data_labels, label_map):
    row = score_predictions(gold, pred, model_labels, data_labels, n_resamples=200)
    assert row["label_map"] == label_map
    shared = {"PER", "ORG", "LOC"} | ({"DATE"} if label_map == "none" and "B-DATE" in model_labels else set())
    assert row["types"] == ",".join(sorted(shared))
    drop_date = label_map != "none"
    def mapped(tags):
        return [["O" if drop_date and t.endswith("DATE") else t for t in s] for s in tags]

    expected = entity_scores(mapped(gold), mapped(pred))
    assert {k: row[k] for k in expected} == expected
    assert not any(k.startswith("DATE/") for k in row) or not drop_date
    assert row["f1_lo"] <= row["f1"] <= row["f1_hi"]


def test_without_declared_labels_rare_types_still_count():
    """A type the model predicts but this small gold sample lacks is a false positive, not erased."""
    gold, pred = [["B-PER", "O"]], [["B-PER", "B-ORG"]]
    row = score_predictions(gold, pred, WIKIANN, n_resamples=20)
    assert (row["precision"], row["recall"]) == (50.0, 100.0) and row["label_map"] == "none"
    assert row["types"] == "LOC,ORG,PER"
    declared = score_predictions(gold, pred, WIKIANN, iob2_tags(["PER"]), n_resamples=20)
    assert declared["precision"] == 100.0 and declared["label_map"] == "predicted: B-/I-LOC -> O; B-/I-ORG -> O"


def test_confidence_interval_contains_f1():
    gold = [["B-PER", "O"], ["B-LOC"], ["O", "B-ORG"], ["B-PER", "I-PER"]] * 5
    pred = [["B-PER", "O"], ["O"], ["O", "B-ORG"], ["B-PER", "O"]] * 5
    row = score_predictions(gold, pred, WIKIANN, WIKIANN, n_resamples=300, seed=1)
    assert row["f1_lo"] < row["f1"] < row["f1_hi"]
    assert row == score_predictions(gold, pred, WIKIANN, WIKIANN, n_resamples=300, seed=1)  # seeded


class GoldTagger:
    """A stand-in model that predicts the gold tags of the sentences it has seen."""

    labels = WIKIANN

    def __init__(self, sentences):
        self.known = {s.tokens: list(s.tags) for s in sentences}

    def predict_proba(self, sentences):
        tags = [self.known.get(s.tokens, ["O"] * len(s)) for s in sentences]
        return [np.eye(len(self.labels), dtype=np.float32)[[self.labels.index(t) for t in row]] for row in tags]


def test_perturbed_rows_report_the_drop(make_corpus):
    from xner.perturb import PerturbationResources

    test = make_corpus(20, seed=4)
    rows = evaluate_perturbed(GoldTagger(test), test, ["mask-entity"], PerturbationResources(mask_token="[M]"),
                              n_resamples=50)
    assert [r["perturbation"] for r in rows] == ["clean", "mask-entity"]
    assert rows[0]["f1"] == 100 and rows[1]["f1"] < 100  # masked sentences are unknown to it
    assert rows[1]["drop"] == pytest.approx(rows[0]["f1"] - rows[1]["f1"])
    assert rows[1]["tokens_edited"] == sum(t != "O" for s in test for t in s.tags) and rows[1]["sentences_edited"] > 0


# --- pipeline ------------------------------------------------------------------------------------------

def test_train_model_records_its_data_and_is_reproducible(data_root, tmp_path):
    data = DataSpec("wikiann", data_root)
    config = TrainConfig(epochs=1, lr=0.02, batch_size=8, seed=3)
    tagger = train_model("nl", data=data, model="tiny", train_size=25, config=config, out=tmp_path / "m")
    assert tagger.metadata["name"] == "nl-wikiann-25-s3" and tagger.metadata["dataset"] == "wikiann"
    assert tagger.metadata["train_data"] == {"lang": "nl", "dataset": "wikiann", "label_map": {},
                                             "data_dir": str(data_root), "size": 25, "seed": 3}
    loaded = Tagger.load(tmp_path / "m")
    used = training_sentences(loaded)
    assert len(used) == 25 and {s.tokens for s in used} <= {s.tokens for s in data.split("nl", "train")}
    assert tagger.encode(used).fingerprint == tagger.metadata["trainings"][0]["train_fingerprint"]
    again = train_model("nl", data=data, model="tiny", train_size=25, config=config)
    test = data.split("nl", "test")
    assert again.predict(test) == tagger.predict(test)


def test_train_model_with_a_label_map(data_root):
    data = DataSpec("masakhaner2", data_root, {"DATE": "O"})
    assert data.labels == WIKIANN
    tagger = train_model("swa", data=data, model="tiny", train_size=10, config=TrainConfig(epochs=1))
    assert tagger.labels == WIKIANN and tagger.metadata["label_map"] == {"DATE": "O"}


def test_training_sentences_of_a_model_without_provenance():
    assert training_sentences(Tagger.create("tiny", WIKIANN)) is None


def test_evaluate_model_matches_the_tagger(data_root):
    data = DataSpec("wikiann", data_root)
    tagger = train_model("nl", data=data, model="tiny", train_size=20, config=TrainConfig(epochs=1))
    [row] = evaluate_model(tagger, "de", data=data, n_resamples=50, limit=10)
    assert (row["target"], row["split"], row["perturbation"]) == ("de", "test", "clean")
    assert row["f1"] == pytest.approx(tagger.evaluate(data.split("de", "test")[:10])["f1"])


def test_teacher_weighting_by_name(data_root):
    data = DataSpec("wikiann", data_root)
    teacher = train_model("nl", data=data, model="tiny", train_size=20, config=TrainConfig(epochs=1))
    assert teacher_weighting("uniform", [teacher]).name == "uniform.v1"
    langid = teacher_weighting("langid", [teacher])
    assert [s.tokens for s in langid.sources["nl"]] == [s.tokens for s in training_sentences(teacher)]
    with pytest.raises(XnerError, match=r"teacher\(s\) \['nl'\] record no training data"):
        teacher_weighting("langid", [_with_language("nl")])


def _with_language(lang):
    tagger = Tagger.create("tiny", WIKIANN)
    tagger.metadata["languages"] = [lang]
    return tagger


# --- xner train -----------------------------------------------------------------------------------------

def test_train_writes_a_loadable_model(nl_model, data_root):
    tagger = Tagger.load(nl_model)
    assert tagger.labels == WIKIANN and tagger.base_name == "tiny" and tagger.n_frozen == 0
    assert tagger.metadata["languages"] == ["nl"] and tagger.metadata["trainings"][0]["train_sentences"] == 30
    assert len(tagger.predict(DataSpec("wikiann", data_root).split("de", "test"))) == 15


def test_train_prints_a_line_per_epoch_and_a_summary(data_root, tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="xner.train")
    out = tmp_path / "m"
    result = cli("train", "--lang", "de", "--data-dir", data_root, "--train-layers", 1, "--out", out, *TRAIN)
    assert result.exit_code == 0, result.output
    assert f"saved {out}: 40 sentences, best epoch" in result.stdout
    epochs = [r.getMessage() for r in caplog.records if r.name == "xner.train"]
    assert len(epochs) == 2 and all(" dev F1 " in line for line in epochs)
    assert Tagger.load(out).n_frozen == 1


def test_train_compact_saves_only_the_trained_weights(data_root, tmp_path):
    full, compact = tmp_path / "full", tmp_path / "compact"
    for out, extra in ((full, ()), (compact, ("--compact",))):
        result = cli("train", "--lang", "de", "--data-dir", data_root, "--train-layers", 1, "--out", out, *TRAIN, *extra)
        assert result.exit_code == 0, result.output
    assert sorted(path.name for path in compact.iterdir()) == ["xner-checksums.json", "xner-delta.safetensors", "xner.json"]
    assert (compact / "xner-delta.safetensors").stat().st_size < (full / "model.safetensors").stat().st_size / 2
    assert Tagger.load(compact).fingerprint == Tagger.load(full).fingerprint


@pytest.mark.parametrize(("args", "message"), [
    (("--lang", "nl", "--train-size", 1000), "asked for 1000 sentences but only 40 are available"),
    (("--lang", "xx"), "xx"),
    (("--lang", "nl", "--dataset", "conll"), "dataset"),
    (("--lang", "nl", "--label-map", "DATE"), "--label-map 'DATE': expected TYPE=NEWTYPE"),
    (("--lang", "nl", "--train-layers", 5), "train_layers must be between 0 and 2, got 5"),
])
def test_train_errors(data_root, tmp_path, args, message):
    result = cli("train", *args, "--data-dir", data_root, "--out", tmp_path / "m", *TRAIN)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# --- xner evaluate -----------------------------------------------------------------------------------------

def test_evaluate_json(nl_model, data_root):
    result = cli("evaluate", nl_model, "--lang", "de", "--data-dir", data_root, "--format", "json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert (row["target"], row["split"], row["perturbation"], row["label_map"]) == ("de", "test", "clean", "none")
    expected = Tagger.load(nl_model).evaluate(DataSpec("wikiann", data_root).split("de", "test"))
    assert row["f1"] == pytest.approx(expected["f1"]) and row["f1_lo"] <= row["f1"] <= row["f1_hi"]


def test_evaluate_table(nl_model, data_root):
    result = cli("evaluate", nl_model, "--lang", "de", "--data-dir", data_root, "--split", "dev")
    assert result.exit_code == 0, result.output
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in result.stdout.splitlines() if "│" in line]
    header = next(line for line in result.stdout.splitlines() if "measure" in line)
    assert "clean" in header  # a column per test set, a row per measure
    measures = {row[0]: row[1] for row in cells if len(row) == 2}
    expected = Tagger.load(nl_model).evaluate(DataSpec("wikiann", data_root).split("de", "dev"))
    assert measures["target"] == "de" and measures["f1"] == f"{expected['f1']:.2f}"


def test_evaluate_clean_and_perturbed(nl_model, data_root):
    result = cli("evaluate", nl_model, "--lang", "de", "--data-dir", data_root, "--perturb", "mask-entity",
                 "--format", "json")
    assert result.exit_code == 0, result.output
    clean, masked = json.loads(result.stdout)
    assert (clean["perturbation"], masked["perturbation"]) == ("clean", "mask-entity")
    assert clean["drop"] is None and masked["drop"] == pytest.approx(clean["f1"] - masked["f1"])
    assert masked["tokens_edited"] > 0


@pytest.mark.parametrize(("train", "test", "label_map"), [
    (("masakhaner2", "swa"), ("wikiann", "de"), "predicted: B-/I-DATE -> O"),
    (("wikiann", "nl"), ("masakhaner2", "swa"), "gold: B-/I-DATE -> O"),
])
def test_evaluate_across_label_sets(data_root, tmp_path, train, test, label_map):
    out = tmp_path / "m"
    trained = cli("train", "--dataset", train[0], "--lang", train[1], "--data-dir", data_root, "--out", out,
                  "--train-size", 20, *TRAIN)
    assert trained.exit_code == 0, trained.output
    result = cli("evaluate", out, "--dataset", test[0], "--lang", test[1], "--data-dir", data_root,
                 "--format", "json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert row["label_map"] == label_map and row["types"] == "LOC,ORG,PER"
    assert not any(key.startswith("DATE/") for key in row)


@pytest.mark.parametrize(("args", "message"), [
    (("missing-dir", "--lang", "de"), "not an xner model directory"),
    (("MODEL", "--lang", "de", "--split", "validation"), "validation"),
    (("MODEL", "--lang", "de", "--perturb", "shout"), "shout"),
])
def test_evaluate_errors(nl_model, data_root, tmp_path, args, message):
    args = [str(nl_model) if a == "MODEL" else str(tmp_path / a) if a == "missing-dir" else a for a in args]
    result = cli("evaluate", *args, "--data-dir", data_root)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr


# --- xner distill ------------------------------------------------------------------------------------------

DISTILL = ("--train-layers", 1, "--epochs", 1, "--lr", 0.02)


def test_distill_writes_the_sweep_table(nl_model, data_root, tmp_path):
    out = tmp_path / "t.csv"
    result = cli("distill", "--teacher", nl_model, "--lang", "de", "--data-dir", data_root,
                 "--volumes", "0,20,10000", "--seeds", "0,1", "--out", out, *DISTILL)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert list(zip(table["volume"], table["seed"])) == [(v, s) for s in (0, 1) for v in (0, 20, 10000)]
    skipped = table[table["volume"] == 10000]
    assert len(skipped) == 2 and skipped["status"].str.startswith("skipped: volume 10000 > 40").all()
    assert skipped["f1"].isna().all()
    done = table[table["status"] == "done"]
    np.testing.assert_allclose(done["gain"], done["f1"] - done["teacher_f1"])
    assert (table.loc[table["volume"] == 0, "gain"] == 0).all()
    assert set(table["source"]) == {"nl"} and set(table["genus"]) == {"Germanic"} and set(table["family"]) == {"Indo-European"}
    markdown = (tmp_path / "t.md").read_text()
    assert markdown.startswith("| kind") and markdown.count("\n") == len(table) + 2
    assert "volume 10000 seed 1: skipped: volume 10000 > 40" in result.stderr


def test_distill_multi_source_and_perturbed(nl_model, data_root, tmp_path):
    second = tmp_path / "de-model"
    trained = cli("train", "--lang", "de", "--data-dir", data_root, "--out", second, "--train-size", 20, *TRAIN)
    assert trained.exit_code == 0, trained.output
    result = cli("distill", "--teacher", f"{nl_model},{second}", "--lang", "de", "--data-dir", data_root,
                 "--volumes", "0,10", "--perturb", "mask-entity", "--format", "json", *DISTILL)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["volume"], r["perturbation"]) for r in rows] == [
        (0, "clean"), (0, "mask-entity"), (10, "clean"), (10, "mask-entity")]
    assert {r["source"] for r in rows} == {"nl+de"} and {r["weighting"] for r in rows} == {"uniform.v1"}


def test_distill_pool_appends_a_raw_text_file(nl_model, data_root, tmp_path):
    pool = tmp_path / "pool.txt"
    pool.write_text("Ada sprach in Oslo\nder Rat tagte in Lima\n")
    result = cli("distill", "--teacher", nl_model, "--lang", "de", "--data-dir", data_root, "--volumes", "42,43",
                 "--pool", f"train,{pool}", "--format", "json", *DISTILL)
    assert result.exit_code == 0, result.output
    done, skipped = json.loads(result.stdout)
    assert done["status"] == "done" and skipped["status"] == "skipped: volume 43 > 42 unlabeled sentences available"


def test_distill_json_is_strict_json(nl_model, data_root):
    result = cli("distill", "--teacher", nl_model, "--lang", "de", "--data-dir", data_root, "--volumes", "0,10000",
                 "--format", "json", *DISTILL)
    assert result.exit_code == 0, result.output

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    teacher, skipped = json.loads(result.stdout, parse_constant=refuse)
    assert isinstance(teacher["f1"], float) and skipped["f1"] is None and skipped["status"].startswith("skipped")


@pytest.mark.parametrize(("args", "message"), [
    (("--volumes", "0,abc"), "--volumes '0,abc': expected comma-separated integers"),
    (("--seeds", "1;2"), "--seeds '1;2': expected comma-separated integers"),
    (("--teacher", "nowhere"), "not an xner model directory"),
    (("--weighting", "vote"), "given, langid, uniform, uriel"),
    (("--loss", "hinge", "--volumes", "5"), "ce, kl, mse"),
    (("--pool", "train,missing.txt"), "missing.txt: no such file"),
    (("--pool", "train,train"), "pool source(s) listed twice: train"),
])
def test_distill_errors(nl_model, data_root, args, message):
    result = cli("distill", "--teacher", nl_model, "--lang", "de", "--data-dir", data_root, *DISTILL, *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


KILLER = """
import os, signal, sys
from xner.study.execute import default_registry
from xner.study.runs import RunKind

registry = default_registry()
distill = registry.get("distill")

def dying(spec, ctx):  # kill -9 of the whole process while the first student trains
    if spec.params["volume"]:
        os.kill(os.getpid(), signal.SIGKILL)
    return distill.func(spec, ctx)

registry._kinds["distill"] = RunKind(distill.name, distill.version, dying, distill.primary, distill.show)
from xner.cli import app
app(sys.argv[1:])
"""


@pytest.mark.slow
def test_distill_killed_with_sigkill_resumes_without_redoing_finished_runs(nl_model, data_root, tmp_path):
    store, out = tmp_path / "sweep" / "study.sqlite", tmp_path / "t.csv"
    args = ["distill", "--teacher", str(nl_model), "--lang", "de", "--data-dir", str(data_root), "--volumes", "0,20",
            "--models-dir", str(store.parent), "--out", str(out), *map(str, DISTILL)]
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    killed = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert killed.returncode == -signal.SIGKILL and not out.exists()
    with ResultStore(store) as results:
        before = {r.id: (r.spec.kind, r.finished) for r in results.records("done")}
    assert "teacher" in {kind for kind, _ in before.values()} and len(before) < 5
    with ResultStore(store) as results:
        assert [r.spec.params["volume"] for r in results.records("running")] == [20]  # killed in that student
    result = cli(*args)
    assert result.exit_code == 0, result.output
    with ResultStore(store) as results:
        after = {r.id: (r.spec.kind, r.finished) for r in results.records("done")}
    assert len(after) == 5 and {run: after[run] for run in before} == before
    assert pd.read_csv(out)["volume"].tolist() == [0, 20]
