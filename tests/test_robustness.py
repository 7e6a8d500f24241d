"""`xner robustness`: native vs transfer per pair, models reused, overlap, missing pairs reported."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from xner.cli import app
from xner.errors import XnerError
from xner.robustness import Pair, available_pairs, parse_pairs, robustness
from xner.models.tagger import TrainConfig

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
    trained = sorted(p.name for p in models.iterdir())
    assert len(trained) == 2
    again, _ = robustness(parse_pairs("nl:de"), data_dir=data_root, model="tiny", train_size=20, config=FAST,
                          perturbations=["unseen-entity", "mask-entity"], models_dir=models)
    assert sorted(p.name for p in models.iterdir()) == trained  # loaded, not retrained
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
