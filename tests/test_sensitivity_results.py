"""The sensitivity study's committed tables (docs/results/sensitivity) are what its committed
store says: results.csv holds every evaluated run of studies/sensitivity.sqlite with the same
F1 under each decoding, and the per-setting gains, slopes and mixed model recompute from it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from xner.sensitivity import setting_effects, setting_gains
from xner.study import ResultStore

ROOT = Path(__file__).resolve().parents[1]
TABLES = ROOT / "docs" / "results" / "sensitivity"
F1 = ["f1", "f1_repair", "f1_strict", "f1_viterbi"]


@pytest.fixture(scope="module")
def results() -> pd.DataFrame:
    return pd.read_csv(TABLES / "results.csv")


def test_results_are_the_committed_stores_evaluations(results):
    with ResultStore(ROOT / "studies" / "sensitivity.sqlite", create=False) as store:
        stored = store.frame()
    key = ["run_id", "perturbation"]
    merged = results.merge(stored, on=key, suffixes=("", "_stored"), validate="one_to_one")
    assert len(merged) == len(results) == len(stored) > 0
    for column in F1:
        pd.testing.assert_series_equal(merged[column], merged[f"{column}_stored"], check_names=False)


def test_gains_and_slopes_per_setting_recompute_from_the_results(results):
    committed = pd.read_csv(TABLES / "tables" / "setting_gains.csv")
    recomputed = setting_gains(results)
    assert set(committed["teacher_regime"] + "/" + committed["student_regime"]) == {
        "weak/top-4", "strong/top-4", "strong/all"}
    pd.testing.assert_frame_equal(recomputed, committed, check_exact=False, rtol=1e-9, check_dtype=False)


def test_the_mixed_model_recomputes_from_the_results(results):
    committed = pd.read_csv(TABLES / "tables" / "setting_effects.csv")
    pd.testing.assert_frame_equal(setting_effects(results), committed, check_exact=False, rtol=1e-6,
                                  check_dtype=False)
