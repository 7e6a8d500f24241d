"""Curves continued past the train split by a raw-text pool: whole-range vs new-range slopes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from xner.beyond_split import beyond_the_split, split_sentences
from xner.cli import app

SPLIT = 6876
"""MasakhaNER 2.0 Yoruba's train split, as the registry gives it."""
IN_SPLIT, PAST_SPLIT = (500, 2000, SPLIT), (8000, 16000, 32000)


def curve(source: str, rise: float, rise_past: float, volumes=(0, *IN_SPLIT, *PAST_SPLIT), target="yo") -> pd.DataFrame:
    """A yo <- source curve for two seeds: F1 grows by ``rise`` per doubling inside the split
    and by ``rise_past`` past it (teachers 10 F1 apart between seeds, +-0.1 F1 of noise)."""
    rng = np.random.default_rng(len(source))
    rows = []
    for seed in (1, 2):
        for volume in volumes:
            doublings = np.log2(max(volume, 250) / 250) if volume else 0.0
            inside = min(doublings, np.log2(SPLIT / 250))
            f1 = 40 + 10 * seed + rise * inside + rise_past * (doublings - inside) + rng.normal(0, 0.1)
            rows.append({"run_id": f"{source}-{volume}-{seed}", "kind": "student", "model": "embedded",
                         "source": source, "target": target, "dataset": "masakhaner2", "genus": "Volta-Niger",
                         "family": "Niger-Congo", "volume": volume, "seed": seed, "perturbation": "clean",
                         "f1": f1, "f1_lo": f1 - 2, "f1_hi": f1 + 2})
    return pd.DataFrame(rows)


def test_split_sizes_come_from_the_registry():
    assert split_sentences("yo", "masakhaner2") == SPLIT
    assert np.isnan(split_sentences("yo", "my-folder")) and np.isnan(split_sentences("xx", "wikiann"))


def test_a_curve_that_flattens_past_the_split_has_a_flat_new_range_slope():
    table = beyond_the_split(pd.concat([curve("ig", rise=2.0, rise_past=0.0), curve("en", 1.0, 1.0)]),
                             n_resamples=100)
    by_source = table.set_index("source")
    assert by_source.loc["ig", "slope_new"] == pytest.approx(0.0, abs=0.2)
    assert by_source.loc["ig", "slope"] > 1.0  # the whole range still rises
    assert by_source.loc["en", "slope_new"] == pytest.approx(1.0, abs=0.2)
    assert by_source.loc["ig", "slope_new_lo"] < by_source.loc["ig", "slope_new"] < by_source.loc["ig", "slope_new_hi"]
    # the new range is the split's end and the volumes past it
    assert by_source.loc["ig", "n_volumes_new"] == 1 + len(PAST_SPLIT)
    assert by_source.loc["ig", "split_sentences"] == SPLIT and by_source.loc["ig", "pool_sentences"] == 32000
    assert by_source.loc["ig", "pool_f1"] == pytest.approx(by_source.loc["ig", "split_f1"], abs=0.3)


def test_a_genus_pools_its_curves():
    [row] = beyond_the_split(pd.concat([curve("ig", 2.0, 0.0), curve("en", 1.0, 1.0)]), by="genus",
                             n_resamples=100).to_dict("records")
    assert row["genus"] == "Volta-Niger" and row["n_targets"] == 1
    assert row["slope_new"] == pytest.approx(0.5, abs=0.2)
    assert "split_sentences" not in row  # the curves of a genus end at different sizes


def test_teacher_run_ids_on_one_side_of_the_split_keep_one_teacher_per_seed():
    """The earlier table (in-split points) has no teacher run ids, the continuing study's has."""
    frame = curve("ig", 2.0, 0.0)
    named = frame.assign(teacher_runs=np.where(frame["volume"] > SPLIT, "ig-teacher-" + frame["seed"].astype(str), None))
    assert beyond_the_split(named, n_resamples=100)["slope"].item() == pytest.approx(
        beyond_the_split(frame, n_resamples=100)["slope"].item())


def test_curves_that_stay_in_the_split_are_left_out():
    inside = curve("en", 1.0, 1.0, volumes=(0, *IN_SPLIT))
    assert beyond_the_split(inside).empty
    table = beyond_the_split(pd.concat([inside, curve("ig", 2.0, 0.0)]), n_resamples=100)
    assert table["source"].tolist() == ["ig"]


def test_report_continues_an_earlier_studys_curves(tmp_path):
    """The extended study holds only the teacher and the raw-text volumes; ``--continues``
    brings the volume study's in-split points of the same curves (and no other curve)."""
    whole = curve("ig", 2.0, 0.0)
    earlier = pd.concat([whole[whole["volume"] <= SPLIT], curve("en", 1.0, 1.0, target="ha")])
    extended = whole[(whole["volume"] == 0) | (whole["volume"] > SPLIT)]
    earlier.to_csv(tmp_path / "volume.csv", index=False)
    extended.to_csv(tmp_path / "extended.csv", index=False)
    result = CliRunner().invoke(app, ["report", str(tmp_path / "extended.csv"), "--continues",
                                      str(tmp_path / "volume.csv"), "--out", str(tmp_path / "r"), "--resamples", "50"])
    assert result.exit_code == 0, result.output
    results = pd.read_csv(tmp_path / "r" / "results.csv")
    assert set(results["target"]) == {"yo"} and len(results) == len(whole)  # volume 0 not twice
    [row] = pd.read_csv(tmp_path / "r" / "tables" / "beyond_split_by_target.csv").to_dict("records")
    assert row["n_volumes"] == len(IN_SPLIT) + len(PAST_SPLIT) and row["split_f1"] == pytest.approx(row["pool_f1"], abs=0.3)
    assert "past the split" in (tmp_path / "r" / "tables" / "beyond_split_by_target.md").read_text()
    for by in ("genus", "family"):  # pooled rows: no one curve's split size
        assert "train split" not in (tmp_path / "r" / "tables" / f"beyond_split_by_{by}.md").read_text()


def test_continuing_nothing_is_a_one_line_error(tmp_path):
    curve("ig", 2.0, 0.0).to_csv(tmp_path / "extended.csv", index=False)
    curve("en", 1.0, 1.0, target="ha").to_csv(tmp_path / "other.csv", index=False)
    result = CliRunner().invoke(app, ["report", str(tmp_path / "extended.csv"), "--continues",
                                      str(tmp_path / "other.csv"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "--continues: the earlier results have no student of this study's curves (embedded<-ig<-yo)" in result.output


def _continue(tmp_path, earlier: pd.DataFrame, extended: pd.DataFrame):
    earlier.to_csv(tmp_path / "volume.csv", index=False)
    extended.to_csv(tmp_path / "extended.csv", index=False)
    return CliRunner().invoke(app, ["report", str(tmp_path / "extended.csv"), "--continues",
                                    str(tmp_path / "volume.csv"), "--out", str(tmp_path / "r"), "--resamples", "50"])


def test_a_teacher_rerun_under_a_new_run_id_is_joined_once(tmp_path):
    """The same teacher evaluated by both studies (an id that changed with the spec, same F1):
    its volume-0 row enters the curve once, the continuing study's."""
    whole = curve("ig", 2.0, 0.0)
    extended = whole[(whole["volume"] == 0) | (whole["volume"] > SPLIT)].copy()
    extended["run_id"] = "new-" + extended["run_id"]
    result = _continue(tmp_path, whole[whole["volume"] <= SPLIT], extended)
    assert result.exit_code == 0, result.output
    results = pd.read_csv(tmp_path / "r" / "results.csv")
    assert len(results) == len(whole)
    assert set(results.loc[results["volume"] == 0, "run_id"]) == {"new-ig-0-1", "new-ig-0-2"}


def test_a_curve_continued_from_another_teacher_is_refused(tmp_path):
    """A teacher that scores otherwise (xner changed between the studies) would make the change
    look like a volume effect past the split: one line, naming the curve and both scores."""
    whole = curve("ig", 2.0, 0.0)
    extended = whole[(whole["volume"] == 0) | (whole["volume"] > SPLIT)].copy()
    extended.loc[extended["seed"] == 1, "f1"] += 2.5
    extended["run_id"] = "new-" + extended["run_id"]
    result = _continue(tmp_path, whole[whole["volume"] <= SPLIT], extended)
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line and line.startswith("error: --continues: the earlier results' teacher of yo <- ig "
                                                "(embedded, seed 1, clean) scores ")
    assert "not the same teacher or not scored the same way" in line
