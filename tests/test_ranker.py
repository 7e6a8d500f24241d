"""The teacher ranker: ranking metrics, leave-one-target-out quality against baselines, the
ranker file, teacher signals from a store, and `recommend` on a toy data root."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from xner.errors import XnerError
from xner.ranker import (
    METHODS,
    Ranker,
    fit_ranker,
    leave_one_target_out,
    ranking_metrics,
    signals_table,
    train_ranker,
    transfer_matrix,
)
from xner.transfer_features import DATA_FEATURES

SOURCES = ["en", "swa", "yor", "ibo", "hau", "zul"]
TARGETS = ["kin", "xho", "sna", "lug", "ewe", "fon", "twi", "wol"]


def synthetic_pairs(noise: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """F1 falls with URIEL distance and rises with overlap; English is never the best."""
    rng = np.random.default_rng(seed)
    rows = []
    for target in TARGETS:
        for source in SOURCES:
            features = {name: rng.uniform(0, 1) for name in DATA_FEATURES}
            features["subword_overlap"] = rng.uniform(20, 80)
            f1 = 70 - 40 * features["uriel_featural"] + 0.2 * features["subword_overlap"] + rng.normal(0, noise)
            rows.append({"source": source, "target": target, "f1": f1 - (15 if source == "en" else 0), **features})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("f1", "scores", "expected"), [
    ([30, 50, 40], [0.1, 0.2, 0.9], {"top1": 0.0, "regret": 10.0, "recommended_f1": 40.0, "best_f1": 50.0}),
    ([30, 50, 40], [0.1, 0.9, 0.2], {"top1": 1.0, "regret": 0.0, "ndcg": 1.0}),
    ([50, 50], [1.0, 0.0], {"top1": 1.0, "regret": 0.0}),  # a tie for best: either is right
    ([42], [0.0], {"top1": 1.0, "ndcg": 1.0}),
])
def test_ranking_metrics(f1, scores, expected):
    metrics = ranking_metrics(f1, scores)
    assert {k: metrics[k] for k in expected} == pytest.approx(expected)
    assert 0 <= metrics["ndcg"] <= 1


def test_ndcg_falls_as_the_ranking_worsens():
    f1 = [10.0, 20.0, 30.0, 40.0, 50.0]
    perfect, reversed_ = ranking_metrics(f1, f1)["ndcg"], ranking_metrics(f1, [-x for x in f1])["ndcg"]
    assert perfect == pytest.approx(1.0) and reversed_ < 0.7


def test_leave_one_target_out_learns_what_the_baselines_miss():
    results = leave_one_target_out(synthetic_pairs())
    assert set(results["method"]) == set(METHODS) and len(results) == len(METHODS) * len(TARGETS)
    mean = results.groupby("method")[["regret", "top1"]].mean()
    assert mean.loc["ridge (data features only)", "regret"] < 3
    assert mean.loc["always English", "regret"] > 10 and mean.loc["always English", "top1"] == 0
    assert mean.loc["ridge (data features only)", "regret"] < mean.loc["largest subword overlap", "regret"]


def test_leave_one_target_out_names_the_runner_up():
    pairs = synthetic_pairs()
    results = leave_one_target_out(pairs).set_index(["method", "target"])
    for target in TARGETS:
        by_overlap = pairs[pairs["target"] == target].nlargest(2, "subword_overlap")["source"].tolist()
        assert results.loc[("largest subword overlap", target), ["recommended", "second"]].tolist() == by_overlap


def student_rows(target: str, source: str, f1s: dict[int, tuple[float, float]]) -> list[dict]:
    """Per seed: the volume-0 teacher baseline and a student at 2,000 sentences, F1 +- 1."""
    return [{"kind": "student", "model": "embedded", "genus": "Bantu", "source": source, "target": target,
             "volume": volume, "seed": seed, "perturbation": "clean", "f1": f1, "f1_lo": f1 - 1, "f1_hi": f1 + 1,
             "teacher_f1": np.nan, "gain": np.nan}
            for seed, (teacher, student) in f1s.items() for volume, f1 in ((0, teacher), (2000, student))]


def test_ensemble_experiment_pairs_the_top2_set_with_the_top1_by_seed():
    from xner.recommend import ensemble_experiment

    method = "lambdarank (data features only)"

    per_target = pd.DataFrame([
        {"method": method, "target": "kin", "recommended": "swa", "second": "xho"},
        {"method": method, "target": "zul", "recommended": "xho", "second": "swa"},
        {"method": method, "target": "ewe", "recommended": "twi", "second": "fon"},  # not measured
        {"method": "always English", "target": "kin", "recommended": "en", "second": "swa"},
    ])
    frame = pd.DataFrame(
        student_rows("kin", "swa", {1: (50, 52), 2: (50, 54)}) + student_rows("kin", "xho+swa", {1: (55, 56), 2: (55, 58)})
        + student_rows("zul", "xho", {1: (60, 61), 2: (60, 61)}) + student_rows("zul", "swa+xho", {1: (58, 60), 2: (58, 60)})
        + student_rows("kin", "en", {1: (30, 33), 2: (30, 33)}))
    table = ensemble_experiment(frame, per_target, method).set_index("target")
    assert list(table.index) == ["kin", "zul", "mean"]
    assert table.loc["kin", ["top1", "ensemble"]].tolist() == ["swa", "xho+swa"]
    assert table.loc["kin", "teacher_diff"] == pytest.approx(5.0) and table.loc["kin", "full_diff"] == pytest.approx(4.0)
    assert table.loc["zul", "full_diff"] == pytest.approx(-1.0)
    assert table.loc["mean", "full_diff"] == pytest.approx(1.5) and table.loc["mean", "n_targets"] == 2
    assert table.loc["mean", "full_diff_lo"] < 1.5 < table.loc["mean", "full_diff_hi"]
    assert ensemble_experiment(frame[frame["target"] == "ewe"], per_target, method).empty


def test_leave_one_target_out_needs_three_targets():
    pairs = synthetic_pairs().query("target in ['kin', 'xho']")
    with pytest.raises(XnerError, match="at least 3 targets, got 2"):
        leave_one_target_out(pairs)


def test_quality_summary_has_a_ci_over_targets():
    from xner.ranker import quality_summary

    summary = quality_summary(leave_one_target_out(synthetic_pairs()), n_resamples=200).set_index("method")
    english = summary.loc["always English"]
    assert english["n_targets"] == len(TARGETS) and english["regret_lo"] <= english["regret"] <= english["regret_hi"]
    assert summary.index[0] != "always English"  # sorted by regret, best first
    assert set(summary["targets"]) == {"all"}


def test_quality_summary_also_per_dataset_of_the_targets():
    from xner.ranker import quality_summary

    pairs = synthetic_pairs().assign(dataset=lambda t: np.where(t["target"].isin(["kin", "xho", "sna"]), "a", "b"))
    summary = quality_summary(leave_one_target_out(pairs), n_resamples=200)
    assert list(dict.fromkeys(summary["targets"])) == ["all", "a", "b"]
    english = summary[summary["method"] == "always English"].set_index("targets")
    assert english["n_targets"].to_dict() == {"all": len(TARGETS), "a": 3, "b": len(TARGETS) - 3}
    per_target = leave_one_target_out(pairs)
    mean_a = per_target[(per_target["method"] == "always English") & (per_target["dataset"] == "a")]["regret"].mean()
    assert english.loc["a", "regret"] == pytest.approx(mean_a)


def test_feature_correlations_find_the_signal():
    from xner.analysis import feature_correlations
    from xner.ranker import SIGNAL_FEATURES

    table = feature_correlations(synthetic_pairs(), (*DATA_FEATURES, *SIGNAL_FEATURES), n_resamples=200).set_index("feature")
    assert table.loc["uriel_featural", "pearson"] < -0.3 and table.loc["uriel_featural", "pearson_hi"] < 0
    assert "teacher_confidence" not in table.index  # not measured: not reported


def test_the_held_out_target_never_trains_its_ranker(monkeypatch):
    seen = []
    pairs = synthetic_pairs()
    spy = {"spy": lambda train, test: seen.append((set(train["target"]), set(test["target"]))) or np.zeros(len(test))}
    leave_one_target_out(pairs, spy)
    assert len(seen) == len(TARGETS) and all(test.isdisjoint(train) and len(test) == 1 for train, test in seen)


def test_ranker_predicts_its_training_relation_and_round_trips(tmp_path):
    pairs = synthetic_pairs(noise=0.5).query("source != 'en'")  # English's offset is no feature: left out
    ranker = train_ranker(pairs, DATA_FEATURES, trained_on={"datasets": {"en": "wikiann"}})
    assert 0 < ranker.half_width < 5
    again = Ranker.load(ranker.save(tmp_path / "ranker.json"))
    np.testing.assert_allclose(again.predict(pairs), ranker.predict(pairs))
    ranked = again.recommend(pairs[pairs["target"] == "kin"])
    assert ranked["rank"].tolist() == [1, 2, 3, 4, 5] and ranked["predicted_f1"].is_monotonic_decreasing
    assert (ranked["predicted_hi"] - ranked["predicted_lo"]).round(6).eq(round(2 * ranker.half_width, 6)).all()


def test_a_lambdarank_ranker_ranks_as_its_booster_and_round_trips(tmp_path):
    pairs = synthetic_pairs(noise=0.5).query("source != 'en'")
    ranker = train_ranker(pairs, DATA_FEATURES, kind="lambdarank")
    assert ranker.kind == "lambdarank" and 0 < ranker.half_width < 20
    again = Ranker.load(ranker.save(tmp_path / "ranker.json"))
    np.testing.assert_allclose(again.score(pairs), ranker.score(pairs))
    intercept, slope = again.model["calibration"]
    assert slope > 0  # the predicted F1 is a rising line of the score: same order
    ranked = again.recommend(pairs[pairs["target"] == "kin"])
    assert ranked["predicted_f1"].is_monotonic_decreasing
    # leaving each target out, it finds what the features say (F1 falls with distance)
    quality = leave_one_target_out(pairs, {"lambdarank": lambda train, test: fit_ranker(
        train, DATA_FEATURES, kind="lambdarank").score(test)})
    assert quality["regret"].mean() < 5


def test_a_version_1_ranker_file_loads_as_ridge(tmp_path):
    ridge = fit_ranker(synthetic_pairs(), ["uriel_featural", "subword_overlap"], half_width=3.0)
    old = {"format": "xner.ranker.v1", "features": list(ridge.features), **ridge.model, "half_width": 3.0,
           "trained_on": {}}
    (tmp_path / "old.json").write_text(json.dumps(old))
    loaded = Ranker.load(tmp_path / "old.json")
    assert loaded.kind == "ridge" and loaded.model == ridge.model and loaded.half_width == 3.0


def test_an_unknown_ranker_kind_is_named():
    with pytest.raises(XnerError, match="unknown ranker kind 'svm'"):
        fit_ranker(synthetic_pairs(), ["uriel_featural"], kind="svm")


def test_missing_features_count_as_the_training_mean():
    pairs = synthetic_pairs()
    ranker = fit_ranker(pairs, ["uriel_featural", "subword_overlap"])
    row = pd.DataFrame([{"uriel_featural": np.nan, "subword_overlap": np.nan}])
    assert ranker.predict(row)[0] == pytest.approx(pairs["f1"].mean())


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "cannot read the ranker"),
    ('{"format": "other.v9"}', "not a ranker file of format xner.ranker.v2"),
    ('{"format": "xner.ranker.v2", "features": []}', "malformed ranker file"),
    ('{"format": "xner.ranker.v2", "kind": "svm", "features": [], "model": {}, "half_width": 1}',
     "unknown ranker kind 'svm'"),
])
def test_a_bad_ranker_file_is_named(tmp_path, content, message):
    path = tmp_path / "ranker.json"
    path.write_text(content)
    with pytest.raises(XnerError, match=message) as err:
        Ranker.load(path)
    assert str(path) in str(err.value)


def _signals(source, target, seed, tags):
    spec = SimpleNamespace(params={"source": source, "target": target, "seed": seed})
    metrics = {"teacher_confidence": 0.9, "teacher_entropy": 0.1, "entity_rate_ratio": 1.0, "tags": tags,
               "labels": ["O", "B-PER", "I-PER"]}
    return SimpleNamespace(spec=spec, metrics=metrics)


def test_signals_table_adds_agreement_among_each_targets_teachers():
    records = [_signals("en", "kin", 1, "12|0"), _signals("swa", "kin", 1, "12|0"), _signals("yor", "kin", 1, "00|1"),
               _signals("en", "kin", 2, "12|0"), _signals("swa", "kin", 2, "00|0"), _signals("yor", "kin", 2, "00|0")]
    table = signals_table(records).set_index("source")
    # seed 1: en 50, swa 50, yor 0; seed 2: en 0 (no shared chunk), swa 50 (empty vs en: 0, vs yor: 100), yor 50
    assert table["teacher_agreement"].to_dict() == {"en": 25.0, "swa": 50.0, "yor": 25.0}


def test_transfer_matrix_means_seeds_and_keeps_their_spread():
    frame = pd.DataFrame([
        {"model": "m", "source": s, "target": "kin", "kind": k, "perturbation": p, "f1": f, "f1_lo": f - 2,
         "f1_hi": f + 2, "f1_strict": f + 1}
        for s, k, p, f in [("en", "transfer", "clean", 20.0), ("en", "transfer", "clean", 40.0),
                           ("swa", "transfer", "clean", 50.0), ("kin", "native", "clean", 80.0),
                           ("en", "transfer", "mask-entity.v1", 5.0)]
    ])
    table = transfer_matrix(frame).set_index("source")
    assert table.loc["en", ["f1", "f1_min", "f1_max", "n_seeds", "f1_strict"]].tolist() == [30.0, 20.0, 40.0, 2, 31.0]
    assert table.loc["kin", "kind"] == "native" and table.loc["swa", "f1_lo"] == 48.0


@pytest.mark.slow
def test_recommend_ranks_the_candidates_of_a_toy_root(data_root):
    from xner.recommend import recommend

    pairs = synthetic_pairs()
    ranker = train_ranker(pairs, DATA_FEATURES, trained_on={"datasets": {"de": "wikiann", "swa": "masakhaner2"},
                                                             "label_map": {"DATE": "O"}, "model": None})
    ranked = recommend("nl", dataset="wikiann", ranker=ranker, data_dir=data_root)
    assert ranked["source"].tolist() in (["de", "swa"], ["swa", "de"]) and ranked["rank"].tolist() == [1, 2]
    assert ranked.set_index("source").loc["swa", "source_entity_density"] > 0
    with pytest.raises(XnerError, match=r"no dataset known for candidate\(s\) \['fr'\]"):
        recommend("nl", dataset="wikiann", ranker=ranker, data_dir=data_root, candidates=["fr"])
    # unlabeled text from a file instead of a split: the overlap features follow the text
    text = data_root / "nl.txt"
    text.write_text("Hopper quux\nzork was\n", encoding="utf-8")  # half of its words unseen anywhere
    from_file = recommend("nl", unlabeled=text, ranker=ranker, data_dir=data_root).set_index("source")
    assert from_file.loc["de", "word_overlap"] == pytest.approx(50.0) and ranked["word_overlap"].eq(100.0).all()
    with pytest.raises(XnerError, match="give --unlabeled FILE or --dataset"):
        recommend("nl", ranker=ranker, data_dir=data_root)


def test_pair_features_from_profiles_equal_the_direct_overlaps(data_root):
    from xner.data import load_split
    from xner.metrics import subword_overlap
    from xner.models.backbone import load_backbone
    from xner.transfer_features import SourceProfile, pair_features, word_overlap

    tokenizer = load_backbone("tiny").tokenizer
    source, target = load_split("de", "train", data_dir=data_root), load_split("nl", "test", data_dir=data_root)
    profile = SourceProfile.of(source, tokenizer)
    assert SourceProfile.from_json(json.loads(json.dumps(profile.to_json()))) == profile
    [row] = pair_features({"de": profile}, "nl", target, tokenizer=tokenizer).to_dict("records")
    assert row["word_overlap"] == pytest.approx(word_overlap(source, target))
    assert row["subword_overlap"] == pytest.approx(subword_overlap(source, target, tokenizer)["subword_overlap_tokens"])
    assert row["source_train_log10"] == pytest.approx(np.log10(len(source)))
    without_tokenizer = pair_features({"de": SourceProfile.of(source)}, "nl", target)
    assert without_tokenizer["subword_overlap"].isna().all()


@pytest.mark.slow
def test_recommend_profiles_a_source_once_until_its_file_changes(data_root, tmp_path, monkeypatch):
    from xner.recommend import recommend
    from xner.transfer_features import SourceProfile

    monkeypatch.setenv("XNER_CACHE", str(tmp_path / "cache"))
    profiled = []
    original = SourceProfile.of.__func__
    monkeypatch.setattr(SourceProfile, "of", classmethod(lambda cls, s, *a: profiled.append(len(s)) or original(cls, s, *a)))
    ranker = train_ranker(synthetic_pairs(), DATA_FEATURES, trained_on={
        "datasets": {"de": "wikiann", "swa": "masakhaner2"}, "label_map": {"DATE": "O"}, "model": "tiny"})
    first = recommend("nl", dataset="wikiann", ranker=ranker, data_dir=data_root)
    assert len(profiled) == 2
    assert recommend("nl", dataset="wikiann", ranker=ranker, data_dir=data_root).equals(first) and len(profiled) == 2
    # new train text is a new profile: the cache follows the file's content
    train = data_root / "wikiann" / "de" / "train.conllu"
    lines = train.read_text(encoding="utf-8").split("\n\n")
    train.write_text("\n\n".join(lines[: len(lines) // 2]) + "\n\n", encoding="utf-8")
    changed = recommend("nl", dataset="wikiann", ranker=ranker, data_dir=data_root).set_index("source")
    assert len(profiled) == 3 and changed.loc["de", "source_train_log10"] < first.set_index("source").loc["de", "source_train_log10"]
    # a damaged cache entry is recomputed
    for entry in (tmp_path / "cache" / "source-profiles").glob("*.json"):
        entry.write_text("{broken", encoding="utf-8")
    recommend("nl", dataset="wikiann", ranker=ranker, data_dir=data_root)
    assert len(profiled) == 5


@pytest.mark.slow
def test_the_shipped_ranker_recommends_teachers_for_kin_on_the_real_data(real_data):
    from typer.testing import CliRunner

    from xner.cli import app
    from xner.ranker import SHIPPED_RANKER

    shipped = Ranker.load(SHIPPED_RANKER)
    assert shipped.features == DATA_FEATURES and shipped.trained_on["label_map"] == {"DATE": "O"}
    result = CliRunner().invoke(app, ["recommend", "--target", "kin", "--dataset", "masakhaner2",
                                      "--data-dir", str(real_data), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output, parse_constant=lambda constant: pytest.fail(f"{constant} is not JSON"))
    assert sorted(row["source"] for row in rows) == sorted(set(shipped.trained_on["datasets"]) - {"kin"})  # not itself
    assert {row["source"]: row for row in rows}["twi"]["uriel_genetic"] is None  # URIEL has no Twi genus: null
    assert [row["rank"] for row in rows] == list(range(1, len(rows) + 1))
    # Kinyarwanda's Bantu neighbour shares more of its subwords and ranks above English
    by_source = {row["source"]: row for row in rows}
    assert by_source["swa"]["subword_overlap"] > by_source["en"]["subword_overlap"]
    assert by_source["swa"]["rank"] < by_source["en"]["rank"]
