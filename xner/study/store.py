"""The resumable result store: one SQLite file of runs, plus a folder of run artifacts.

A study may be killed at any moment (``kill -9``, a lost node, a full disk) and rerun; the
store makes that safe:

- SQLite in WAL mode, one transaction per finished run: a run is ``done`` with all of
  its metrics, timings and versions, or it is not done at all.
- A run's artifacts (model weights...) are written to a temporary folder next to their
  final place and renamed (``os.replace``) to ``runs/<id>`` only when the run succeeded,
  just before its row is committed; dependents start only after that commit, so they
  never read a half-written folder. Temporary folders left by a killed process are
  removed, and ``running`` rows it left are reset to ``pending``, when the next study
  session opens the store.
- One study process at a time holds the store (an advisory lock the OS frees when the
  process dies).

Evaluation runs keep their results as tidy rows under ``metrics["rows"]``;
:meth:`ResultStore.frame` explodes them into the table of ``docs/results_schema.md`` (one row
per run and test set), adding the columns derived from specs and from other runs.

>>> store = ResultStore(tmp / "study.sqlite")  # doctest: +SKIP
>>> store.status_counts()                        # doctest: +SKIP
{'pending': 0, 'running': 0, 'done': 12, 'failed': 1}
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import uuid
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xner.errors import XnerError, one_of
from xner.io import TEMP_PREFIX, atomic_file, atomic_write
from xner.languages import STUDY_PAIRS, get_language
from xner.options import DEFAULT_CHECKPOINT, layers_name
from xner.study.runs import RunOutcome, RunSpec, reachable
from xner.study.schema import PARAMS_SCHEMA, upgrade

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COLUMNS", "EXPORT_FORMATS", "RunRecord", "ResultStore", "STATUSES"]

STATUSES = ("pending", "running", "done", "failed")

COLUMNS = (
    "run_id", "kind", "model", "source", "target", "dataset", "genus", "family", "relation",
    "train_size", "volume", "seed", "perturbation", "precision", "recall", "f1", "f1_lo",
    "f1_hi", "teacher_f1", "gain", "entity_overlap", "seconds",
)  # fmt: skip
"""Columns of the tidy results table, in order (``docs/results_schema.md``)."""

_FROM_PARAMS = ("model", "source", "target", "dataset", "train_size", "volume", "seed")
_TEACHER_KEY = ["model", "source", "target", "dataset", "train_size", "seed", "perturbation"]
"""What identifies a student's teachers when their runs are not in the store (the run ids,
``teacher_runs``, do when they are: they also tell teachers trained differently apart)."""
_RELATIONS = {(pair.hrl, pair.lrl): pair.relation for pair in STUDY_PAIRS}
_TEMP_PREFIX = TEMP_PREFIX
_SESSION_PREFIX = ".session-"

EXPORT_FORMATS = ("csv", "parquet", "json")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    started TEXT,
    finished TEXT,
    metrics TEXT,
    timings TEXT,
    versions TEXT,
    host TEXT,
    error TEXT,
    traceback TEXT
);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS folders (id TEXT PRIMARY KEY);
"""
# ``folders``: the runs whose folder was published, so that a done run whose folder was
# deleted is found and redone. Stores older than the table get the folders present when
# they are first opened for writing.


@dataclass(frozen=True)
class RunRecord:
    """One row of the ``runs`` table, JSON columns decoded."""

    id: str
    kind: str
    spec: RunSpec
    status: str
    started: str | None
    finished: str | None
    metrics: dict[str, Any] | None
    timings: dict[str, float] | None
    versions: dict[str, str | None] | None
    host: str | None
    error: str | None
    traceback: str | None


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


def _check_folder(folder: Path) -> None:
    """A folder the store needs, or a missing one it can create: a file there (or above it)
    would otherwise surface as a bare ``File exists`` on the first write."""
    for place in (folder, *folder.parents):
        if place.exists():
            if not place.is_dir():
                raise XnerError(f"{place}: is a file, not a folder (a study writes its store and run folders "
                                "there: set output_dir or --store elsewhere)")
            return


class ResultStore:
    """A study's runs in SQLite (WAL) and their artifacts under ``runs_dir``.

    Args:
        path: the SQLite file (created with its folder unless ``create=False``).
        runs_dir: where run folders go; default ``<path's folder>/runs``.
        create: ``False`` to open an existing store only (``xner status``/``results``).

    Raises:
        XnerError: ``create=False`` and no store at ``path``, or the file is no store.
    """

    def __init__(self, path: str | Path, runs_dir: str | Path | None = None, *, create: bool = True) -> None:
        self.path = Path(path)
        self.runs_dir = Path(runs_dir) if runs_dir is not None else self.path.parent / "runs"
        if not create and not self.path.is_file():
            raise XnerError(f"{self.path}: no result store here (run `xner study CONFIG` first)")
        if self.path.is_file() and self.path.stat().st_size == 0:  # never silently a new, empty store
            raise XnerError(f"{self.path}: the result store is empty (0 bytes: truncated or overwritten); "
                            "restore it from a backup, or delete it to start the study over")
        for folder in (self.path.parent, self.runs_dir):
            _check_folder(folder)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self._conn.row_factory = sqlite3.Row
        try:
            if create:
                self._conn.execute("PRAGMA journal_mode=WAL")
                had_folders = self._has_table("folders")
                self._conn.executescript(_SCHEMA)
                if not had_folders:
                    self._record_existing_folders()
            self._conn.execute("SELECT id FROM runs LIMIT 1")
            problem = self._conn.execute("PRAGMA quick_check(1)").fetchone()[0]
        except sqlite3.DatabaseError as err:
            self._conn.close()
            raise XnerError(f"{self.path}: corrupt or not an xner result store ({err}); restore it from a "
                            "backup") from None
        if problem != "ok":
            self._conn.close()
            raise XnerError(f"{self.path}: the result store is corrupt ({problem}); restore it from a backup "
                            f"(`sqlite3 {self.path.name} .recover` may save its rows)")
        self._check_schema()
        self._session = uuid.uuid4().hex[:12]  # names this process's temporary run folders

    def _has_table(self, name: str) -> bool:
        query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        return self._conn.execute(query, (name,)).fetchone() is not None

    def _record_existing_folders(self) -> None:
        done = [row["id"] for row in self._conn.execute("SELECT id FROM runs WHERE status = 'done'")]
        present = [(run_id,) for run_id in done if self.run_dir(run_id).is_dir()]
        with self._transaction() as conn:
            conn.executemany("INSERT OR IGNORE INTO folders (id) VALUES (?)", present)

    def params_schema(self) -> int:
        """The params schema the store's specs are written in (1: stores older than the
        ``meta`` table)."""
        if not self._has_table("meta"):
            return 1
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'params_schema'").fetchone()
        return int(row["value"]) if row else 1

    def _check_schema(self) -> int:
        """The store's params schema; a store of a newer xner is refused.

        Raises:
            XnerError: the store was written by a newer xner.
        """
        schema = self.params_schema()
        if schema > PARAMS_SCHEMA:
            raise XnerError(f"{self.path}: written by a newer xner (params schema {schema}; this xner "
                            f"reads up to {PARAMS_SCHEMA}): upgrade xner")
        return schema

    def upgrade(self) -> None:
        """Rewrite the specs of a store written by an older params schema in today's layout
        (:mod:`xner.study.schema`); every run keeps its id, status and results. A study session
        does it (:meth:`session`) once it holds the store; older specs read the same before.
        """
        schema = self._check_schema()
        if schema == PARAMS_SCHEMA:
            return
        with self._transaction() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            for row in conn.execute("SELECT id, spec FROM runs").fetchall():
                data = json.loads(row["spec"])
                data["params"] = upgrade(data["kind"], data["params"], schema)
                spec = RunSpec.from_json(json.dumps(data))
                if spec.id != row["id"]:
                    raise XnerError(f"{self.path}: run {row['id']} would change its id to {spec.id} on upgrade "
                                    f"from params schema {schema}; the store is left as it was")
                conn.execute("UPDATE runs SET spec = ? WHERE id = ?", (spec.to_json(), row["id"]))
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('params_schema', ?)", (str(PARAMS_SCHEMA),))

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # -- a study session ---------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator["ResultStore"]:
        """Hold the store for one study process, upgrade a store of an older params schema, and
        clean up after a killed predecessor.

        Raises:
            XnerError: another live process holds the store.
        """
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                raise XnerError(
                    f"{self.path}: in use by another xner process (pid {lock.read().strip() or '?'}); "
                    "wait for it or stop it"
                ) from None
            lock.seek(0)
            lock.truncate()
            lock.write(str(os.getpid()))
            lock.flush()
            self.upgrade()
            try:
                with self._runs_dir_session():
                    self.recover()
                    yield self
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextmanager
    def _runs_dir_session(self) -> Iterator[None]:
        """Hold ``runs/.session-<id>.lock`` while this process has temporary folders there.

        Studies with different stores may share one runs folder; each only removes the
        temporary folders of sessions whose lock no live process holds.
        """
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        path = self.runs_dir / f"{_SESSION_PREFIX}{self._session}.lock"
        with open(path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                path.unlink(missing_ok=True)

    def _live_sessions(self) -> set[str]:
        """Ids of the sessions whose runs-folder lock a live process holds (dead ones' files go)."""
        live = {self._session}
        for path in self.runs_dir.glob(f"{_SESSION_PREFIX}*.lock"):
            session = path.name[len(_SESSION_PREFIX) : -len(".lock")]
            if session in live:
                continue
            try:
                with open(path, "a") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    path.unlink(missing_ok=True)  # its process is gone
            except BlockingIOError:
                live.add(session)
            except FileNotFoundError:
                pass
        return live

    def lost_needed(self, planned: Collection[str]) -> dict[str, RunRecord]:
        """The done runs whose published folder is gone and that a planned run still to do
        needs (directly, or through another such run), by id.

        A lost folder nobody waits for does not matter: its run's results stand. One a
        pending run will read must be made again (:meth:`redo`).

        Args:
            planned: the ids of the study's runs (a store may hold runs of an earlier
                version of its config, which nobody will run).
        """
        records = {record.id: record for record in self.records()}
        rows = self._conn.execute("SELECT f.id FROM folders f JOIN runs r ON r.id = f.id WHERE r.status = 'done'")
        lost = {row["id"] for row in rows if not self.run_dir(row["id"]).is_dir()}
        to_do = [i for i in planned if i in records and records[i].status != "done"]
        starts = [dep for i in to_do for dep in records[i].spec.deps if dep in lost]
        # a lost run's own lost inputs are made again first
        needed = reachable(starts, lambda run: [dep for dep in records[run].spec.deps if dep in lost])
        return {run: records[run] for run in needed}

    def redo(self, run_ids: Iterable[str]) -> None:
        """Reset done runs to ``pending``: their folder, if any, is no longer theirs, and their
        metrics and timings go with it (a report would otherwise count a run still to do)."""
        ids = [(i,) for i in run_ids]
        with self._transaction() as conn:
            conn.executemany("UPDATE runs SET status = 'pending', started = NULL, finished = NULL, metrics = NULL, "
                             "timings = NULL WHERE id = ?", ids)
            conn.executemany("DELETE FROM folders WHERE id = ?", ids)

    def forget(self, run_ids: Collection[str]) -> int:
        """Delete runs -- rows and run folders -- that no config plans any more (the runs of an
        earlier version of a study's config, which would otherwise stay in its results).

        Only call this while holding the store (:meth:`session`).

        Returns:
            How many runs were deleted.
        """
        ids = [(i,) for i in run_ids]
        with self._transaction() as conn:
            deleted = conn.executemany("DELETE FROM runs WHERE id = ?", ids).rowcount
            conn.executemany("DELETE FROM folders WHERE id = ?", ids)
        for run_id in run_ids:
            shutil.rmtree(self.run_dir(run_id), ignore_errors=True)
        return deleted

    def made_from(self, run_ids: Collection[str]) -> list[str]:
        """The done runs made, directly or not, from any of ``run_ids`` (those excluded)."""
        dependents: dict[str, list[str]] = defaultdict(list)
        status = {}
        for record in self.records():
            status[record.id] = record.status
            for dep in record.spec.deps:
                dependents[dep].append(record.id)
        return [run for run in reachable(run_ids, dependents.__getitem__)
                if run not in run_ids and status[run] == "done"]

    def recover(self) -> tuple[int, int]:
        """Reset ``running`` rows to ``pending`` and delete temporary run folders of dead sessions.

        Only call this while holding the store (:meth:`session`): the rows and folders of
        a live process would be taken from under it.

        Returns:
            (rows reset, folders removed).
        """
        with self._transaction() as conn:
            reset = conn.execute("UPDATE runs SET status = 'pending', started = NULL WHERE status = 'running'").rowcount
        removed = 0
        if self.runs_dir.is_dir():
            live = self._live_sessions()
            for folder in self.runs_dir.glob(_TEMP_PREFIX + "*"):
                if not any(session in folder.name for session in live):
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
        return reset, removed

    # -- writing -----------------------------------------------------------------------
    def register(self, specs: Iterable[RunSpec]) -> int:
        """Add specs as ``pending`` runs (known ids keep their status); returns how many are new."""
        rows = [(spec.id, spec.kind, spec.to_json()) for spec in specs]
        with self._transaction() as conn:
            before = conn.total_changes
            conn.executemany("INSERT OR IGNORE INTO runs (id, kind, spec, status) VALUES (?, ?, ?, 'pending')", rows)
            return conn.total_changes - before

    def mark_running(self, run_id: str, started: str) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE runs SET status = 'running', started = ?, error = NULL, traceback = NULL WHERE id = ?",
                (started, run_id),
            )

    def finish(self, run_id: str, outcome: RunOutcome) -> None:
        """Record a finished run -- every column in one transaction."""
        values = (
            outcome.status,
            outcome.started,
            outcome.finished,
            _dumps(outcome.metrics),
            _dumps(dict(outcome.timings)),
            _dumps(dict(outcome.versions)),
            outcome.host,
            outcome.error,
            outcome.traceback,
            run_id,
        )
        with self._transaction() as conn:
            conn.execute(
                "UPDATE runs SET status = ?, started = ?, finished = ?, metrics = ?, timings = ?, "
                "versions = ?, host = ?, error = ?, traceback = ? WHERE id = ?",
                values,
            )

    # -- run folders -------------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        """The final artifact folder of a run (complete whenever it exists for a done run)."""
        return self.runs_dir / run_id

    def temp_dir(self, run_id: str) -> Path:
        """A fresh temporary folder for a run to write into, next to its final folder."""
        folder = self.runs_dir / f"{_TEMP_PREFIX}{self._session}-{run_id}-{uuid.uuid4().hex[:8]}"
        folder.mkdir(parents=True)
        return folder

    def publish(self, run_id: str, temp: Path) -> Path:
        """Move a finished run's temporary folder to its final name (replacing a stale one)."""
        final = self.run_dir(run_id)
        if final.exists():  # left by a process killed after its rename, before its commit
            shutil.rmtree(final)
        os.replace(temp, final)
        with self._transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO folders (id) VALUES (?)", (run_id,))
        return final

    # -- reading -----------------------------------------------------------------------
    def statuses(self) -> dict[str, str]:
        """Status of every run by id."""
        return {row["id"]: row["status"] for row in self._conn.execute("SELECT id, status FROM runs")}

    def status_counts(self) -> dict[str, int]:
        """How many runs are pending, running, done and failed."""
        counts = dict.fromkeys(STATUSES, 0)
        for row in self._conn.execute("SELECT status, COUNT(*) AS n FROM runs GROUP BY status"):
            counts[row["status"]] = row["n"]
        return counts

    def records(self, status: str | None = None) -> list[RunRecord]:
        """Every run (or those with one status), in insertion order."""
        if status is not None and status not in STATUSES:
            raise one_of("run status", status, STATUSES)
        query, args = "SELECT * FROM runs", ()
        if status is not None:
            query, args = query + " WHERE status = ?", (status,)
        return [_record(row) for row in self._conn.execute(query + " ORDER BY rowid", args)]

    def get(self, run_id: str) -> RunRecord:
        row = self._conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise XnerError(f"{self.path}: no run {run_id!r}")
        return _record(row)

    def frame(self) -> "pd.DataFrame":
        """The tidy results table: one row per finished evaluation run and test set.

        Descriptive columns come from the evaluation's spec (role -> ``kind``, model,
        source, target, dataset, train_size, volume, seed), ``genus`` and ``family`` of the
        target and ``relation`` from the language registry, ``seconds`` from the run's timings,
        and ``teacher_f1``/``gain`` of student rows from the volume-0 row of the same
        teachers, target, seed and perturbation. Columns of the rows themselves win.
        """
        import pandas as pd

        done = self.records("done")
        by_id = {record.id: record for record in done}
        rows = [row for record in done for row in _result_rows(record, by_id)]
        table = pd.DataFrame(rows)
        for column in COLUMNS:
            if column not in table:
                table[column] = None
        table = table[[*COLUMNS, *(c for c in table.columns if c not in COLUMNS)]]
        for column in ("train_size", "volume", "seed"):
            table[column] = table[column].astype("Int64")
        return _with_gain(table)

    def summary(self) -> "pd.DataFrame":
        """Mean F1 (NER) or accuracy (document tasks, with a ``task`` column) over seeds per model,
        kind, source, target, train size and volume, with one column per perturbation (``clean``
        first): the table a study ends with."""
        table = self.frame()
        keys = ["model", "kind", "source", "target", "train_size", "volume"]
        if "task" in table:
            keys.insert(1, "task")
            table["f1"] = table["f1"].astype(float).fillna(table["accuracy"].astype(float))
        means = table.groupby([*keys, "perturbation"], dropna=False, sort=False)["f1"].mean().unstack()
        perturbations = sorted(means.columns, key=lambda name: (name != "clean", name))
        means = means[perturbations].round(2).reset_index()
        return means.astype(object).where(means.notna(), None)

    def export(self, fmt: str, out: str | Path | None = None) -> str | None:
        """Write :meth:`frame` as csv, parquet or json to ``out``, or return it as text.

        Raises:
            XnerError: unknown format, or parquet without ``out`` (it is binary).
        """
        if fmt not in EXPORT_FORMATS:
            raise one_of("export format", fmt, EXPORT_FORMATS)
        table = self.frame()
        if fmt == "parquet":
            if out is None:
                raise XnerError("parquet is a binary format: give an output file (--out results.parquet)")
            with atomic_file(out, "wb") as handle:
                table.to_parquet(handle, index=False)
            return None
        text = table.to_csv(index=False) if fmt == "csv" else table.to_json(orient="records", indent=1)
        if out is None:
            return text
        atomic_write(out, text)
        return None


def _record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        id=row["id"],
        kind=row["kind"],
        spec=RunSpec.from_json(row["spec"]),
        status=row["status"],
        started=row["started"],
        finished=row["finished"],
        metrics=_loads(row["metrics"]),
        timings=_loads(row["timings"]),
        versions=_loads(row["versions"]),
        host=row["host"],
        error=row["error"],
        traceback=row["traceback"],
    )


def _lineage(code: str | None) -> dict[str, str]:
    """The target's ``genus`` (Germanic) and ``family`` (Indo-European), or empty strings."""
    try:
        language = get_language(code) if code else None
    except XnerError:
        language = None
    return {"genus": language.genus if language else "", "family": language.family if language else ""}


def _relation(source: str | None, target: str | None) -> str:
    """The study-pair relation of a single-source (source, target), else ``""``."""
    try:
        key = (get_language(source or "").code, get_language(target or "").code)
    except XnerError:
        return ""
    return _RELATIONS.get(key, "")


def _result_rows(record: RunRecord, by_id: Mapping[str, RunRecord]) -> list[dict[str, Any]]:
    """The tidy rows of one finished run (none unless it is an evaluation)."""
    rows = (record.metrics or {}).get("rows")
    if not rows:
        return []
    params = record.spec.params
    base = {
        "run_id": record.id,
        "kind": params.get("role"),
        **{name: params.get(name) for name in _FROM_PARAMS},
        **_lineage(params.get("target")),
        "relation": _relation(params.get("source"), params.get("target")),
        "seconds": (record.timings or {}).get("seconds"),
        **_model_settings(by_id.get(params.get("model_run")), by_id),
    }
    return [{**base, **row} for row in rows]


def _model_settings(model: RunRecord | None, by_id: Mapping[str, RunRecord]) -> dict[str, Any]:
    """How an evaluated model was made, read off the run graph: the labelled sentences,
    trained layers and checkpoint policy of its teacher (a trained model -- native or
    transferred -- is its own), a student's trained layers, and the teacher run ids (what a
    student's gain is measured against). Empty when the model's run is not in the store."""
    if model is None:
        return {}
    if model.spec.kind == "train":
        teacher, settings = model, {"teacher_runs": model.id}
    else:
        teacher_runs = model.spec.params.get("teacher_runs") or []
        teacher = by_id.get(teacher_runs[0]) if teacher_runs else None
        student = (model.spec.params.get("distillation") or {}).get("student")
        settings = {"teacher_runs": "+".join(teacher_runs),
                    "student_train_layers": layers_name(student.get("train_layers")) if student else None}
    if teacher is not None:
        training = teacher.spec.params.get("training") or {}
        settings |= {"teacher_train_size": (teacher.metrics or {}).get("train_sentences"),
                     "teacher_train_layers": layers_name(training.get("train_layers")),
                     "teacher_checkpoint": training.get("checkpoint", DEFAULT_CHECKPOINT)}
    return settings


def _with_gain(table: "pd.DataFrame") -> "pd.DataFrame":
    """Fill ``teacher_f1`` and ``gain`` of student rows from their volume-0 baseline: the
    evaluation of the same teachers on the same target and test set."""
    if table.empty:
        return table.assign(teacher_f1=float("nan"), gain=float("nan"))
    described = table[_TEACHER_KEY].map(str).agg("|".join, axis=1)
    teachers = table["teacher_runs"].where(table["teacher_runs"].notna(), described) if "teacher_runs" in table else described
    # one teacher run teaches several targets (an English teacher of every target): the
    # baseline is its evaluation on this target
    keyed = table.assign(_teachers=teachers + "|" + table["target"].map(str) + "|" + table["perturbation"].map(str))
    students = (table["kind"] == "student").to_numpy()
    baseline = keyed.loc[students & (table["volume"] == 0).to_numpy(dtype=bool, na_value=False)]
    baseline = baseline[["_teachers", "f1"]].drop_duplicates("_teachers").rename(columns={"f1": "_teacher"})
    teacher = keyed[["_teachers"]].merge(baseline, on="_teachers", how="left")["_teacher"]
    table["teacher_f1"] = teacher.where(students).to_numpy(dtype=float)
    table["gain"] = table["f1"].astype(float) - table["teacher_f1"]
    return table
