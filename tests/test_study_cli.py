"""`xner study`, `xner status`, `xner results` on a tiny study of small real run kinds."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from test_execute import KINDS, STUDY, data_without
from typer.testing import CliRunner

from xner.cli import app
from xner.study import ResultStore


@pytest.fixture(autouse=True)
def test_kinds(monkeypatch):
    """`xner study` runs the kinds of test_execute (whose data needs are not xner's: no
    preflight); the report records its call."""
    monkeypatch.setattr("xner.study.execute.default_registry", lambda: KINDS)
    monkeypatch.setattr("xner.study.execute.preflight", lambda study, specs: None)
    calls = []

    def write_report(store, out_dir, config):
        calls.append((store, out_dir, config))
        return out_dir / "report.html"

    monkeypatch.setattr("xner.report.write_report", write_report)
    return calls


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({**STUDY, "output_dir": str(tmp_path / "out")}))
    return path


def cli(*args: object):
    return CliRunner().invoke(app, [str(arg) for arg in args])


def test_dry_run_counts_runs_and_writes_nothing(config, tmp_path):
    result = cli("study", config, "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("tiny: 28 runs (train 6, evaluate 14, distill 8); 28 to run, 0 already done;")
    assert not (tmp_path / "out").exists()


def test_study_runs_prints_the_table_and_the_report(config, tmp_path, test_kinds):
    result = cli("study", config)
    assert result.exit_code == 0, result.output
    store = tmp_path / "out" / "study.sqlite"
    assert f"store {store}" in result.output
    assert "F1, mean over seeds" in result.output and "clean" in result.output and "student" in result.output
    students = [line.split() for line in result.output.splitlines() if " student " in line]
    assert students and all(line[:2] == ["embedded", "student"] for line in students)  # one row, one line: no folding
    assert result.output.rstrip().endswith(f"report: {tmp_path / 'out' / 'report' / 'report.html'}")
    [(reported_store, out_dir, reported_config)] = test_kinds
    assert reported_store == store and out_dir == tmp_path / "out" / "report"
    assert reported_config["pairs"] == ["en:nl"] and reported_config["training"]["epochs"] == 1

    again = cli("study", config)
    assert "28 runs (train 6, evaluate 14, distill 8); 0 to run, 28 already done" in again.output

    status = cli("status", store)
    assert status.exit_code == 0 and status.output == "pending 0, running 0, done 28, failed 0\n"


def test_ctrl_c_keeps_finished_runs_says_so_and_resumes(config, tmp_path, monkeypatch):
    counts = tmp_path / "counts"
    counts.mkdir()
    monkeypatch.setenv("COUNT_DIR", str(counts))
    monkeypatch.setenv("INTERRUPT_AT", "5")
    result = cli("study", config)
    assert result.exit_code == 130
    assert result.output.strip().splitlines()[-1] == (
        "interrupted: every finished run is kept in the store; run the same command to resume")
    store = tmp_path / "out" / "study.sqlite"
    with ResultStore(store) as results:
        assert results.status_counts()["done"] == 4
    monkeypatch.delenv("INTERRUPT_AT")
    again = cli("study", config)
    assert again.exit_code == 0 and "24 to run, 4 already done" in again.output


def test_an_edited_config_says_the_store_holds_its_earlier_runs_and_prune_deletes_them(config, tmp_path):
    assert cli("study", config).exit_code == 0
    config.write_text(yaml.safe_dump({**STUDY, "seeds": [1], "output_dir": str(tmp_path / "out")}))
    hint = ("the store also holds 14 runs the config no longer plans (an earlier version's): their results are in "
            "the table and the report; --prune deletes them")
    counted = cli("study", config, "--dry-run", "--prune")  # a dry run deletes nothing
    assert counted.exit_code == 0 and hint in counted.output and "pruned" not in counted.output
    pruned = cli("study", config, "--prune")
    assert pruned.exit_code == 0, pruned.output
    assert "0 to run, 14 already done" in pruned.output and "pruned 14 runs the config no longer plans" in pruned.output
    assert "no longer plans (an earlier" not in pruned.output
    assert cli("status", tmp_path / "out" / "study.sqlite").output == "pending 0, running 0, done 14, failed 0\n"


def test_store_option_and_process_executor(config, tmp_path):
    store = tmp_path / "elsewhere.sqlite"
    result = cli("study", config, "--store", store, "--executor", "process", "--workers", "2")
    assert result.exit_code == 0, result.output
    with ResultStore(store, create=False) as results:
        assert results.status_counts()["done"] == 28
    assert (tmp_path / "out" / "runs").is_dir()  # run folders stay in the output folder


def test_failed_runs_exit_1_and_status_shows_why(tmp_path):
    path = tmp_path / "study.yaml"
    data = data_without(tmp_path, "de")
    path.write_text(yaml.safe_dump({**STUDY, "seeds": [1], "output_dir": str(tmp_path / "out"), "data_dir": str(data)}))
    result = cli("study", path)
    assert result.exit_code == 1
    assert "6 runs failed: xner status" in result.stderr
    status = cli("status", tmp_path / "out" / "study.sqlite")
    lines = status.output.splitlines()
    assert lines[0] == "pending 0, running 0, done 8, failed 6"
    assert any(
        line.endswith("train lang=de dataset=wikiann model=embedded seed=1: ValueError: no training data for de")
        for line in lines
    )
    assert sum("(train) failed" in line for line in lines) == 5


@pytest.fixture
def finished(config, tmp_path):
    assert cli("study", config).exit_code == 0
    return tmp_path / "out" / "study.sqlite"


def test_results_export_formats(finished, tmp_path):
    csv = cli("results", finished)
    assert csv.exit_code == 0
    assert csv.output.splitlines()[0].startswith("run_id,kind,model,source,target,dataset,genus,family,relation")
    assert len(csv.output.splitlines()) == 1 + 14 * 2  # evaluations x (clean, mask-entity)

    rows = json.loads(cli("results", finished, "--format", "json").output)
    assert {row["kind"] for row in rows} == {"native", "transfer", "student"}

    out = tmp_path / "results.parquet"
    written = cli("results", finished, "--format", "parquet", "--out", out)
    assert written.output == f"wrote {out}\n"
    assert len(pd.read_parquet(out)) == 28


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["status", "missing.sqlite"], "no result store here"),
        (["status", "{config}"], "corrupt or not an xner result store (file is not a database)"),
        (["results", "{store}", "--format", "xlsx"], "unknown export format 'xlsx'"),
        (["results", "{store}", "--format", "parquet"], "parquet is a binary format"),
        (["study", "{config}", "--executor", "dask"], "unknown executor 'dask'; valid: process, ray, sequential"),
        (["study", "missing.yaml"], "missing.yaml: cannot read the study config"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(finished, config, args, message):
    result = cli(*(arg.format(store=finished, config=config) for arg in args))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1


def test_bad_config_names_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: t\nlanguages: [nl]\nvolumes: [-3]\n")
    result = cli("study", path)
    assert result.exit_code == 2
    assert result.stderr == f"error: {path}: study.volumes[0]: must be >= 0\n"
