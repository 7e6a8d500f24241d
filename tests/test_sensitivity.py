"""The sensitivity analysis: gains and slopes per teacher/student setting, the setting effects
on the slope, the checkpoint policies' seed spread and the gains under each decoding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xner.errors import XnerError
from xner.sensitivity import (checkpoint_comparison, checkpoint_spread, decoding_gains, setting_effects, setting_gains,
                              with_settings)

SLOPES = {("weak", 4): 0.5, ("weak", "all"): 1.0, ("strong", 4): 1.5, ("strong", "all"): 2.0}
VOLUMES = [500, 1000, 2000, 4000]


def sensitivity_frame(noise: float = 0.05) -> pd.DataFrame:
    """Student curves whose gain per doubling is SLOPES[setting]; each seed's teacher has its
    own level, and strict decoding adds 1 F1 to every student of the strong teachers."""
    rng = np.random.default_rng(0)
    rows = []
    for target, source in (("de", "nl"), ("kin", "swa"), ("yor", "ibo")):
        for seed in (1, 2, 3):
            for teacher_layers in (4, "all"):
                level = 40 + 10 * seed + (15 if teacher_layers == "all" else 0)
                teacher = {"kind": "student", "model": "m", "source": source, "target": target, "seed": seed,
                           "perturbation": "clean", "teacher_train_layers": teacher_layers,
                           "teacher_train_size": 2000 if teacher_layers == 4 else 20000,
                           "teacher_runs": f"{source}-{teacher_layers}-{seed}", "genus": "f"}
                rows.append({**teacher, "volume": 0, "f1": level, "f1_strict": level, "student_train_layers": None})
                for student_layers in (4, "all"):
                    slope = SLOPES[(("strong" if teacher_layers == "all" else "weak"), student_layers)]
                    for volume in VOLUMES:
                        f1 = level + slope * np.log2(volume / 250) + rng.normal(0, noise)
                        rows.append({**teacher, "volume": volume, "f1": f1, "student_train_layers": student_layers,
                                     "f1_strict": f1 + (1 if teacher_layers == "all" else 0)})
    frame = pd.DataFrame(rows)
    frame["gain"] = np.nan
    return frame


def test_each_setting_recovers_its_slope_and_whole_pool_gain():
    table = setting_gains(sensitivity_frame(), n_resamples=200).set_index(["teacher_regime", "student_regime", "target"])
    for (teacher, student), slope in SLOPES.items():
        row = table.loc[(teacher, "all" if student == "all" else "top-4", "kin")]
        assert row["slope"] == pytest.approx(slope, abs=0.05) and row["slope_lo"] < slope < row["slope_hi"]
        assert row["gain"] == pytest.approx(slope * np.log2(4000 / 250), abs=0.1)
        assert row["n_seeds"] == 3 and row["pool"] == 4000


def test_a_teacher_run_of_several_targets_is_each_targets_own_baseline():
    """kin's curves taught by de's teacher runs, 20 F1 higher on kin: the gains stay kin's own."""
    frame = sensitivity_frame()
    kin = frame["target"] == "kin"
    frame.loc[kin, "teacher_runs"] = frame.loc[kin, "teacher_runs"].str.replace("swa", "nl")
    frame.loc[kin, "f1"] += 20
    table = setting_gains(frame, n_resamples=200).set_index(["teacher_regime", "student_regime", "target"])
    for (teacher, student), slope in SLOPES.items():
        for target in ("de", "kin"):
            row = table.loc[(teacher, "all" if student == "all" else "top-4", target)]
            assert row["gain"] == pytest.approx(slope * np.log2(4000 / 250), abs=0.1)


def test_the_mixed_model_puts_the_settings_in_the_slope_interactions():
    effects = setting_effects(sensitivity_frame()).set_index("term")
    assert effects.loc["log2_volume", "coef"] == pytest.approx(0.5, abs=0.05)
    assert effects.loc["log2_volume:strong_teacher", "coef"] == pytest.approx(1.0, abs=0.05)
    assert effects.loc["log2_volume:all_layer_student", "coef"] == pytest.approx(0.5, abs=0.05)
    assert effects.loc["log2_volume:strong_teacher:all_layer_student", "coef"] == pytest.approx(0.0, abs=0.1)
    assert (effects["lo"] <= effects["coef"]).all() and (effects["coef"] <= effects["hi"]).all()


def test_without_the_weak_teacher_all_layer_cell_the_model_fits_the_main_effects():
    frame = sensitivity_frame()
    frame = frame[~((frame["teacher_train_layers"] == 4) & (frame["student_train_layers"] == "all"))]
    effects = setting_effects(frame).set_index("term")
    assert "log2_volume:strong_teacher:all_layer_student" not in effects.index
    assert effects.loc["log2_volume", "coef"] == pytest.approx(0.5, abs=0.05)
    assert effects.loc["log2_volume:strong_teacher", "coef"] == pytest.approx(1.0, abs=0.05)
    # the strong-teacher cells' slopes are 1.5 (top-4) and 2.0 (all layers)
    assert effects.loc["log2_volume:all_layer_student", "coef"] == pytest.approx(0.5, abs=0.05)


def test_volume_zero_is_every_student_settings_baseline():
    rows = with_settings(sensitivity_frame())
    baselines = rows[rows["volume"] == 0]
    assert set(baselines["student_regime"]) == {"top-4", "all"} and len(baselines) == 2 * 18


def test_an_unfinished_study_has_only_the_curves_it_can_measure():
    """The fractional design (no weak-teacher/all-layer cell) half run: one strong teacher's own
    evaluation is still to run. Its students wait; no setting gets curves it does not have."""
    frame = sensitivity_frame()
    frame = frame[~((frame["teacher_train_layers"] == 4) & (frame["student_train_layers"] == "all"))]
    unevaluated = (frame["teacher_runs"] == "swa-all-1") & (frame["volume"] == 0)
    frame = frame[~unevaluated]
    rows = with_settings(frame)
    assert set(zip(rows["teacher_regime"], rows["student_regime"])) == {("weak", "top-4"), ("strong", "top-4"),
                                                                         ("strong", "all")}
    assert "swa-all-1" not in set(rows["teacher_runs"]) and rows["gain"].notna().all()
    gains = setting_gains(frame, n_resamples=200).set_index(["teacher_regime", "student_regime", "target"])
    assert gains.loc[("strong", "all", "kin"), "n_seeds"] == 2 and gains.loc[("strong", "all", "de"), "n_seeds"] == 3
    decoding = decoding_gains(frame).set_index(["teacher_regime", "student_regime", "target"])
    assert decoding.loc[("strong", "top-4", "kin"), "gain_strict"] == pytest.approx(1.5 * 4 + 1, abs=0.1)


def test_decoding_gains_follow_each_decoding():
    table = decoding_gains(sensitivity_frame()).set_index(["teacher_regime", "student_regime", "target"])
    weak, strong = table.loc[("weak", "top-4", "de")], table.loc[("strong", "top-4", "de")]
    assert weak["gain_strict"] == pytest.approx(0.5 * 4, abs=0.1)
    assert strong["gain_strict"] == pytest.approx(1.5 * 4 + 1, abs=0.1)


def test_checkpoint_spread_measures_the_seed_to_seed_standard_deviation():
    rows = [{"kind": "transfer", "perturbation": "clean", "model": "m", "source": "en", "target": "kin",
             "teacher_train_size": 2000, "teacher_train_layers": 4, "teacher_checkpoint": policy, "f1": f1}
            for policy, values in (("best", [20, 40, 25, 35, 30]), ("average", [29, 31, 30, 30, 30]))
            for f1 in values]
    table = checkpoint_spread(pd.DataFrame(rows), n_resamples=300).set_index("teacher_checkpoint")
    assert table.loc["best", "sd"] == pytest.approx(np.std([20, 40, 25, 35, 30], ddof=1))
    assert table.loc["average", "sd"] < table.loc["best", "sd"] and table.loc["best", "sd_lo"] < table.loc["best", "sd"]
    assert table.loc["best", ["min_f1", "max_f1", "n_seeds"]].tolist() == [20, 40, 5]


def checkpoint_frame(policies: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    """Zero-shot rows of one English teacher setting: policy -> target -> F1 by seed 1, 2, ..."""
    return pd.DataFrame([
        {"kind": "transfer", "perturbation": "clean", "model": "m", "source": "en", "target": target, "seed": seed,
         "teacher_train_size": 2000, "teacher_train_layers": 4, "teacher_checkpoint": policy, "f1": f1}
        for policy, targets in policies.items() for target, values in targets.items()
        for seed, f1 in enumerate(values, start=1)])


def test_checkpoint_comparison_pairs_the_seeds_of_each_policy_with_the_default():
    best = {"kin": [20.0, 40.0, 25.0, 35.0, 30.0], "pl": [60.0, 70.0, 62.0, 68.0, 65.0]}
    # averaging pulls each seed halfway to the mean, and costs 1 F1 on pl
    average = {"kin": [25.0, 35.0, 27.5, 32.5, 30.0], "pl": [61.5, 66.5, 62.5, 65.5, 64.0]}
    table = checkpoint_comparison(checkpoint_frame({"best": best, "average": average}), n_resamples=500)
    rows = table.set_index(["policy", "target"])
    assert list(rows.index) == [("average", "kin"), ("average", "pl"), ("average", "all")]
    sd = {t: np.std(average[t], ddof=1) - np.std(best[t], ddof=1) for t in best}
    assert rows.loc[("average", "kin"), "sd_diff"] == pytest.approx(sd["kin"])
    assert rows.loc[("average", "all"), "sd_diff"] == pytest.approx((sd["kin"] + sd["pl"]) / 2)
    assert rows.loc[("average", "pl"), "f1_diff"] == pytest.approx(-1.0)
    assert rows.loc[("average", "all"), "f1_diff"] == pytest.approx(-0.5)
    # every resample of the seeds halves the spread: the paired CI lies below 0
    assert rows.loc[("average", "kin"), "sd_diff_hi"] < 0 and rows.loc[("average", "kin"), "n_seeds"] == 5
    lo, hi = rows.loc[("average", "kin"), ["f1_diff_lo", "f1_diff_hi"]]
    assert lo < 0 < hi  # kin's mean is the same under both: no difference to find


def test_checkpoint_comparison_leaves_out_seeds_a_policy_lacks_and_settings_without_the_default():
    best = {"kin": [20.0, 40.0, 25.0, 35.0]}
    frame = checkpoint_frame({"best": best, "last": {"kin": [30.0, 31.0, 29.0]}})
    row = checkpoint_comparison(frame, n_resamples=200).set_index("target").loc["kin"]
    assert row["n_seeds"] == 3 and row["sd_diff"] == pytest.approx(1.0 - np.std([20, 40, 25], ddof=1))
    assert checkpoint_comparison(frame[frame["teacher_checkpoint"] == "last"]).empty


def test_a_table_without_settings_is_named():
    with pytest.raises(XnerError, match="needs the columns"):
        with_settings(pd.DataFrame({"kind": ["student"], "perturbation": ["clean"]}))
