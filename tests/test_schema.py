"""Run identity across params schemas: a store written by the first schema (a committed
fixture) opens with its runs done under their ids, and a changed option value is a new run."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml

from xner.errors import XnerError
from xner.options import TrainingOptions
from xner.study import ResultStore, RunSpec, parse_study
from xner.study.execute import default_registry, run_study
from xner.study.schema import PARAMS_SCHEMA, identity

FIXTURES = Path(__file__).parent / "fixtures"


def rows(path: Path) -> dict[str, tuple]:
    """Every run as SQLite holds it: id -> (status, metrics, timings, spec params)."""
    with sqlite3.connect(path) as conn:
        found = conn.execute("SELECT id, status, metrics, timings, spec FROM runs").fetchall()
    return {run: (status, metrics, timings, json.loads(spec)["params"]) for run, status, metrics, timings, spec in found}


@pytest.fixture
def old_store(tmp_path) -> Path:
    path = tmp_path / "old" / "study.sqlite"
    path.parent.mkdir()
    shutil.copy(FIXTURES / "schema1-study.sqlite", path)
    return path


@pytest.fixture
def config(old_store) -> dict:
    data = yaml.safe_load((FIXTURES / "schema1-study.yaml").read_text(encoding="utf-8"))
    return {**data, "output_dir": str(old_store.parent)}


def test_an_old_store_is_upgraded_by_a_session_keeping_ids_status_and_results(old_store):
    before = rows(old_store)
    assert len(before) == 8 and {status for status, *_ in before.values()} == {"done"}
    assert "batching" not in before[next(r for r in before if before[r][3].get("training"))][3]["training"]
    with ResultStore(old_store) as store, store.session():
        assert store.params_schema() == PARAMS_SCHEMA > 1
        assert {r.id: r.status for r in store.records()} == {run: "done" for run in before}
    after = rows(old_store)
    assert {run: row[:3] for run, row in after.items()} == {run: row[:3] for run, row in before.items()}
    students = [params for *_, params in after.values() if params.get("volume") == 20 and "distillation" in params]
    assert [p["distillation"]["loss"] for p in students] == ["kl.v1"]
    assert students[0]["distillation"]["weighting"] == "uniform.v1"
    assert students[0]["distillation"]["student"]["batching"] == "length"
    assert {p.get("rate") for *_, p in after.values() if "perturbations" in p} == {1.0}


def test_todays_expansion_of_the_old_study_finds_its_runs_done(old_store, config):
    """Runs of kinds whose version is unchanged are found done, with today's params; a kind whose
    version went up since (its results changed) plans new runs instead, by design."""
    specs = parse_study(config).expand(default_registry())
    with ResultStore(old_store) as store, store.session():  # a study session upgrades the store
        stored = {record.id: record.spec for record in store.records()}
    versions = {spec.kind: spec.version for spec in stored.values()}
    same = [spec for spec in specs if spec.version == versions[spec.kind]]
    assert {spec.kind for spec in same} >= {"train", "distill"}
    assert [(spec.id, dict(stored[spec.id].params)) for spec in same if spec.id in stored] == [
        (spec.id, dict(spec.params)) for spec in same]  # found, and stored in today's layout
    result = run_study(config, dry_run=True)
    assert result.to_run == len(specs) - len(same)


@pytest.mark.parametrize("create", [True, False])
def test_opened_without_a_session_an_old_store_is_read_as_it_is(old_store, create):
    """Reading (xner status) never rewrites a store an older xner's study may be writing."""
    before = rows(old_store)
    with ResultStore(old_store, create=create) as store:
        assert store.params_schema() == 1 and {r.id for r in store.records("done")} == set(before)
    assert rows(old_store) == before


def test_a_store_of_a_newer_schema_is_refused(old_store):
    with sqlite3.connect(old_store) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('params_schema', ?)", (str(PARAMS_SCHEMA + 1),))
    with pytest.raises(XnerError, match="written by a newer xner"):
        ResultStore(old_store)


def train(**training) -> RunSpec:
    return RunSpec("train", 3, {"lang": "de", "training": {**TrainingOptions().model_dump(), **training}})


def test_every_option_is_in_the_params_so_another_value_is_another_run():
    study = parse_study({"name": "t", "languages": ["de"]})
    (spec,) = [s for s in study.expand(default_registry()) if s.kind == "train"]
    assert spec.params["training"] == TrainingOptions().model_dump()
    ids = {train().id, train(batching="random").id, train(precision="mixed").id}
    assert len(ids) == 3


def test_a_value_older_runs_had_hashes_as_they_did_and_nothing_else_does():
    without = {**TrainingOptions().model_dump()}
    del without["batching"]
    assert train().id == RunSpec("train", 3, {"lang": "de", "training": without}).id
    assert identity("train", {"training": {"batching": "random"}}) == {"training": {"batching": "random"}}
    assert identity("evaluate", {"rate": 1.0}) == {} and identity("evaluate", {"rate": 0.5}) == {"rate": 0.5}


@pytest.mark.parametrize(("name", "same"), [("kl", True), ("kl.v1", True), ("kl.v2", False), ("mse.v1", False)])
def test_versioned_names_hash_as_the_first_schema_wrote_v1(name, same):
    def distill(loss: str) -> RunSpec:
        return RunSpec("distill", 3, {"distillation": {"loss": loss, "weighting": "uniform.v1"}})

    assert (distill(name).id == distill("kl").id) is same


def test_dropout_stays_out_of_an_id_only_while_it_is_the_pretrained_models_own():
    """Schema 6 wrote ``dropout`` out: runs without it (``None``) keep their ids, a run that
    sets it is another run."""
    params = {"lang": "de", "training": {"epochs": 2, "checkpoint": "best", "dropout": None}}
    assert "dropout" not in identity("train", params)["training"]
    changed = {**params, "training": {**params["training"], "dropout": 0.0}}
    assert identity("train", changed)["training"]["dropout"] == 0.0
    student = {"distillation": {"student": {"epochs": 2, "dropout": 0.0}}}
    assert identity("distill", student)["distillation"]["student"]["dropout"] == 0.0
