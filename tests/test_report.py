"""The report folder: every file written and valid, the HTML self-contained, gaps explained."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from PIL import Image
from typer.testing import CliRunner

from xner.cli import app
from xner.errors import XnerError
from xner.analysis import volume_curves
from xner.report import _run_times, volume_figure, write_report

FIGURES = ("volume_curves", "robustness_bars", "robustness_heatmap", "overlap_scatter")
TABLES = ("volume_by_genus", "volume_by_target", "teachers_by_genus", "teachers_by_target",
          "mixed_effects_embedded", "genus_slopes_embedded", "transfer_correlates", "robustness",
          "robustness_overlap")
PAIRS = {("fr", "br"): 40.0, ("es", "ca"): 80.0, ("cs", "sk"): 65.0}
"""(HRL, LRL) -> entity overlap of the tiny study."""
COVARIATES = pd.DataFrame({"source": ["fr", "es", "cs"], "target": ["br", "ca", "sk"], "distance": [0.9, 0.1, 0.1]})
FAST = {"n_resamples": 50, "covariates": COVARIATES}


def tiny_study(students: bool = True, pairs: bool = True) -> pd.DataFrame:
    """Two seeds of: a volume sweep for 3 targets in 2 genera (teacher at volume 0; af also
    from a closer teacher, nl), and
    native/transfer models of 3 pairs, clean and under one perturbation."""
    rng = np.random.default_rng(7)
    rows = []
    for seed in (0, 1):
        for target, genus in (("sw", "Bantu") , ("zu", "Bantu"), ("af", "Germanic")) if students else ():
            for volume in (0, 100, 1000, 10000):
                for source, level in (("en", 50), ("nl", 53)) if target == "af" else (("en", 50),):
                    f1 = level + 3 * np.log2(volume + 1) + rng.normal(0, 1)
                    rows.append({"run_id": f"s-{source}-{target}-{volume}-{seed}", "kind": "student",
                                 "model": "embedded", "source": source, "target": target, "genus": genus,
                                 "volume": volume, "perturbation": "clean", "f1": f1, "seconds": 2.0})
        for (hrl, lrl), overlap in PAIRS.items() if pairs else ():
            for kind, source, clean in (("native", lrl, 88.0), ("transfer", hrl, 20 + 0.7 * overlap)):
                for perturbation, drop in (("clean", 0.0), ("unseen-entity", 10.0 if kind == "native" else 4.0)):
                    rows.append({"run_id": f"{kind}-{lrl}-{seed}", "kind": kind, "model": "embedded",
                                 "source": source, "target": lrl, "volume": None, "perturbation": perturbation,
                                 "f1": clean - drop + rng.normal(0, 0.5), "entity_overlap": overlap,
                                 "train_size": 1000, "seconds": 5.0})
    table = pd.DataFrame(rows).assign(seed=lambda t: t["run_id"].str[-1].astype(int))
    table["f1_lo"], table["f1_hi"] = table["f1"] - 2, table["f1"] + 2
    return table


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    return write_report(tiny_study(), out, config={"name": "tiny", "seeds": [0, 1]}, **FAST)


def test_report_path_and_results_csv(report):
    assert report.name == "report.html" and report.is_file()
    results = pd.read_csv(report.parent / "results.csv")
    assert {"target", "genus"} <= set(results.columns)
    assert len(results) == len(tiny_study())
    # the registry fills the genus the pair rows left out, and every family
    assert set(results.loc[results["target"] == "br", "genus"]) == {"Celtic"}
    assert set(results.loc[results["target"].isin(["sw", "zu"]), "family"]) == {"Niger-Congo"}


@pytest.mark.parametrize("name", FIGURES)
def test_every_figure_is_a_valid_png_and_svg(report, name):
    png = report.parent / "figures" / f"{name}.png"
    with Image.open(png) as image:
        image.verify()
        assert image.format == "PNG"
    assert imread(png).ndim == 3
    root = ET.parse(report.parent / "figures" / f"{name}.svg").getroot()
    assert root.tag.endswith("svg")


@pytest.mark.parametrize("name", TABLES)
def test_every_table_in_csv_markdown_and_booktabs_latex(report, name):
    tables = report.parent / "tables"
    assert not pd.read_csv(tables / f"{name}.csv").empty
    assert (tables / f"{name}.md").read_text().startswith("|")
    latex = (tables / f"{name}.tex").read_text()
    assert all(rule in latex for rule in (r"\toprule", r"\midrule", r"\bottomrule"))


def test_markdown_report_and_mixed_model_summary(report):
    markdown = (report.parent / "report.md").read_text()
    assert "## Student F1 vs log2(unlabeled volume), per genus" in markdown
    assert "![Entity overlap vs transfer F1](figures/overlap_scatter.png)" in markdown
    summary = (report.parent / "tables" / "mixed_effects_embedded.txt").read_text()
    assert "f1 ~ log2_volume * C(genus) + (1 | target)" in summary


def test_html_is_self_contained(report):
    page = report.read_text()
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == len(FIGURES)
    assert all(src.startswith("data:image/png;base64,") for src in sources)
    assert 'src="http' not in page
    assert "href" not in page and "<link" not in page and "url(" not in page
    assert "name: tiny" in page  # the study config
    assert "statsmodels" in page  # versions
    assert "Run times" in page


def test_volume_figure_names_each_curves_teacher():
    figure = volume_figure(volume_curves(tiny_study(), n_resamples=50))
    legends = {ax.get_title(): sorted(text.get_text() for text in ax.get_legend().get_texts())
               for ax in figure.axes if ax.get_visible()}
    assert legends == {"Bantu": ["sw from en", "zu from en"], "Germanic": ["af from en", "af from nl"]}


def test_robustness_only_study_skips_volume_figure_and_says_why(tmp_path):
    table = tiny_study(students=False).drop(columns="volume")  # as `xner robustness` writes it
    page = write_report(table, tmp_path, **FAST)
    assert not (tmp_path / "figures" / "volume_curves.png").exists()
    assert (tmp_path / "figures" / "robustness_heatmap.png").exists()
    reason = "no clean student rows with volume &gt; 0"
    assert reason in page.read_text()
    assert "Skipped: no clean student rows with volume > 0" in (tmp_path / "report.md").read_text()
    assert "Skipped: no study config was given" in (tmp_path / "report.md").read_text()


def test_sweep_only_study_skips_pair_figures(tmp_path):
    write_report(tiny_study(pairs=False), tmp_path, **FAST)
    assert (tmp_path / "figures" / "volume_curves.svg").exists()
    assert not list((tmp_path / "figures").glob("robustness*"))
    assert "Skipped: no perturbed native/transfer rows" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (pd.DataFrame(columns=["kind", "target"]), "nothing to report"),
        ("missing.csv", "no such results table"),
    ],
)
def test_bad_input_is_a_user_error(tmp_path, source, message):
    with pytest.raises(XnerError, match=message):
        write_report(source if isinstance(source, pd.DataFrame) else tmp_path / source, tmp_path / "out")


def test_report_from_store(tmp_path):
    from xner.study import store as store_module
    from xner.study.runs import RunOutcome, RunSpec

    study = tiny_study(students=False)
    with store_module.ResultStore(tmp_path / "study.sqlite") as store:
        for (kind, source, target, seed), rows in study.groupby(["kind", "source", "target", "seed"]):
            params = {"role": kind, "model": "embedded", "source": source, "target": target,
                      "dataset": "wikiann", "seed": int(seed)}
            spec = RunSpec("evaluate", 1, params)
            store.register([spec])
            metrics = rows[["perturbation", "f1", "f1_lo", "f1_hi", "entity_overlap"]].to_dict("records")
            store.finish(spec.id, RunOutcome("done", {"rows": metrics}, None, None, "2026-01-01T00:00:00+00:00",
                                             "2026-01-01T00:00:05+00:00", {"seconds": 5.0},
                                             {"xner": "0.1.0", "torch": "2.13.0"}, "host"))
        trained_ids = []
        for seed, (dev_f1, best_epoch, training) in enumerate([(68.3, 2, {"epochs": 6}),
                                                               (71.5, 6, {"train_layers": 4, "checkpoint": "last"})]):
            spec = RunSpec("train", 3, {"lang": "en", "dataset": "wikiann", "model": "embedded",
                                        "seed": seed, "train_size": 2000, "training": training})
            store.register([spec])
            trained_ids.append(spec.id)
            metrics = {"train_sentences": 2000, "best_epoch": best_epoch, "dev_f1": dev_f1, "epochs_run": 6}
            store.finish(spec.id, RunOutcome("done", metrics, None, None, "2026-01-01T00:00:00+00:00",
                                             "2026-01-01T00:01:00+00:00", {"seconds": 60.0}, {}, "host"))
    page = write_report(tmp_path / "study.sqlite", tmp_path / "report", **FAST).read_text()
    assert "Versions recorded by the runs" in page and "2.13.0" in page
    assert (tmp_path / "report" / "figures" / "robustness_bars.png").exists()
    trained = pd.read_csv(tmp_path / "report" / "tables" / "trained_models.csv")
    # a run that does not say how it trained trained every layer and kept the default checkpoint
    assert trained[["run_id", "lang", "seed", "train_layers", "checkpoint", "dev_f1", "best_epoch"]].values.tolist() == [
        [trained_ids[1], "en", 1, "4", "last", 71.5, 6], [trained_ids[0], "en", 0, "all", "best", 68.3, 2]]


def test_trained_models_need_run_records(report):
    assert "Skipped: no run records with params and metrics" in (report.parent / "report.md").read_text()


@pytest.mark.slow
def test_cli_writes_report_from_exported_table(tmp_path):
    tiny_study().to_csv(tmp_path / "results.csv", index=False)
    result = CliRunner().invoke(app, ["report", str(tmp_path / "results.csv"), "--out", str(tmp_path / "r"),
                                      "--resamples", "50"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(tmp_path / "r" / "report.html")
    assert (tmp_path / "r" / "tables" / "transfer_correlates.csv").read_text().count("uriel_") == 3


def test_fewer_than_three_pairs_are_not_correlated_nor_looked_up(tmp_path, monkeypatch):
    one_pair = tiny_study(students=False)
    one_pair = one_pair[(one_pair["target"] == "br")]
    monkeypatch.setattr("xner.analysis.uriel_distances", lambda *a, **k: pytest.fail("URIEL looked up for 1 pair"))
    write_report(one_pair, tmp_path / "r", n_resamples=50)
    text = (tmp_path / "r" / "report.md").read_text()
    assert "1 (source, target) transfer pair(s): a correlation over pairs needs at least 3" in text
    assert not (tmp_path / "r" / "tables" / "transfer_correlates.csv").exists()


def test_cli_missing_store_is_one_line_error(tmp_path):
    result = CliRunner().invoke(app, ["report", str(tmp_path / "none.sqlite"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "no result store here" in result.output


def test_close_teacher_table_compares_with_english(report):
    table = pd.read_csv(report.parent / "tables" / "teachers_by_target.csv")
    [row] = table.to_dict("records")
    assert (row["target"], row["source"], row["reference"], row["full_volume"]) == ("af", "nl", "en", 10000)
    assert row["full_diff"] == pytest.approx(3.0, abs=1.5) and row["teacher_diff"] == pytest.approx(3.0, abs=2.5)
    assert "Close teacher vs the distant one (en), per target" in (report.parent / "report.md").read_text()


def test_a_table_from_before_genus_reads_its_family_column_as_the_genus():
    """Results exported before the rename had ``family`` holding the genus (Germanic)."""
    from xner.report import _with_genus

    legacy = pd.DataFrame({"target": ["de", "zu", "xx"], "family": ["Germanic", "Bantu", "Made-up"]})
    table = _with_genus(legacy)
    assert table["genus"].tolist() == ["Germanic", "Bantu", "Made-up"]
    assert table["family"].tolist() == ["Indo-European", "Niger-Congo", "unknown"]


def test_a_sensitivity_study_gets_its_settings_sections_and_figure(tmp_path):
    from test_sensitivity import sensitivity_frame

    frame = sensitivity_frame().assign(dataset="wikiann", train_size=2000, f1_lo=0.0, f1_hi=100.0)
    write_report(frame, tmp_path / "report", n_resamples=100)
    tables = tmp_path / "report" / "tables"
    gains = pd.read_csv(tables / "setting_gains.csv")
    assert len(gains) == 4 * 3 and set(gains["teacher_regime"]) == {"weak", "strong"}
    assert "log2_volume:strong_teacher" in set(pd.read_csv(tables / "setting_effects.csv")["term"])
    assert (tmp_path / "report" / "figures" / "setting_curves.png").stat().st_size > 0


def test_the_settings_figure_shades_each_curve_over_its_seeds_range():
    from test_sensitivity import sensitivity_frame

    from xner.report import settings_figure
    from xner.sensitivity import with_settings

    rows = with_settings(sensitivity_frame())
    figure = settings_figure(rows)
    kin = next(ax for ax in figure.axes if ax.get_title() == "kin from swa")
    [band, *_] = kin.collections  # one band per setting, in the legend's order
    students = rows[(rows["target"] == "kin") & (rows["volume"] > 0)]
    first = students.groupby(["teacher_regime", "student_regime"]).ngroup() == 0
    f1 = students.loc[first, "f1"]
    low, high = band.get_paths()[0].vertices[:, 1].min(), band.get_paths()[0].vertices[:, 1].max()
    assert (low, high) == pytest.approx((f1.min(), f1.max()))
    assert high - low > 15  # the seeds' teachers are 10 F1 apart: a band, not a line


def test_checkpoint_policies_get_their_spread_table_without_any_student(tmp_path):
    rows = [{"kind": "transfer", "model": "m", "source": "en", "target": "kin", "dataset": "d", "perturbation": "clean",
             "seed": seed, "teacher_train_size": 2000, "teacher_train_layers": 4, "teacher_checkpoint": policy,
             "f1": f1, "f1_lo": f1 - 2, "f1_hi": f1 + 2}
            for policy, values in (("best", [20.0, 40.0, 30.0]), ("last", [29.0, 31.0, 30.0]))
            for seed, f1 in enumerate(values, start=1)]
    write_report(pd.DataFrame(rows), tmp_path / "report", n_resamples=100)
    spread = pd.read_csv(tmp_path / "report" / "tables" / "checkpoint_spread.csv").set_index("teacher_checkpoint")
    assert spread.loc["best", "sd"] == pytest.approx(10.0) and spread.loc["last", "sd"] == pytest.approx(1.0)
    versus = pd.read_csv(tmp_path / "report" / "tables" / "checkpoint_comparison.csv").set_index("target")
    assert versus.loc["kin", "policy"] == "last" and versus.loc["kin", "sd_diff"] == pytest.approx(-9.0)


def test_a_matrix_study_gets_its_heatmap_ordered_by_family(tmp_path):
    languages = ["swa", "kin", "yor", "ibo", "en"]
    rows = [{"kind": "native" if s == t else "transfer", "model": "m", "source": s, "target": t, "dataset": "d",
             "perturbation": "clean", "seed": seed, "f1": 50.0 + i - j + seed, "f1_lo": 45.0, "f1_hi": 55.0}
            for i, s in enumerate(languages) for j, t in enumerate(languages[:4]) for seed in (1, 2)]
    write_report(pd.DataFrame(rows), tmp_path / "report", n_resamples=100)
    matrix = pd.read_csv(tmp_path / "report" / "tables" / "transfer_matrix.csv")
    assert len(matrix) == 5 * 4 and set(matrix["n_seeds"]) == {2}
    assert matrix.set_index(["source", "target"]).loc[("en", "swa"), "f1"] == pytest.approx(50 + 4 + 1.5)
    assert (tmp_path / "report" / "figures" / "transfer_matrix_heatmap.png").stat().st_size > 0
    # targets of two datasets: one heatmap each (WikiANN sources never met MasakhaNER targets)
    wikiann = [{**row, "dataset": "wikiann", "source": row["source"].replace("yor", "de"),
                "target": row["target"].replace("yor", "de")} for row in rows if row["target"] == "yor"]
    write_report(pd.DataFrame(rows + wikiann), tmp_path / "two", n_resamples=100)
    assert sorted(p.name for p in (tmp_path / "two" / "figures").glob("transfer_matrix_heatmap*.png")) == [
        "transfer_matrix_heatmap_d.png", "transfer_matrix_heatmap_wikiann.png"]


def test_run_times_sum_cpu_seconds_only_where_every_run_measured_them():
    runs = pd.DataFrame({"kind": ["train", "train", "distill", "distill"], "status": ["done"] * 4,
                         "seconds": [100.0, 5000.0, 60.0, 40.0],  # the second train was paused
                         "cpu_seconds": [95.0, 90.0, None, 35.0]})
    times = _run_times(pd.DataFrame(), runs).set_index("kind")
    assert times.loc["train", "total_s"] == 5100.0
    assert times.loc["train", "cpu_s"] == 185.0
    assert pd.isna(times.loc["distill", "cpu_s"])  # one run predates CPU time: no total
    assert "cpu_s" not in _run_times(pd.DataFrame(), runs.drop(columns="cpu_seconds"))
