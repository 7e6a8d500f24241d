"""xner's own run kinds (train, distill, evaluate) through a whole study: the tiny model on
the toy data root, sequentially, so that the stored models and numbers can be checked."""

from __future__ import annotations

import os

import pytest
from rich.console import Console

from xner.models.tagger import Tagger
from xner.pipeline import DataSpec
from xner.study import parse_study
from xner.study.execute import RichReporter, default_registry, run_study
from xner.study.store import ResultStore

STUDY = {
    "name": "kinds",
    "dataset": "wikiann",
    "model": "tiny",
    "pairs": ["nl:de"],
    "teachers": {"de": ["nl"]},
    "train_sizes": [30],
    "volumes": [20],
    "perturbations": ["mask-entity"],
    "seeds": [0],
    "training": {"epochs": 8, "lr": 2e-2, "train_layers": 1, "patience": None},
    "distillation": {"student": {"epochs": 2, "lr": 2e-2, "train_layers": 1}},
    "executor": {"name": "sequential"},
}


def run(data_root, out) -> ResultStore:
    config = {**STUDY, "output_dir": str(out), "data_dir": str(data_root)}
    reporter = RichReporter(Console(file=open(os.devnull, "w")))
    return ResultStore(run_study(config, progress=reporter, report=False).store_path)


@pytest.fixture
def study(data_root, tmp_path) -> ResultStore:
    return run(data_root, tmp_path / "first")


def test_every_model_is_stored_compactly_and_reloads_to_its_scores(study, data_root):
    frame = study.frame()
    assert [r.error for r in study.records("failed")] == [] and set(frame["kind"]) == {"native", "transfer", "student"}
    models = [r for r in study.records("done") if r.spec.kind in ("train", "distill") and r.spec.params.get("volume") != 0]
    assert {r.spec.kind for r in models} == {"train", "distill"}
    for record in models:
        directory = study.run_dir(record.spec.id)
        assert {path.name for path in directory.iterdir()} == {"xner.json", "xner-delta.safetensors", "xner-checksums.json"}
    test = DataSpec("wikiann", data_root).split("de", "test")
    student_run = next(r.spec.id for r in models if r.spec.kind == "distill")
    student_f1 = frame.query("kind == 'student' and volume == 20 and perturbation == 'clean'")["f1"].item()
    assert student_f1 > 0 and Tagger.load(study.run_dir(student_run)).evaluate(test)["f1"] == pytest.approx(student_f1)
    # how each evaluated model was made, from the run graph
    students = frame.query("kind == 'student' and volume == 20")
    assert students[["teacher_train_size", "teacher_train_layers", "teacher_checkpoint", "student_train_layers"]
                    ].drop_duplicates().values.tolist() == [[30, 1, "best", 1]]
    teacher_run = next(r.spec.id for r in models if r.spec.kind == "train" and r.spec.params["lang"] == "nl")
    assert set(frame.query("kind == 'transfer'")["teacher_runs"]) == {teacher_run}


def test_a_fresh_store_gives_the_same_numbers(study, data_root, tmp_path):
    again = run(data_root, tmp_path / "second")
    columns = ["kind", "source", "target", "volume", "seed", "perturbation", "f1"]
    first, second = (s.frame()[columns].sort_values(columns[:-1]).reset_index(drop=True) for s in (study, again))
    assert len(first) == 8 and first.equals(second)


def test_progress_lines_of_students_name_their_volume():
    """Each distill run and its evaluation has its own line (once four identical ones)."""
    registry = default_registry()
    specs = parse_study({**STUDY, "volumes": [20, 40]}).expand(registry)
    lines = [spec.label(registry.get(spec.kind).show) for spec in specs if spec.params.get("volume") is not None]
    assert len(lines) == len(set(lines)) == 6
    assert sorted(line.split("volume=")[1] for line in lines) == ["0", "0", "20", "20", "40", "40"]
    native = next(spec for spec in specs if spec.params.get("role") == "native")
    assert "volume" not in native.label(registry.get("evaluate").show)


@pytest.fixture
def matrix_store(data_root, tmp_path) -> ResultStore:
    """A probed 3 x 3 matrix (nl, de and swa, each the others' teacher) of the tiny model."""
    config = {**{k: v for k, v in STUDY.items() if k not in ("pairs", "teachers", "volumes", "perturbations")},
              "matrix": [{"sources": ["nl", "de", "swa"], "targets": ["de", "nl", "swa"], "probe": 12}],
              "dataset_of": {"swa": "masakhaner2"}, "label_map": {"DATE": "O"},
              "output_dir": str(tmp_path / "matrix"), "data_dir": str(data_root)}
    reporter = RichReporter(Console(file=open(os.devnull, "w")))
    return ResultStore(run_study(config, progress=reporter, report=False).store_path)


def test_a_probing_matrix_stores_each_teachers_label_free_signals(matrix_store, data_root):
    from xner.data.sampling import nested_subset
    from xner.teacher_signals import entity_rate

    store = matrix_store
    [record] = [r for r in store.records("done")
                if r.spec.kind == "signals" and r.spec.params["source"] == "nl" and r.spec.params["target"] == "de"]
    signals = record.metrics
    assert 0 < signals["teacher_confidence"] <= 1 and signals["teacher_entropy"] >= 0
    sentences = signals["tags"].split("|")
    probe = nested_subset(DataSpec("wikiann", data_root).split("de", "train"), 12, seed=0)
    assert [len(s) for s in sentences] == [len(s) for s in probe]
    taught = nested_subset(DataSpec("wikiann", data_root).split("nl", "train"), 30, seed=0)
    assert signals["source_entity_rate"] == pytest.approx(entity_rate([s.tags for s in taught]))
    assert signals["entity_rate_ratio"] == pytest.approx(signals["teacher_entity_rate"] / signals["source_entity_rate"])


def test_a_ranker_learned_from_the_matrix_recommends_teachers(matrix_store, data_root, tmp_path):
    import json

    from typer.testing import CliRunner

    from xner.cli import app

    runner = CliRunner()
    ranker = tmp_path / "ranker.json"
    tables = tmp_path / "tables"
    trained = runner.invoke(app, ["train-ranker", str(matrix_store.path), "--out", str(ranker), "--data-dir", str(data_root),
                                  "--tables", str(tables)])
    assert trained.exit_code == 0, trained.output
    assert "6 pairs, 3 targets" in trained.output
    import pandas as pd

    quality = pd.read_csv(tables / "ranker_quality.csv")
    overall = quality[quality["targets"] == "all"]
    assert set(overall["n_targets"]) == {3} and quality["top1"].between(0, 1).all()
    assert set(quality["targets"]) == {"all", "wikiann", "masakhaner2"}  # also per dataset of the targets
    assert len(pd.read_csv(tables / "pairs.csv")) == 6
    saved = json.loads(ranker.read_text())
    assert saved["format"] == "xner.ranker.v2" and saved["kind"] in ("ridge", "lambdarank")
    regret = saved["trained_on"]["leave_one_target_out_regret"]  # --kind auto: the lower regret ships
    assert saved["kind"] == min(("ridge", "lambdarank"), key=lambda kind: (round(regret[kind], 9), kind != "ridge"))
    assert saved["trained_on"]["datasets"] == {"de": "wikiann", "nl": "wikiann", "swa": "masakhaner2"}
    shown = runner.invoke(app, ["recommend", "--target", "swa", "--dataset", "masakhaner2", "--ranker", str(ranker),
                                "--data-dir", str(data_root), "--format", "json"])
    assert shown.exit_code == 0, shown.output
    rows = json.loads(shown.output)  # the target itself is no candidate
    assert sorted(row["source"] for row in rows) == ["de", "nl"] and [row["rank"] for row in rows] == [1, 2]
    assert rows[0]["predicted_f1"] >= rows[1]["predicted_f1"]
    missing = runner.invoke(app, ["recommend", "--target", "swa", "--ranker", str(tmp_path / "none.json")])
    assert missing.exit_code == 2 and "cannot read the ranker" in missing.output
