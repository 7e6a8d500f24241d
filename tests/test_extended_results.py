"""The committed extended study (docs/results/extended, configs/extended.yaml): every curve runs
whole from its teacher to the whole combined pool, the pools' step counts add up, and the
past-the-split tables are what xner computes from the committed results."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from xner.beyond_split import beyond_the_split, split_sentences

ROOT = Path(__file__).resolve().parents[1]
EXTENDED = ROOT / "docs" / "results" / "extended"
CONFIG = yaml.safe_load((ROOT / "configs" / "extended.yaml").read_text())
REMOVED = ["too_short", "too_long", "leaked_exact", "leaked_near", "overlap_exact", "overlap_near",
           "duplicates_exact", "duplicates_near"]


def pool_counts(target: str) -> dict[str, int]:
    table = pd.read_csv(EXTENDED / "pools" / f"{target}.csv")
    return dict(zip(table["step"], table["count"]))


@pytest.fixture(scope="module")
def students() -> pd.DataFrame:
    results = pd.read_csv(EXTENDED / "results.csv")
    return results[(results["kind"] == "student") & (results["perturbation"] == "clean")]


def curves() -> list[tuple[str, str]]:
    teachers = {}
    for variant in CONFIG["variants"]:
        for target, sources in variant["teachers"].items():
            teachers.setdefault(target, set()).update(sources)
    return sorted((target, source) for target, sources in teachers.items() for source in sources)


@pytest.mark.parametrize("target", sorted(CONFIG["variants"][0]["pools"]))
def test_each_pool_count_is_what_its_steps_left(target):
    counts = pool_counts(target)
    assert counts["sentences"] - sum(counts[step] for step in REMOVED) == counts["kept"] > 0


@pytest.mark.parametrize(("target", "source"), curves())
def test_every_curve_runs_whole_from_its_teacher_to_the_combined_pool(students, target, source):
    split = int(split_sentences(target, "masakhaner2"))
    pool = split + pool_counts(target)["kept"]
    expected = {0, 500, 1000, 2000, 4000, split, 8000, 16000, pool}
    curve = students[(students["target"] == target) & (students["source"] == source)]
    for seed in CONFIG["seeds"]:
        assert set(curve.loc[curve["seed"] == seed, "volume"].astype(int)) == expected, (target, source, seed)
    assert curve.groupby("volume")["run_id"].nunique().eq(len(CONFIG["seeds"])).all()


@pytest.mark.parametrize("by", ["target", "genus"])
def test_the_past_the_split_tables_are_recomputed_from_the_results(students, by):
    committed = pd.read_csv(EXTENDED / "tables" / f"beyond_split_by_{by}.csv")
    recomputed = beyond_the_split(pd.read_csv(EXTENDED / "results.csv"), by=by, n_resamples=2000)
    assert len(committed) == len(recomputed) == (len(curves()) if by == "target" else committed["genus"].nunique())
    numeric = [c for c in committed.columns if pd.api.types.is_numeric_dtype(committed[c])]
    pd.testing.assert_frame_equal(committed[numeric].reset_index(drop=True),
                                  recomputed[numeric].reset_index(drop=True), check_exact=False, rtol=1e-9)
