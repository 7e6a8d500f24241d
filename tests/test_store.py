"""The result store: WAL, one transaction per run, recovery after a kill, the tidy table."""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest

from xner.errors import XnerError
from xner.study import ResultStore, RunSpec
from xner.study.runs import RunOutcome
from xner.study.store import COLUMNS


def outcome(metrics=None, status="done", seconds=2.5) -> RunOutcome:
    return RunOutcome(
        status, metrics, None if status == "done" else "ValueError: boom", None,
        "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:02+00:00", {"seconds": seconds},
        {"xner": "0.1.0", "torch": None, "transformers": None, "python": "3.11"}, "host",
    )  # fmt: skip


def spec(**params) -> RunSpec:
    return RunSpec("evaluate", 1, params)


@pytest.fixture
def store(tmp_path):
    with ResultStore(tmp_path / "study.sqlite") as opened:
        yield opened


def test_wal_mode_and_schema(store):
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    columns = [row[1] for row in conn.execute("PRAGMA table_info(runs)")]
    assert columns == ["id", "kind", "spec", "status", "started", "finished", "metrics", "timings",
                       "versions", "host", "error", "traceback"]  # fmt: skip


def test_register_keeps_known_runs(store):
    a, b = spec(target="nl"), spec(target="de")
    assert store.register([a]) == 1
    store.finish(a.id, outcome({"f1": 1.0}))
    assert store.register([a, b]) == 1
    assert store.statuses() == {a.id: "done", b.id: "pending"}
    assert store.get(a.id).spec == a


def test_a_finished_run_is_one_transaction(store):
    run = spec(target="nl")
    store.register([run])
    statements = []
    store._conn.set_trace_callback(statements.append)
    store.finish(run.id, outcome({"f1": 80.0}))
    assert [s.split()[0] for s in statements] == ["BEGIN", "UPDATE", "COMMIT"]
    record = sqlite3.connect(store.path).execute("SELECT status, metrics, timings, versions, host FROM runs").fetchone()
    assert record[0] == "done" and json.loads(record[1]) == {"f1": 80.0}
    assert json.loads(record[2]) == {"seconds": 2.5} and json.loads(record[3])["xner"] == "0.1.0"


def test_session_resets_running_rows_and_removes_temp_folders(store):
    runs = [spec(target=t) for t in ("nl", "de", "fr")]
    store.register(runs)
    store.mark_running(runs[0].id, "2026-01-01T00:00:00+00:00")
    store.finish(runs[1].id, outcome({"f1": 1.0}))
    with ResultStore(store.path, store.runs_dir) as killed:  # a process killed mid-run
        half_written = killed.temp_dir(runs[0].id)
    (half_written / "model.bin").write_bytes(b"\0" * 10)
    with store.session():
        assert store.statuses() == {runs[0].id: "pending", runs[1].id: "done", runs[2].id: "pending"}
        assert not half_written.exists()


def test_a_run_made_again_keeps_nothing_of_its_first_making(store):
    run = spec(target="nl")
    store.register([run])
    store.finish(run.id, outcome({"f1": 80.0}))
    store.redo([run.id])
    record = store.get(run.id)
    assert (record.status, record.started, record.finished, record.metrics, record.timings) == (
        "pending", None, None, None, None)


def test_publish_replaces_a_stale_final_folder(store):
    stale = store.run_dir("abc")
    stale.mkdir(parents=True)
    (stale / "old.bin").write_text("stale")
    fresh = store.temp_dir("abc")
    (fresh / "model.bin").write_text("new")
    assert store.publish("abc", fresh) == stale
    assert sorted(p.name for p in stale.iterdir()) == ["model.bin"] and not fresh.exists()


def test_status_counts_and_failures(store):
    runs = [spec(target=t) for t in ("nl", "de", "fr")]
    store.register(runs)
    store.finish(runs[0].id, outcome({"f1": 1.0}))
    store.finish(runs[1].id, outcome(status="failed"))
    assert store.status_counts() == {"pending": 1, "running": 0, "done": 1, "failed": 1}
    assert [r.error for r in store.records("failed")] == ["ValueError: boom"]
    with pytest.raises(XnerError, match="unknown run status 'lost'; valid: done, failed, pending, running"):
        store.records("lost")


def test_opening_a_missing_store_for_reading(tmp_path):
    with pytest.raises(XnerError, match="no result store here"):
        ResultStore(tmp_path / "none.sqlite", create=False)
    assert not (tmp_path / "none.sqlite").exists()


def evaluation(role, source, target, volume, f1s, seed=1, **extra):
    params = {"role": role, "source": source, "target": target, "model": "embedded", "dataset": "wikiann",
              "train_size": None, "volume": volume, "seed": seed, **extra}  # fmt: skip
    rows = [{"perturbation": p, "precision": f, "recall": f, "f1": f, "f1_lo": f - 1, "f1_hi": f + 1} for p, f in f1s.items()]
    return spec(**params), {"rows": rows, "f1": f1s["clean"]}


@pytest.fixture
def results(store):
    runs = [
        evaluation("native", "nl", "nl", None, {"clean": 90.0, "mask-entity.v1": 60.0}),
        evaluation("transfer", "en", "nl", None, {"clean": 70.0, "mask-entity.v1": 50.0}),
        evaluation("student", "en", "nl", 0, {"clean": 70.0, "mask-entity.v1": 50.0}),
        evaluation("student", "en", "nl", 100, {"clean": 75.5, "mask-entity.v1": 49.0}),
        evaluation("student", "en+de", "nl", 100, {"clean": 80.0, "mask-entity.v1": 52.0}),  # no baseline
    ]
    store.register(s for s, _ in runs)
    for s, metrics in runs:
        store.finish(s.id, outcome(metrics))
    train = RunSpec("train", 1, {"lang": "nl"})
    store.register([train])
    store.finish(train.id, outcome({"f1": 91.0}))  # no rows: not in the table
    return store


def test_frame_explodes_evaluation_rows_into_the_tidy_schema(results):
    table = results.frame()
    assert list(table.columns) == list(COLUMNS)
    assert len(table) == 10
    native = table[(table.kind == "native") & (table.perturbation == "clean")].iloc[0]
    assert (native.source, native.target, native.f1, native.genus, native.family, native.relation) == (
        "nl", "nl", 90.0, "Germanic", "Indo-European", "")
    assert native.seconds == 2.5 and pd.isna(native.volume) and native.seed == 1
    transfer = table[table.kind == "transfer"].iloc[0]
    assert transfer.relation == "" and transfer.f1_lo == 69.0


def test_student_rows_get_their_teachers_baseline_and_gain(results):
    table = results.frame().set_index(["kind", "source", "volume", "perturbation"])
    assert table.loc[("student", "en", 100, "clean"), "teacher_f1"] == 70.0
    assert table.loc[("student", "en", 100, "clean"), "gain"] == pytest.approx(5.5)
    assert table.loc[("student", "en", 100, "mask-entity.v1"), "gain"] == pytest.approx(-1.0)
    assert table.loc[("student", "en", 0, "clean"), "gain"] == 0.0
    assert pd.isna(table.loc[("student", "en+de", 100, "clean"), "teacher_f1"])
    assert results.frame().query("kind == 'native'").gain.isna().all()


def test_a_teacher_run_of_several_targets_is_each_targets_own_baseline():
    """One English teacher run teaches ewe and yor: each student's gain is over the teacher's
    evaluation on the student's own target, not on whichever target came first."""
    from xner.study.store import _with_gain

    rows = [{"kind": "student", "model": "m", "source": "en", "target": target, "dataset": "masakhaner2",
             "train_size": 2000, "seed": 1, "perturbation": "clean", "teacher_runs": "en-run", "volume": volume,
             "f1": teacher + 2.0 * (volume > 0)}
            for target, teacher in (("ewe", 60.0), ("yor", 30.0)) for volume in (0, 2000)]
    table = _with_gain(pd.DataFrame(rows)).set_index(["target", "volume"])
    assert table.loc[("ewe", 2000), "teacher_f1"] == 60.0 and table.loc[("yor", 2000), "teacher_f1"] == 30.0
    assert table.loc[("ewe", 2000), "gain"] == table.loc[("yor", 2000), "gain"] == 2.0


def test_relation_of_study_pairs(store):
    s, metrics = evaluation("transfer", "nl", "af", None, {"clean": 60.0})
    store.register([s])
    store.finish(s.id, outcome(metrics))
    assert store.frame().relation.tolist() == ["genetic"]


def test_an_empty_store_has_an_empty_table(store):
    table = store.frame()
    assert table.empty and list(table.columns) == list(COLUMNS)


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_export_round_trips(results, tmp_path, fmt):
    out = tmp_path / f"results.{fmt}"
    results.export(fmt, out)
    read = {"csv": pd.read_csv, "json": pd.read_json, "parquet": pd.read_parquet}[fmt](out)
    assert len(read) == 10 and list(read.columns) == list(COLUMNS)
    assert sorted(read.f1.tolist()) == sorted(results.frame().f1.tolist())


def test_export_errors(results):
    with pytest.raises(XnerError, match="unknown export format 'xlsx'; valid: csv, json, parquet"):
        results.export("xlsx")
    with pytest.raises(XnerError, match="parquet is a binary format"):
        results.export("parquet")
    assert results.export("csv").startswith("run_id,kind,model,")
