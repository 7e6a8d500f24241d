"""Document tasks end to end on files the test writes: `xner train/evaluate --task` and a study
(tasks, transfer into a language without a train split, P4/P5, resumable), tiny backbone."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from xner.cli import app
from xner.study import ResultStore, load_study, run_study
from xner.study.execute import default_registry

TOPICS = {"sports": ("ball", "goal", "team"), "health": ("doctor", "virus", "clinic"),
          "religion": ("church", "prayer", "faith")}
CONTEXT = {"yor": ("ati", "pe", "ni", "won"), "ibo": ("na", "ka", "ndi", "ya"), "amh": ("ena", "wede", "new", "lay")}


def _write_split(folder, lang, split, n, categories, seed):
    rng = np.random.default_rng(seed)
    lines = ["category\theadline\ttext\turl"]
    for i in range(n):
        category = categories[i % len(categories)]
        words = [rng.choice(TOPICS[category] + CONTEXT[lang]) for _ in range(6)]
        words += [f"{chr(97 + k % 26)}{chr(97 + k // 26)}o" for k in rng.integers(300, size=8)]  # shared by all
        lines.append(f"{category}\t{category} {lang} {i} {words[0]}\t\"{' '.join(words)}.\"\thttp://x/{i}")
    (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def news_root(tmp_path, monkeypatch):
    """``masakhanews/{yor,ibo}`` with train/dev/test, ``amh`` with dev/test only."""
    monkeypatch.setenv("XNER_CACHE", str(tmp_path / "cache"))
    layout = {"yor": ("sports", "health", "religion"), "ibo": ("sports", "health"), "amh": ("sports", "health")}
    for number, (lang, categories) in enumerate(layout.items()):
        folder = tmp_path / "data" / "masakhanews" / lang
        folder.mkdir(parents=True)
        (folder / "labels.txt").write_text("\n".join(sorted(categories)) + "\n", encoding="utf-8")
        for split, n in {"train": 24, "dev": 8, "test": 9}.items():
            if lang != "amh" or split != "train":
                _write_split(folder, lang, split, n, categories, seed=10 * number + len(split))
    return tmp_path / "data"


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_train_and_evaluate_a_topic_model_from_the_command_line(news_root, tmp_path):
    model = tmp_path / "yor-topic"
    common = ("--dataset", "masakhanews", "--data-dir", news_root)
    result = cli("train", "--task", "topic", "--lang", "yor", *common, "--model", "tiny", "--out", model,
                 "--epochs", 2, "--max-length", 32, "--train-layers", 1, "--compact")
    assert result.exit_code == 0, result.output
    assert "topic.v1, 24 examples" in result.output and "cut at 32 subwords" in result.output
    assert json.loads((model / "xner.json").read_text())["labels"] == ["health", "religion", "sports"]

    predictions = tmp_path / "predictions.csv"
    result = cli("evaluate", model, "--lang", "ibo", *common, "--perturb", "nearest-unseen-word,random-unseen-word",
                 "--predictions", predictions, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["perturbation"] for r in rows] == ["clean", "nearest-unseen-word.v1", "random-unseen-word.v1"]
    assert all(r["examples"] == 9 and r["max_length"] == 32 and r["task"] == "topic.v1" for r in rows)
    assert rows[0]["accuracy_lo"] <= rows[0]["accuracy"] <= rows[0]["accuracy_hi"]
    assert rows[1]["drop"] == rows[0]["accuracy"] - rows[1]["accuracy"]
    assert rows[1]["overlap"] < rows[0]["overlap"] == rows[1]["overlap_clean"]
    assert rows[1]["words_edited"] > 0
    lines = predictions.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "perturbation,index,gold,predicted" and len(lines) == 1 + 3 * 9


def test_unmapped_categories_fail_naming_them(news_root, tmp_path):
    model = tmp_path / "ibo-topic"
    common = ("--dataset", "masakhanews", "--data-dir", news_root)
    assert cli("train", "--task", "topic", "--lang", "ibo", *common, "--model", "tiny", "--out", model,
               "--epochs", 1, "--max-length", 16).exit_code == 0
    result = cli("evaluate", model, "--lang", "yor", *common)
    assert result.exit_code == 2
    assert "yor test: categories religion are not among the model's categories (health, sports)" in result.output
    assert cli("evaluate", model, "--lang", "yor", *common, "--category-map", "religion=drop").exit_code == 0


STUDY = {
    "name": "news", "dataset": "masakhanews", "model": "tiny", "tasks": ["headline", "topic"],
    "languages": ["yor"], "transfer": {"amh": ["yor"], "ibo": ["yor"]},
    "category_map": {"religion": "drop"}, "perturbations": ["nearest-unseen-word", "random-unseen-word"],
    "seeds": [1], "training": {"epochs": 1, "max_length": 24, "train_layers": 1},
    "evaluation": {"bootstrap": 50},
}


def test_a_document_study_runs_resumably_into_the_store(news_root, tmp_path):
    config = {**STUDY, "data_dir": str(news_root), "output_dir": str(tmp_path / "out")}
    specs = load_study_specs(config)
    trains = [s for s in specs if s.kind == "train"]
    assert sorted(s.params["task"] for s in trains) == ["headline.v1", "topic.v1"]
    assert all("label_map" not in s.params for s in specs)
    assert {s.params["target"] for s in specs if s.kind == "evaluate"} == {"yor", "ibo", "amh"}

    run = run_study(config, executor="sequential", report=False)
    with ResultStore(run.store_path) as store:
        assert store.status_counts()["done"] == 8
        table = store.frame()
        evaluations = [r for r in store.records("done") if r.kind == "evaluate"]
    assert len(table) == 6 * 3 and set(table["task"]) == {"headline.v1", "topic.v1"}
    assert table["accuracy"].between(0, 100).all() and table["f1"].isna().all()
    for record in evaluations:
        predictions = record.metrics["predictions"]
        for row in record.metrics["rows"]:
            chosen = [p for p in predictions if p["perturbation"] == row["perturbation"]]
            assert 100 * np.mean([p["gold"] == p["predicted"] for p in chosen]) == pytest.approx(row["accuracy"])
    again = run_study(config, executor="sequential", report=False)
    assert again.to_run == 0
    # the report keeps every prediction: each accuracy is recomputed from the committed CSV
    from xner.report import write_report

    write_report(run.store_path, tmp_path / "report", n_resamples=50)
    compressed = tmp_path / "report" / "tables" / "document_predictions.csv.gz"
    first = compressed.read_bytes()
    write_report(run.store_path, tmp_path / "report", n_resamples=50)
    assert compressed.read_bytes() == first  # no timestamp in the gzip header: a rerun commits nothing new
    predictions = pd.read_csv(compressed)
    assert predictions["run_id"].nunique() == len(evaluations)
    recomputed = (predictions.assign(hit=predictions["gold"].astype(str) == predictions["predicted"].astype(str))
                  .groupby(["task", "target", "perturbation"])["hit"].mean() * 100)
    reported = table.set_index(["task", "target", "perturbation"])["accuracy"].astype(float)
    assert np.allclose(recomputed.loc[reported.index].to_numpy(), reported.to_numpy())
    assert "per-example predictions" in (tmp_path / "report" / "report.md").read_text()


def load_study_specs(config):
    from xner.study.spec import parse_study

    return parse_study(config).expand(default_registry())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"perturbations": ["mask-entity"]}, "mask-entity.v1 are NER perturbations, but tasks has headline.v1"),
        ({"tasks": ["summary"]}, "unknown task 'summary'"),
        ({"tasks": ["ner"]}, "nearest-unseen-word.v1, random-unseen-word.v1 are document perturbations"),
        ({"teachers": {"amh": ["yor"]}}, "teachers and volumes (distillation) are NER-only"),
    ],
)
def test_study_configs_that_mix_tasks_wrongly_fail(change, message):
    from xner.errors import XnerError
    from xner.study.spec import parse_study

    with pytest.raises(XnerError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_study({**STUDY, **change})


def test_news_config_expands_with_both_tasks_and_ner_configs_keep_their_ids():
    study = load_study("configs/news.yaml")
    specs = study.expand(default_registry())
    assert {s.params.get("task") for s in specs} == {"headline.v1", "topic.v1"}
    assert len([s for s in specs if s.kind == "train"]) == 10 * 2 * 2
    quick = load_study("configs/quick.yaml")
    explicit = quick.model_copy(update={"tasks": ["ner.v1"]})
    assert [s.id for s in quick.expand(default_registry())] == [s.id for s in explicit.expand(default_registry())]
    assert all("task" not in s.params for s in quick.expand(default_registry()))


def test_the_report_gives_document_rows_their_own_sections(tmp_path):
    from xner.report import write_report

    rows = []
    for number, (source, target) in enumerate([("sna", "xho"), ("run", "lug"), ("som", "orm")]):  # transfer only
        for seed in (1, 2):
            clean = {"task": "topic.v1", "model": "m", "kind": "transfer", "source": source, "target": target,
                     "dataset": "masakhanews", "seed": seed, "perturbation": "clean", "accuracy": 60.0 + seed,
                     "accuracy_lo": 50.0, "accuracy_hi": 70.0, "examples": 100, "max_length": 128,
                     "overlap": 10.0 * (number + 1), "overlap_clean": 10.0 * (number + 1), "f1": None}
            perturbed = {**clean, "perturbation": "nearest-unseen-word.v1", "accuracy": clean["accuracy"] - 2 * number,
                         "drop": 2.0 * number, "overlap": 0.0}
            rows += [clean, perturbed]
    write_report(pd.DataFrame(rows), tmp_path / "report", n_resamples=50)
    tables = tmp_path / "report" / "tables"
    accuracy = pd.read_csv(tables / "document_accuracy.csv")
    assert len(accuracy) == 6 and set(accuracy["seeds"]) == {2}
    assert accuracy.query("target == 'lug' and perturbation == 'clean'")["accuracy"].item() == 61.5
    (robustness,) = pd.read_csv(tables / "document_robustness.csv").to_dict("records")
    assert robustness["pairs"] == 3 and robustness["drop"] == pytest.approx(2.0)
    assert robustness["removed_overlap"] == pytest.approx(20.0) and robustness["spearman"] == 1.0
    assert "Document tasks: accuracy drop vs the word overlap" in (tmp_path / "report" / "report.md").read_text()


def test_a_model_without_training_provenance_is_scored_clean_but_not_perturbed(news_root):
    from xner.data.news import load_documents
    from xner.errors import XnerError
    from xner.models.document_model import DocumentModel
    from xner.models.tagger import TrainConfig
    from xner.tasks.pipeline import DocumentData, evaluate_document_model

    model = DocumentModel.create("tiny", task="topic", labels=("health", "sports"))
    model.fit(load_documents("ibo", "train", data_dir=news_root), config=TrainConfig(epochs=1, max_length=16))
    data = DocumentData(data_dir=news_root)
    rows, predictions = evaluate_document_model(model, "ibo", data=data, n_resamples=20)
    assert rows[0]["overlap"] is None and rows[0]["max_length"] == 16 and len(predictions) == 9
    with pytest.raises(XnerError, match="P4/P5 need the text the model was trained on"):
        evaluate_document_model(model, "ibo", data=data, perturbations=["nearest-unseen-word"])


def test_native_models_are_set_against_their_targets_transferred_models():
    from xner.tasks.report import document_tables

    def row(kind, source, accuracy, perturbation="clean", drop=None):
        return {"task": "headline.v1", "model": "m", "kind": kind, "source": source, "target": "xho", "seed": 1,
                "perturbation": perturbation, "accuracy": accuracy, "accuracy_lo": accuracy - 5,
                "accuracy_hi": accuracy + 5, "examples": 100, "max_length": 128, "overlap": 50.0,
                "overlap_clean": 50.0, "drop": drop}

    frame = pd.DataFrame([row("native", "xho", 90.0), row("transfer", "sna", 80.0), row("transfer", "yor", 70.0),
                          row("native", "xho", 60.0, "nearest-unseen-word.v1", 30.0),
                          row("transfer", "sna", 70.0, "nearest-unseen-word.v1", 10.0),
                          row("transfer", "yor", 66.0, "nearest-unseen-word.v1", 4.0),
                          {**row("transfer", "sna", 50.0), "target": "amh"}])  # no native amh: no row
    table = document_tables(frame)["document_native_vs_transfer"].set_index("perturbation")
    assert list(table["target"]) == ["xho", "xho"]
    clean, perturbed = table.loc["clean"], table.loc["nearest-unseen-word.v1"]
    assert (clean["native_accuracy"], clean["transfer_accuracy"], clean["best_source"]) == (90.0, 75.0, "sna")
    assert clean["native_minus_best"] == 10.0 and clean["sources"] == 2
    assert (perturbed["native_drop"], perturbed["transfer_drop"], perturbed["native_minus_best"]) == (30.0, 7.0, -10.0)


def test_robustness_pools_native_and_transferred_pairs_as_kind_all():
    from xner.tasks.report import document_tables

    rows = []
    pairs = [("native", "xho", "xho", 50.0, 30.0), ("native", "sna", "sna", 40.0, 20.0),
             ("transfer", "sna", "xho", 10.0, 5.0), ("transfer", "xho", "sna", 20.0, 8.0)]
    for kind, source, target, removed, drop in pairs:
        clean = {"task": "topic.v1", "model": "m", "kind": kind, "source": source, "target": target, "seed": 1,
                 "perturbation": "clean", "accuracy": 90.0, "accuracy_lo": 85.0, "accuracy_hi": 95.0, "examples": 100,
                 "max_length": 128, "overlap": 60.0, "overlap_clean": 60.0, "drop": None}
        rows += [clean, {**clean, "perturbation": "random-unseen-word.v1", "accuracy": 90.0 - drop, "drop": drop,
                         "overlap": 60.0 - removed}]
    table = document_tables(pd.DataFrame(rows))["document_robustness"].set_index("kind")
    assert list(table.index) == ["all", "native", "transfer"]
    pooled = table.loc["all"]
    assert pooled["pairs"] == 4 and pooled["drop"] == pytest.approx(15.75)
    assert pooled["spearman"] == 1.0 and pooled["pearson_lo"] <= pooled["pearson"]
    assert table.loc["transfer", "removed_overlap"] == 15.0 and pooled["clean_accuracy"] == 90.0
