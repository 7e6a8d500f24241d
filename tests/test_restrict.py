"""Restricted samples of a study (``xner study --only KEY=VALUE``): the matching runs with their
dependencies, one-line errors for bad filters, and a sample run from a fresh store and cache
gives the very numbers the whole study gave those runs."""

from __future__ import annotations

import os

import pytest
from rich.console import Console
from test_execute import KINDS, STUDY
from test_study_kinds import STUDY as TINY_STUDY

from xner.errors import XnerError
from xner.study import ResultStore, parse_study
from xner.study.execute import RichReporter, run_study
from xner.study.restrict import parse_filters, restrict_runs


@pytest.fixture(scope="module")
def specs():
    return parse_study(STUDY).expand(KINDS)


def test_a_sample_holds_the_matching_runs_and_everything_they_depend_on(specs):
    sample = restrict_runs(specs, {"seed": "2", "kind": "evaluate"})
    ids = {spec.id for spec in sample}
    evaluations = [s for s in specs if s.kind == "evaluate" and s.params["seed"] == 2]
    assert evaluations and all(s.id in ids for s in evaluations)
    assert all(dep in ids for spec in sample for dep in spec.deps)  # closed under dependencies
    assert {s.params["seed"] for s in sample} == {2} and len(sample) < len(specs)
    assert [s.id for s in sample] == [s.id for s in specs if s.id in ids]  # the study's order


def test_nested_settings_match_by_dotted_key_and_unset_values_as_null(specs):
    trainings = restrict_runs(specs, {"kind": "train", "training.checkpoint": "best", "training.train_layers": "null"})
    assert trainings == [s for s in specs if s.kind == "train"]
    native = restrict_runs(specs, {"role": "native", "volume": "null"})
    assert {s.kind for s in native} == {"train", "evaluate"}
    with pytest.raises(XnerError, match="no run of the study matches"):
        restrict_runs(specs, {"training.checkpoint": "last"})
    with pytest.raises(XnerError, match=r"no run has the key 'training'; keys: .*training\.epochs"):
        restrict_runs(specs, {"training": "1"})


def test_no_filter_is_the_whole_study(specs):
    assert restrict_runs(specs, {}) == specs


@pytest.mark.parametrize(("filters", "message"), [
    (["seed"], r"--only 'seed': expected KEY=VALUE"),
    (["=1"], r"expected KEY=VALUE"),
    (["sead=1"], r"no run has the key 'sead'; keys: .*seed"),
    (["seed=7"], r"--only seed=7: no run of the study matches"),
])
def test_bad_filters_are_one_line_errors(specs, filters, message):
    with pytest.raises(XnerError, match=message):
        restrict_runs(specs, parse_filters(filters))


def test_a_sample_from_a_fresh_store_and_cache_reproduces_the_whole_studys_numbers(data_root, tmp_path, monkeypatch):
    frames = []
    for name, only in (("whole", None), ("sample", {"seed": "1"})):
        monkeypatch.setenv("XNER_CACHE", str(tmp_path / f"cache-{name}"))
        config = {**TINY_STUDY, "seeds": [0, 1], "volumes": [10, 20], "output_dir": str(tmp_path / name),
                  "data_dir": str(data_root)}
        run = run_study(config, progress=RichReporter(Console(file=open(os.devnull, "w"))), report=False, only=only)
        frame = ResultStore(run.store_path).frame().drop(columns="seconds")
        frames.append(frame[frame["seed"] == 1].sort_values(["run_id", "perturbation"]).reset_index(drop=True))
    whole, sample = frames
    assert len(sample) == len(whole) > 0 and sample.equals(whole)
