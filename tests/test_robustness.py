"""`xner robustness`: native vs transfer per pair, models reused, overlap, missing pairs reported."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from xner.cli import app
from xner.errors import XnerError
from xner.robustness import Pair, available_pairs, parse_pairs, robustness
from xner.models.tagger import TrainConfig
from xner.study import ResultStore

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = TrainConfig(epochs=1, lr=0.02, batch_size=8, train_layers=1)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XNER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("xner.models.features._STORES", {})


@pytest.mark.parametrize(("text", "expected"), [
    ("nl:de", [Pair("nl", "de", "genetic", "wikiann", "wikiann")]),
    ("swa:zul", [Pair("swa", "zul", "genetic", "masakhaner2", "masakhaner2")]),
    ("en:pcm", [Pair("en", "pcm", "borrowing (creole)", "wikiann", "masakhaner2")]),
    ("fr:br", [Pair("fr", "br", "areal", "wikiann", "wikiann")]),
    ("de:nl", [Pair("de", "nl", "user", "wikiann", "wikiann")]),
])
def test_pairs_know_their_relation_and_datasets(text, expected):
    assert parse_pairs(text) == expected


def test_all_is_the_reference_study_and_bad_items_are_errors():
    assert len(parse_pairs("all")) == 13 and parse_pairs("all")[0] == Pair("fr", "br", "areal")
    with pytest.raises(XnerError, match="expected HRL:LRL"):
        parse_pairs("nl-de")


def test_pairs_without_data_are_reported_not_run(data_root):
    ready, missing = available_pairs(parse_pairs("nl:de,fr:br"), data_root)
    assert ready == parse_pairs("nl:de")
    assert missing == ["fr->br: no data for fr (wikiann), br (wikiann)"]


def test_native_and_transfer_rows_with_overlap_and_models_reused(data_root, tmp_path):
    models = tmp_path / "models"
    rows, missing = robustness(parse_pairs("nl:de"), data_dir=data_root, model="tiny", train_size=20, config=FAST,
                               perturbations=["unseen-entity", "mask-entity"], models_dir=models)
    table = pd.DataFrame(rows)
    assert missing == []
    assert sorted(set(zip(table["kind"], table["source"]))) == [("native", "de"), ("transfer", "nl")]
    assert list(table["perturbation"].unique()) == ["clean", "unseen-entity", "mask-entity"]
    assert (table["train_size"] == 20).all() and table["entity_overlap"].between(0, 100).all()
    clean = table[table["perturbation"] == "clean"].set_index("kind")["f1"]
    perturbed = table[table["perturbation"] == "mask-entity"].set_index("kind")
    assert (perturbed["drop"] == clean - perturbed["f1"]).all()
    with ResultStore(models / "study.sqlite") as store:
        first = {r.id: (r.spec.kind, r.finished) for r in store.records("done")}
    assert sorted(kind for kind, _ in first.values()) == ["evaluate", "evaluate", "train", "train"]
    trained = {run for run, (kind, _) in first.items() if kind == "train"}
    assert {p.name for p in (models / "runs").iterdir()} == trained  # the models, by run id
    again, _ = robustness(parse_pairs("nl:de"), data_dir=data_root, model="tiny", train_size=20, config=FAST,
                          perturbations=["unseen-entity", "mask-entity"], models_dir=models)
    with ResultStore(models / "study.sqlite") as store:
        assert {r.id: (r.spec.kind, r.finished) for r in store.records("done")} == first  # nothing ran again
    assert pd.DataFrame(again)["f1"].tolist() == table["f1"].tolist()


def test_cli_writes_the_tables_and_lists_missing_pairs(data_root, tmp_path):
    out = tmp_path / "rob.csv"
    result = CliRunner().invoke(app, [
        "robustness", "--pairs", "nl:de,fr:br", "--model", "tiny", "--train-size", "20", "--epochs", "1",
        "--lr", "0.02", "--train-layers", "1", "--perturb", "mask-entity", "--data-dir", str(data_root),
        "--models-dir", str(tmp_path / "m"), "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    assert "missing: fr->br" in result.stderr
    table = pd.read_csv(out)
    assert len(table) == 4 and set(table["pair"]) == {"nl->de"}
    assert (tmp_path / "rob.md").read_text().startswith("| pair")


def test_cli_with_no_pair_present_is_a_one_line_error(data_root, tmp_path):
    result = CliRunner().invoke(app, ["robustness", "--pairs", "fr:br", "--model", "tiny",
                                      "--data-dir", str(data_root), "--out", str(tmp_path / "x.csv")])
    assert result.exit_code == 2
    assert "error: no pair of 'fr:br' has its data" in result.stderr


KILLER = """
import os, signal, sys
from xner.study.execute import default_registry
from xner.study.runs import RunKind

registry = default_registry()
evaluate = registry.get("evaluate")

def dying(spec, ctx):  # kill -9 of the whole process, in the middle of the experiment
    if spec.params["role"] == "transfer":
        os.kill(os.getpid(), signal.SIGKILL)
    return evaluate.func(spec, ctx)

registry._kinds["evaluate"] = RunKind(evaluate.name, evaluate.version, dying, evaluate.primary, evaluate.show)
from xner.cli import app
app(sys.argv[1:])
"""


@pytest.mark.slow
def test_killed_with_sigkill_it_resumes_without_redoing_finished_runs(data_root, tmp_path):
    models, out = tmp_path / "m", tmp_path / "rob.csv"
    args = ["robustness", "--pairs", "nl:de", "--model", "tiny", "--train-size", "20", "--epochs", "1", "--lr", "0.02",
            "--train-layers", "1", "--perturb", "mask-entity", "--data-dir", str(data_root),
            "--models-dir", str(models), "--out", str(out)]
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    killed = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert killed.returncode == -signal.SIGKILL and not out.exists()
    with ResultStore(models / "study.sqlite") as store:
        before = {r.id: r.finished for r in store.records("done")}
        assert store.status_counts()["running"] == 1  # the run it was killed in
    assert len(before) == 3  # both models trained, the native one evaluated
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "3 runs already done" in result.stderr
    with ResultStore(models / "study.sqlite") as store:
        after = {r.id: r.finished for r in store.records("done")}
    assert len(after) == 4 and {run: after[run] for run in before} == before
    assert len(pd.read_csv(out)) == 4


@pytest.mark.parametrize("limit", [0, -1])
def test_a_test_limit_below_one_fails_before_any_training(limit, tmp_path):
    # [:0] scored no sentence and reported F1 0.00; [:-1] dropped the last one
    with pytest.raises(XnerError, match=rf"test_limit: .* must be at least 1, got {limit}"):
        robustness(parse_pairs("nl:de"), model="tiny", test_limit=limit, models_dir=tmp_path)
