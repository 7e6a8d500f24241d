"""The extended study's committed tables (docs/results/extended) agree with its per-run results
and with the raw-text pools' own counts: the slopes past the split are recomputed from
results.csv, and every curve's whole pool is its train split plus the news sentences its pool
file kept after every cleaning step."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from xner.beyond_split import beyond_the_split

EXTENDED = Path(__file__).resolve().parents[1] / "docs" / "results" / "extended"
COLUMNS = ["slope", "slope_lo", "slope_hi", "slope_new", "slope_new_lo", "slope_new_hi", "split_f1", "pool_f1"]


def pool_counts(target: str) -> dict[str, int]:
    steps = pd.read_csv(EXTENDED / "pools" / f"{target}.csv")
    return dict(zip(steps["step"], steps["count"]))


@pytest.mark.parametrize("by", ["target", "genus", "family"])
def test_slopes_past_the_split_recompute_from_the_runs(by):
    committed = pd.read_csv(EXTENDED / "tables" / f"beyond_split_by_{by}.csv").sort_values(by).reset_index(drop=True)
    recomputed = beyond_the_split(pd.read_csv(EXTENDED / "results.csv"), by=by).sort_values(by).reset_index(drop=True)
    assert len(committed) >= 1 and list(recomputed[by]) == list(committed[by])
    pd.testing.assert_frame_equal(recomputed[COLUMNS], committed[COLUMNS], check_exact=False, rtol=1e-9)


def test_each_whole_pool_is_the_split_plus_the_news_sentences_kept():
    table = pd.read_csv(EXTENDED / "tables" / "beyond_split_by_target.csv")
    for row in table.itertuples():
        counts = pool_counts(row.target)
        removed = sum(v for k, v in counts.items() if k.split("_")[0] in ("too", "leaked", "overlap", "duplicates"))
        assert counts["sentences"] - removed == counts["kept"], row.target
        assert row.pool_sentences == row.split_sentences + counts["kept"], row.target
