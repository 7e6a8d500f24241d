"""The committed document-task study (docs/results/news) can be recomputed from its own
per-example predictions: every accuracy in results.csv is the share of its rows with
gold == predicted, and every evaluation of the study has its predictions there."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

NEWS = Path(__file__).resolve().parents[1] / "docs" / "results" / "news"


@pytest.fixture(scope="module")
def committed() -> tuple[pd.DataFrame, pd.DataFrame]:
    results = pd.read_csv(NEWS / "results.csv")
    predictions = pd.read_csv(NEWS / "tables" / "document_predictions.csv.gz")
    return results, predictions


def test_every_accuracy_is_the_share_of_correct_predictions(committed):
    results, predictions = committed
    recomputed = (predictions.assign(correct=predictions["gold"].astype(str) == predictions["predicted"].astype(str))
                  .groupby(["run_id", "perturbation"])["correct"].agg(["mean", "size"]))
    rows = results.set_index(["run_id", "perturbation"])
    assert set(rows.index) == set(recomputed.index)
    joined = rows.join(recomputed)
    assert (joined["size"] == joined["examples"]).all()
    assert (100 * joined["mean"] - joined["accuracy"]).abs().max() < 1e-9


def test_the_study_is_complete_both_tasks_native_and_transfer(committed):
    results, _ = committed
    assert set(results["task"].str.split(".").str[0]) == {"headline", "topic"}
    native = results[results["kind"] == "native"]
    assert (native["source"] == native["target"]).all()
    counts = results.groupby(["task", "kind"])["run_id"].nunique()
    assert counts.to_dict() == {(task, "native"): 20 for task in ("headline.v1", "topic.v1")} | {
        (task, "transfer"): 64 for task in ("headline.v1", "topic.v1")}
    assert set(results["perturbation"]) == {"clean", "nearest-unseen-word.v1", "random-unseen-word.v1"}
