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
