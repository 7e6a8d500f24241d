"""Analysis recovers known effects from synthetic results, and degrades with a reason, not a crash."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xner.analysis import (
    correlate,
    mixed_effects,
    robustness_overlap,
    robustness_table,
    transfer_correlates,
    uriel_distances,
    teacher_comparison,
    volume_correlations,
    volume_curves,
)
from xner.errors import XnerError

VOLUMES = (100, 200, 400, 800, 1600)
SLOPES = {"Bantu": (4.0, ("sw", "zu", "xh")), "Germanic": (2.0, ("af", "nl")), "Celtic": (1.0, ("cy",))}
"""Genus -> (F1 gained per doubling of volume, its targets)."""
FAST = {"n_resamples": 200, "seed": 0}


def sweep(
    slopes=SLOPES,
    noise: float = 1.0,
    seeds=(0, 1, 2),
    models=("embedded",),
    gain_columns: bool = True,
    teacher_volume: int = 300,
) -> pd.DataFrame:
    """Student rows with f1 = a_target + b_genus * log2(volume) + N(0, noise), plus the
    teacher's volume-0 row, whose F1 is the students' expected F1 at ``teacher_volume``;
    the table as the store would give it."""
    rng = np.random.default_rng(0)
    rows = []
    for model in models:
        for genus, (slope, targets) in slopes.items():
            for target in targets:
                level = rng.normal(40, 5)
                teacher = level + slope * np.log2(teacher_volume)
                for seed in seeds:
                    base = {"kind": "student", "model": model, "source": "en", "target": target,
                            "genus": genus, "seed": seed, "perturbation": "clean"}
                    rows.append({**base, "volume": 0, "f1": teacher, "f1_lo": teacher - 2, "f1_hi": teacher + 2})
                    for volume in VOLUMES:
                        f1 = level + slope * np.log2(volume) + rng.normal(0, noise)
                        rows.append({**base, "volume": volume, "f1": f1, "f1_lo": f1 - 2, "f1_hi": f1 + 2,
                                     "teacher_f1": teacher, "gain": f1 - teacher})
    table = pd.DataFrame(rows)
    return table if gain_columns else table.drop(columns=["teacher_f1", "gain"])


def expected_pearson(slope: float, noise: float) -> float:
    """Population correlation of log2(volume) and f1 for the balanced design above."""
    spread = np.std(np.log2(VOLUMES)) * slope
    return spread / np.hypot(spread, noise)


@pytest.fixture(scope="module")
def by_target() -> pd.DataFrame:
    return volume_correlations(sweep(), by="target", **FAST).set_index("target")


@pytest.fixture(scope="module")
def by_genus() -> pd.DataFrame:
    return volume_correlations(sweep(), by="genus", **FAST).set_index("genus")


@pytest.mark.parametrize("genus", sorted(SLOPES))
def test_within_target_correlation_and_slope_recovered(by_target, genus):
    slope, targets = SLOPES[genus]
    for target in targets:
        row = by_target.loc[target]
        assert row["f1_pearson"] == pytest.approx(expected_pearson(slope, 1.0), abs=0.12)
        assert row["f1_pearson_lo"] <= row["f1_pearson"] <= row["f1_pearson_hi"]
        assert row["f1_spearman_lo"] <= row["f1_spearman"] <= row["f1_spearman_hi"]
        assert row["slope_lo"] <= slope <= row["slope_hi"]
        assert row["f1_pearson_p"] < 0.01
        assert row["note"] == ""


@pytest.mark.parametrize("genus", ["Bantu", "Germanic"])
def test_genus_slope_controls_for_target_level(by_genus, genus):
    slope, targets = SLOPES[genus]
    row = by_genus.loc[genus]
    assert row["n_targets"] == len(targets)
    assert row["n_runs"] == len(targets) * len(VOLUMES) * 3
    assert row["slope_lo"] <= slope <= row["slope_hi"]
    # the gain removes each target's level, so it correlates more tightly than raw F1
    assert row["gain_pearson"] > row["f1_pearson"]
    assert row["gain_pearson"] == pytest.approx(expected_pearson(slope, 1.0), abs=0.05)


def test_genus_with_one_target_is_its_target_and_says_so(by_genus, by_target):
    celtic, welsh = by_genus.loc["Celtic"], by_target.loc["cy"]
    assert celtic["n_targets"] == 1 and "one target" in celtic["note"] and welsh["note"] == ""
    for column in ("f1_pearson", "gain_pearson", "slope", "slope_lo", "teacher_f1"):
        assert celtic[column] == pytest.approx(welsh[column])


def capped(cap: int | None, noise: float = 0.01) -> pd.DataFrame:
    """A sweep whose F1 rises 4 per doubling up to ``cap`` and is flat beyond it."""
    table = sweep(slopes={"Bantu": (4.0, ("sw", "zu"))}, noise=noise)
    if cap is not None:
        beyond = table["volume"] > cap
        table.loc[beyond, "f1"] -= 4.0 * np.log2(table.loc[beyond, "volume"] / cap)
        table["gain"] = table["f1"] - table["teacher_f1"]
    return table


@pytest.mark.parametrize(("cap", "flattens_at", "last"), [(400, 400, 0.0), (100, 100, 0.0), (None, None, 4.0)])
def test_where_the_curve_flattens(cap, flattens_at, last):
    for by in ("target", "genus"):
        table = volume_correlations(capped(cap), by=by, **FAST)
        expected = pd.NA if flattens_at is None else flattens_at
        assert table["flattens_at"].tolist() == [expected] * len(table)
        assert table["last_doubling"].to_numpy() == pytest.approx(last, abs=0.05)


def test_a_sliver_of_a_doubling_is_not_a_slope():
    """A whole pool just above the grid's last volume (1,700 after 1,600) with 0.4 F1 more: over
    0.09 doublings that would read 4.6 F1 per doubling; it is measured from 800 instead."""
    table = capped(100)
    pool = table[table["volume"] == max(VOLUMES)].assign(volume=1700)
    pool[["f1", "gain"]] += 0.4
    table = pd.concat([table, pool], ignore_index=True)
    result = volume_correlations(table, by="target", **FAST)
    assert result["flattens_at"].tolist() == [100, 100]
    assert result["last_doubling"].to_numpy() == pytest.approx(0.4 / np.log2(1700 / 800), abs=0.05)


def test_a_partial_seed_does_not_fake_a_step():
    """Seed 2's teacher (and students) sit 20 F1 lower and its curve stops at 400: the mean F1
    over seeds would rise by 6.7 from 400 to 800; the curve itself is flat from 100."""
    table = capped(100)
    table.loc[table["seed"] == 2, ["f1", "teacher_f1"]] -= 20.0
    table = table[(table["seed"] != 2) | (table["volume"] <= 400)]
    result = volume_correlations(table, by="target", **FAST)
    assert result["flattens_at"].tolist() == [100, 100]
    assert result["last_doubling"].to_numpy() == pytest.approx(0.0, abs=0.05)


def two_teachers(shift: float = 3.0) -> pd.DataFrame:
    """Every target also has a closer teacher ("nl") whose zero-shot and students are ``shift``
    F1 above English's, seed by seed."""
    english = sweep(slopes={"Bantu": (4.0, ("sw", "zu")), "Celtic": (1.0, ("cy",))})
    close = english.assign(source="nl", f1=english["f1"] + shift, f1_lo=english["f1_lo"] + shift,
                           f1_hi=english["f1_hi"] + shift, teacher_f1=english["teacher_f1"] + shift)
    return pd.concat([english, close], ignore_index=True)


def teacher_per_seed(spread: float = 8.0) -> pd.DataFrame:
    """Two teachers per target, and each seed's teacher model at its own level (spread ``spread``
    F1): as in the volume study, where English teachers of one target differ by up to 20 F1
    between seeds. Students keep their teacher model's level and the genus's slope."""
    table = two_teachers(shift=20.0)
    offsets = np.random.default_rng(1).normal(0, spread, size=len(table))
    model_offset = table.groupby(["target", "source", "seed"]).ngroup().map(dict(enumerate(offsets)))
    return table.assign(**{c: table[c] + model_offset for c in ("f1", "f1_lo", "f1_hi", "teacher_f1")})


@pytest.mark.parametrize("by", ["target", "genus"])
def test_close_teacher_against_english(by):
    table = teacher_comparison(two_teachers(3.0), by=by, **FAST)
    assert len(table) == (3 if by == "target" else 2)
    assert (table["source"] == "nl").all() and (table["reference"] == "en").all()
    for column in ("teacher_diff", "full_diff", "mean_diff"):
        assert table[column].to_numpy() == pytest.approx(3.0)
    assert (table["full_volume"] == max(VOLUMES)).all()
    assert (table["full_diff_lo"] <= 3.0 + 1e-9).all() and (table["full_diff_hi"] >= 3.0 - 1e-9).all()
    assert table["slope"].to_numpy() == pytest.approx(table["reference_slope"].to_numpy())
    if by == "genus":
        assert table.set_index("genus")["n_targets"].to_dict() == {"Bantu": 2, "Celtic": 1}


def test_teacher_comparison_needs_the_reference_teacher():
    assert teacher_comparison(two_teachers(), reference="fr", **FAST).empty
    with pytest.raises(XnerError, match="genus, target"):
        teacher_comparison(two_teachers(), by="language")


@pytest.mark.parametrize(
    ("teacher_volume", "first_win"),
    [(150, 200), (300, 400), (1000, 1600), (5000, None)],
)
def test_volume_at_which_student_first_beats_teacher(teacher_volume, first_win):
    table = volume_correlations(sweep(noise=0.01, teacher_volume=teacher_volume), by="target", **FAST)
    expected = pd.NA if first_win is None else first_win
    assert table["beats_teacher_at"].tolist() == [expected] * len(table)


def test_teacher_and_gain_filled_from_volume_zero_rows():
    full = volume_correlations(sweep(), **FAST)
    derived = volume_correlations(sweep(gain_columns=False), **FAST)
    for column in ("teacher_f1", "gain_pearson", "gain_spearman_lo", "beats_teacher_at"):
        pd.testing.assert_series_equal(full[column], derived[column])


def test_table_without_seeds_is_one_run_per_cell():
    table = sweep(seeds=(0,)).drop(columns="seed")
    assert volume_correlations(table, by="target", **FAST)["slope"].notna().all()
    assert mixed_effects(table).random == "(1 | target)"


def test_unknown_grouping_lists_valid_ones():
    with pytest.raises(XnerError, match="genus, target"):
        volume_correlations(sweep(), by="language")


def test_table_without_sweep_gives_empty_result():
    assert volume_correlations(sweep().query("volume == 0")).empty


@pytest.mark.parametrize(
    ("x", "y", "pearson"),
    [
        ([1, 2], [3, 4], np.nan),  # too few pairs
        ([1, 1, 1, 1], [1, 2, 3, 4], np.nan),  # constant x
        ([1, 2, 3, 4], [5, 5, 5, 5], np.nan),  # constant y
        ([1, 2, 3, 4], [2, 4, 6, 8], 1.0),
        ([1, 2, 3, 4], [8, 6, 4, 2], -1.0),
        ([1, 2, np.nan, 4, 5], [1, 2, 3, 4, 5], 1.0),  # NaN pair dropped
    ],
)
def test_correlate_edge_cases(x, y, pearson):
    result = correlate(x, y, n_resamples=50)
    if np.isnan(pearson):
        assert all(np.isnan(v) for v in result.values())
    else:
        assert result["pearson"] == pytest.approx(pearson)
        assert result["spearman"] == pytest.approx(pearson)


def test_volume_curves_average_seeds_and_keep_teacher():
    curves = volume_curves(sweep(), **FAST)
    assert set(curves["volume"]) == {0, *VOLUMES}
    assert (curves["n_seeds"] == 3).all()
    sweep_rows = curves[curves["volume"] > 0]
    assert (sweep_rows["f1_lo"] <= sweep_rows["f1"]).all() and (sweep_rows["f1"] <= sweep_rows["f1_hi"]).all()
    assert set(curves.loc[curves["volume"] == 0, "ci"]) == {"test set"}  # identical seeds


def test_mixed_model_recovers_each_genus_slope():
    fit = mixed_effects(sweep())
    assert fit.fitted and fit.formula == "f1 ~ log2_volume * C(genus)"
    slopes = fit.genus_slopes.set_index("genus")
    for genus, (slope, _) in SLOPES.items():
        assert slopes.loc[genus, "lo"] <= slope <= slopes.loc[genus, "hi"]
        assert slopes.loc[genus, "slope"] == pytest.approx(slope, abs=0.3)
    assert "log2_volume" in fit.coefficients["term"].tolist()
    assert "Mixed Linear Model" in fit.summary


def test_mixed_model_absorbs_each_teacher_models_level():
    fit = mixed_effects(teacher_per_seed())
    assert fit.random == "(1 | target) + (1 | target:teacher)"
    slopes = fit.genus_slopes.set_index("genus")
    for genus, slope in {"Bantu": 4.0, "Celtic": 1.0}.items():
        assert slopes.loc[genus, "lo"] <= slope <= slopes.loc[genus, "hi"]
        # teacher levels 8 F1 apart left in the residual would make this interval ~4 F1 wide
        assert slopes.loc[genus, "hi"] - slopes.loc[genus, "lo"] < 1.5
    assert mixed_effects(sweep(seeds=(0,))).random == "(1 | target)"


def test_slope_per_target_absorbs_each_teacher_models_level():
    table = volume_correlations(teacher_per_seed(), by="target", **FAST)
    assert len(table) == 6
    expected = table["target"].map({"sw": 4.0, "zu": 4.0, "cy": 1.0})
    assert ((table["slope_lo"] <= expected) & (expected <= table["slope_hi"])).all()
    assert (table["slope_hi"] - table["slope_lo"] < 1.5).all()


@pytest.mark.parametrize(
    ("slopes", "fitted", "message"),
    [
        ({"Celtic": (1.0, ("cy",))}, False, "too few targets"),
        ({"Bantu": (4.0, ("sw", "zu", "xh"))}, True, "one genus"),
    ],
)
def test_mixed_model_degenerate_designs_explained(slopes, fitted, message):
    fit = mixed_effects(sweep(slopes=slopes))
    assert fit.fitted is fitted
    assert message in fit.note
    if fitted:
        assert fit.formula == "f1 ~ log2_volume"
        assert fit.genus_slopes["lo"].iloc[0] <= 4.0 <= fit.genus_slopes["hi"].iloc[0]


def test_mixed_model_one_volume_not_fitted():
    fit = mixed_effects(sweep().query("volume in (0, 400)"))
    assert not fit.fitted and "one volume" in fit.summary


def test_mixed_model_needs_a_model_when_several():
    table = sweep(models=("embedded", "xlm-roberta-base"))
    with pytest.raises(XnerError, match="embedded, xlm-roberta-base"):
        mixed_effects(table)
    with pytest.raises(XnerError, match="unknown model"):
        mixed_effects(table, model="mbert")
    assert mixed_effects(table, model="embedded").fitted


OVERLAP = {("fr", "br"): 40.0, ("es", "ca"): 80.0, ("ar", "fa"): 10.0, ("cs", "sk"): 70.0, ("id", "ms"): 55.0}


def transfer_rows(noise: float = 0.5) -> pd.DataFrame:
    """Transfer F1 = 30 + 0.6 * entity overlap + noise, two seeds per pair."""
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        [
            {"kind": "transfer", "model": "embedded", "source": s, "target": t, "genus": "x",
             "seed": seed, "perturbation": "clean", "f1": 30 + 0.6 * overlap + rng.normal(0, noise),
             "entity_overlap": overlap, "train_size": 1000}
            for (s, t), overlap in OVERLAP.items()
            for seed in (0, 1)
        ]
    )


def test_transfer_correlates_recover_overlap_effect():
    covariates = pd.DataFrame(
        {"source": ["fr", "es", "ar", "cs"], "target": ["br", "ca", "fa", "sk"], "distance": [0.9, 0.1, 1.0, 0.1]}
    )
    table = transfer_correlates(transfer_rows(), covariates, **FAST).set_index("covariate")
    overlap = table.loc["entity_overlap"]
    assert overlap["n_pairs"] == len(OVERLAP)
    assert overlap["pearson"] > 0.99 and overlap["pearson_lo"] <= overlap["pearson"] <= overlap["pearson_hi"]
    assert overlap["slope"] == pytest.approx(0.6, abs=0.02)
    assert overlap["slope_lo"] <= overlap["slope"] <= overlap["slope_hi"]
    assert table.loc["distance", "n_pairs"] == 4  # id->ms has no covariate value
    assert np.isnan(table.loc["train_size", "pearson"])  # constant: no correlation


def test_transfer_correlates_empty_without_transfer_rows():
    assert transfer_correlates(sweep(), pd.DataFrame(columns=["source", "target"])).empty


@pytest.mark.slow
def test_uriel_distances_offline():
    pairs = [("es", "ca"), ("ar", "hi"), ("en+nl", "af")]
    table = uriel_distances(pairs, kinds=("syntactic",)).set_index(["source", "target"])
    assert list(table.columns) == ["uriel_syntactic"]
    assert table.loc[("es", "ca"), "uriel_syntactic"] < table.loc[("ar", "hi"), "uriel_syntactic"]
    assert table.loc[("en+nl", "af")].isna().all()  # a teacher set has no single distance


@pytest.mark.slow
def test_uriel_vectors_are_read_from_the_cache_by_a_later_process(tmp_path, monkeypatch):
    from xner import typology

    monkeypatch.setenv("XNER_CACHE", str(tmp_path))
    typology._vectors.cache_clear()
    first = typology.uriel_distance("spa", "cat", ("syntax_knn",))
    assert len(list((tmp_path / "uriel").glob("*.npz"))) == 1
    # a new process: nothing in memory, and lang2vec is not asked again
    typology._vectors.cache_clear()
    monkeypatch.setattr(typology, "_lang2vec", lambda: pytest.fail("lang2vec read again despite the cache"))
    assert typology.uriel_distance("spa", "cat", ("syntax_knn",)) == first
    # a damaged entry is recomputed, not trusted
    typology._vectors.cache_clear()
    monkeypatch.undo()
    monkeypatch.setenv("XNER_CACHE", str(tmp_path))
    next((tmp_path / "uriel").glob("*.npz")).write_bytes(b"not an npz")
    assert typology.uriel_distance("spa", "cat", ("syntax_knn",)) == first
    typology._vectors.cache_clear()


def test_uriel_distance_kind_checked():
    with pytest.raises(XnerError, match="featural, genetic, geographic, inventory, phonological, syntactic"):
        uriel_distances([("es", "ca")], kinds=("lexical",))


def hand_robustness(seeds: dict[int, dict[tuple[str, str], float]]) -> pd.DataFrame:
    """Per seed, F1 of (kind, perturbation); every CI is F1 +- 2."""
    rows = []
    for seed, scores in seeds.items():
        for (kind, perturbation), f1 in scores.items():
            source = "br" if kind == "native" else "fr"
            rows.append({"kind": kind, "model": "embedded", "source": source, "target": "br", "genus": "Celtic",
                         "seed": seed, "perturbation": perturbation, "f1": f1, "f1_lo": f1 - 2, "f1_hi": f1 + 2})
    return pd.DataFrame(rows)


ONE_SEED = {
    ("native", "clean"): 90.0, ("native", "unseen-entity"): 78.0,
    ("transfer", "clean"): 50.0, ("transfer", "unseen-entity"): 46.0,
}


def test_robustness_drop_from_one_seed_uses_test_set_intervals():
    table = robustness_table(hand_robustness({0: ONE_SEED}), **FAST).set_index("kind")
    native, transfer = table.loc["native"], table.loc["transfer"]
    assert (native["clean_f1"], native["perturbed_f1"], native["drop"]) == (90.0, 78.0, 12.0)
    # two independent +-2 intervals: the drop's half-width is sqrt(2) * 2
    assert native["drop_lo"] == pytest.approx(12 - 2 * np.sqrt(2))
    assert native["drop_hi"] == pytest.approx(12 + 2 * np.sqrt(2))
    assert native["drop_ci"] == "test set"
    assert transfer["drop"] == 4.0 and transfer["native_drop"] == 12.0
    assert bool(transfer["transfer_degrades_less"]) is True
    assert pd.isna(native["transfer_degrades_less"])


def test_robustness_drop_pairs_seeds_and_bootstraps_over_them():
    second = {**ONE_SEED, ("native", "clean"): 92.0, ("transfer", "unseen-entity"): 40.0}  # drops 14 and 10
    table = robustness_table(hand_robustness({0: ONE_SEED, 1: second}), **FAST).set_index("kind")
    native, transfer = table.loc["native"], table.loc["transfer"]
    assert native["drop"] == 13.0 and native["n_seeds"] == 2 and native["drop_ci"] == "seeds"
    assert 12.0 <= native["drop_lo"] <= native["drop_hi"] <= 14.0
    assert transfer["drop"] == 7.0
    assert bool(transfer["transfer_degrades_less"]) is True


@pytest.mark.parametrize(
    "scores",
    [
        {("native", "clean"): 90.0},  # nothing perturbed
        {("native", "unseen-entity"): 80.0},  # no clean counterpart
    ],
)
def test_robustness_without_pairs_is_empty(scores):
    assert robustness_table(hand_robustness({0: scores})).empty


def overlap_models(slope: float, noise: float, n: int = 12) -> pd.DataFrame:
    """n (native or transfer) models of different targets whose P1 drop = slope * overlap + noise."""
    rng = np.random.default_rng(3)
    rows = []
    for i, overlap in enumerate(rng.uniform(0, 40, n)):
        kind, target = ("native" if i % 2 else "transfer"), f"t{i}"
        drop = slope * overlap + rng.normal(0, noise)
        for perturbation, f1 in (("clean", 70.0), ("unseen-entity", 70.0 - drop)):
            rows.append({"kind": kind, "model": "embedded", "source": "s" if kind == "transfer" else target,
                         "target": target, "seed": 0, "perturbation": perturbation, "f1": f1, "f1_lo": f1 - 1,
                         "f1_hi": f1 + 1, "entity_overlap": overlap})
    return pd.DataFrame(rows)


def test_drop_vs_overlap_recovers_a_proportional_drop_and_not_noise():
    strong = robustness_overlap(overlap_models(slope=0.4, noise=0.3), **FAST).iloc[0]
    assert (strong["perturbation"], strong["n_models"]) == ("unseen-entity", 12)
    assert strong["pearson"] > 0.95 and strong["pearson_lo"] > 0.8 and strong["pearson_p"] < 1e-4
    unrelated = robustness_overlap(overlap_models(slope=0.0, noise=3.0), **FAST).iloc[0]
    assert abs(unrelated["pearson"]) < 0.6 and unrelated["pearson_lo"] < 0 < unrelated["pearson_hi"]
    assert robustness_overlap(overlap_models(0.4, 0.3).drop(columns="entity_overlap")).empty


def test_volume_correlations_group_by_genus_or_by_family():
    """Germanic and Celtic are both Indo-European: by family they pool, Bantu stays alone."""
    family = {"Bantu": "Niger-Congo", "Germanic": "Indo-European", "Celtic": "Indo-European"}
    table = sweep().assign(family=lambda t: t["genus"].map(family))
    by_family = volume_correlations(table, by="family", **FAST).set_index("family")
    assert by_family["n_targets"].to_dict() == {"Indo-European": 3, "Niger-Congo": 3}
    by_genus = volume_correlations(table, by="genus", **FAST).set_index("genus")
    assert by_family.loc["Niger-Congo", "f1_pearson"] == pytest.approx(by_genus.loc["Bantu", "f1_pearson"])
    with pytest.raises(XnerError, match="grouping by family needs result columns family"):
        volume_correlations(sweep(), by="family", **FAST)
