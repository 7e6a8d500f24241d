"""Execute a study's runs: in process, in a local process pool, or as Ray tasks.

Every executor shares one scheduler (:meth:`Executor.run`):

- resume: runs already ``done`` in the store are skipped; pending and failed ones run;
- dependencies: a run starts when all its dependencies are done; when a run fails, every
  run that depends on it is recorded as failed (``dependency <id> (<kind>) failed``) and
  the rest of the study goes on;
- depth first: among the runs that are ready, those that continue finished work (a
  teacher's students and evaluations) go before new roots (the next teacher), so an
  interrupted study leaves few teachers whose students are still to run (a teacher whose run
  folder is lost -- a new machine, a cleaned output folder -- runs again for them);
- reuse: then those of the same model, dataset and language run together (one language's
  cached tokens, features and soft labels are reused by the runs that follow each other);
- the driver alone writes the store and publishes run folders; workers only compute.

Executors differ only in where a run executes: ``sequential`` (default) calls it in
this process and shows progress inside runs; ``process`` uses a spawn-context
:class:`~concurrent.futures.ProcessPoolExecutor` of N workers; ``ray`` submits each run
as a Ray task with the spec's ``num_cpus``/``num_gpus`` to a local cluster (``address``
``None``) or an existing one (``auto`` or ``HOST:PORT``). On a multi-node cluster the
output folder must be on a filesystem all nodes share, with xner installed on each.

>>> run_study("configs/quick.yaml")  # doctest: +SKIP
StudyRun(..., counts={'done': 42, 'failed': 0}, ...)
"""

from __future__ import annotations

import heapq
import multiprocessing
import os
import shutil
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from xner.errors import XnerError, one_of
from xner.study.runs import (
    ENTRY_POINT_GROUP,
    REGISTRY,
    Dependency,
    RunKind,
    RunOutcome,
    RunRegistry,
    RunSpec,
    RunTask,
    execute_run,
    one_line,
    reachable,
)
from xner.study.preflight import preflight
from xner.study.restrict import restrict_runs
from xner.study.spec import Study, load_study, parse_study
from xner.study.store import ResultStore, RunRecord

__all__ = [
    "EXECUTORS",
    "Executor",
    "ProcessExecutor",
    "RayExecutor",
    "RichReporter",
    "SequentialExecutor",
    "StudyRun",
    "default_registry",
    "make_executor",
    "run_study",
    "summary_line",
]


# -- progress --------------------------------------------------------------------------
def summary_line(spec: RunSpec, outcome: RunOutcome, kind: RunKind | None = None) -> str:
    """One line per finished run: status, kind, key params, primary metric, seconds.

    >>> summary_line(spec, outcome, kind)  # doctest: +SKIP
    'done   train lang=nl dataset=wikiann seed=1 | f1 84.20 | 31.2 s'
    """
    head = f"{outcome.status:<6} {spec.label(kind.show if kind else ())}"
    if outcome.status != "done":
        return f"{head} | {outcome.error}"
    primary = kind.primary if kind else "f1"
    value = (outcome.metrics or {}).get(primary)
    metric = f" | {primary} {value:.2f}" if isinstance(value, int | float) else ""
    return f"{head}{metric} | {outcome.seconds:.1f} s"


class RichReporter:
    """A rich progress bar over the study's runs, one summary line per finished run, and
    (sequential executor) a bar and log lines inside the current run.

    Args:
        console: where to draw (default: stderr, so stdout keeps the results table).
    """

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
        )
        self._runs: TaskID | None = None
        self._inner: dict[str, TaskID] = {}  # a bar per run in flight

    def start(self, total: int, skipped: int) -> None:
        self._progress.start()
        if skipped:
            self.console.print(f"{skipped} runs already done (resumed from the store)", highlight=False)
        self._runs = self._progress.add_task("runs", total=total)

    def grow(self, extra: int) -> None:
        """More runs to do than announced (done runs made from a lost one that changed)."""
        if self._runs is not None:
            self._progress.update(self._runs, total=self._progress.tasks[self._runs].total + extra)

    def started(self, spec: RunSpec) -> None:
        self._inner[spec.id] = self._progress.add_task(f"  {spec.kind} {spec.id}", total=None)

    def step(self, completed: float, total: float | None = None) -> None:
        """Progress inside the run started last (sequential: the one running)."""
        if self._inner:
            self._progress.update(next(reversed(self._inner.values())), completed=completed, total=total)

    def log(self, message: str) -> None:
        self.console.print(f"  {message}", style="dim", markup=False, highlight=False, soft_wrap=True)

    def finished(self, spec: RunSpec, outcome: RunOutcome, kind: RunKind | None) -> None:
        if spec.id in self._inner:
            self._progress.remove_task(self._inner.pop(spec.id))
        self.console.print(summary_line(spec, outcome, kind), markup=False, highlight=False, soft_wrap=True)
        if self._runs is not None:
            self._progress.advance(self._runs)

    def close(self) -> None:
        self._progress.stop()


# -- scheduling ------------------------------------------------------------------------
def _reuse_key(spec: RunSpec) -> tuple[str | int, ...]:
    """Runs that depend on finished runs first (depth first: see the module docstring); then
    runs on the same model, dataset and language sort together; within them the larger
    student first (more unlabeled sentences, longer to run: started early, it does not end a
    pool's work alone while the other workers idle). The order changes no number: cached
    features and soft labels are the same bits whichever run computes them first."""
    params = spec.params
    language = params.get("target", params.get("lang", ""))
    fields = (params.get("model"), params.get("dataset"), language, params.get("train_size"), params.get("seed"))
    return (0 if spec.deps else 1, *(str(value) for value in fields), -(params.get("volume") or 0), spec.id)


def _same_model(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> bool:
    """Whether a redone run made the model it made before (by the ``fingerprint`` its kind
    reports; a run without one is taken to have changed)."""
    old, new = (before or {}).get("fingerprint"), (after or {}).get("fingerprint")
    return old is not None and old == new


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Executor(ABC):
    """Runs specs in dependency order, recording each finished run in the store.

    Subclasses say where one run executes: :meth:`_open` / :meth:`_close` bracket a study,
    :meth:`_submit` starts a task and returns a handle, :meth:`_wait` blocks until at least
    one handle finished and returns ``(handle, outcome)`` pairs.
    """

    capacity = 1  # runs in flight at once

    def run(
        self,
        specs: Iterable[RunSpec],
        store: ResultStore,
        registry: RunRegistry,
        progress: RichReporter | None = None,
    ) -> Counter[str]:
        """Execute the runs of ``specs`` that are not done yet.

        Args:
            specs: runs of a study; their dependencies must be among them or done.
            store: where outcomes are recorded (held for the whole call).
            registry: the run kinds.
            progress: the reporter (default :class:`RichReporter` on stderr).

        Returns:
            How many runs finished ``done`` and ``failed`` in this call.

        Raises:
            XnerError: an unknown run kind, a missing dependency, or the store in use.
        """
        by_id = {spec.id: spec for spec in specs}
        reporter = progress or RichReporter()
        counts: Counter[str] = Counter()
        with store.session():
            store.register(by_id.values())
            lost = store.lost_needed(by_id.keys())
            store.redo(lost)
            statuses = store.statuses()
            todo = [i for i in by_id if statuses[i] != "done"]
            remade = {i: record.spec for i, record in lost.items()}  # as stored: the config may have moved on
            names = {by_id[i].kind for i in todo} | {spec.kind for spec in remade.values()}
            kinds = {name: registry.get(name) for name in names}
            reporter.start(len(todo), len(by_id) - len(todo))
            self._open()
            try:
                if lost:
                    reporter.log(f"{len(lost)} done runs lost the run folders that runs still to do need: they run again")
                    self._execute(_Schedule(remade, statuses), {**by_id, **remade}, kinds, store, reporter, counts)
                    changed = [i for i, old in lost.items() if not _same_model(old.metrics, store.get(i).metrics)]
                    made_from = store.made_from(changed)
                    store.redo(made_from)
                    if made_from:
                        reporter.log(f"{len(changed)} of them made another model than before: the {len(made_from)} "
                                     "done runs made from the old one run again")
                        again = [i for i in made_from if i in by_id]  # runs of an older config stay pending
                        kinds.update({by_id[i].kind: registry.get(by_id[i].kind) for i in again})
                        reporter.grow(len(again))
                self._execute(_Schedule(by_id, store.statuses()), by_id, kinds, store, reporter, counts)
            finally:
                self._close()
                reporter.close()
        return counts

    def _execute(self, schedule: "_Schedule", by_id: Mapping[str, RunSpec], kinds: Mapping[str, RunKind],
                 store: ResultStore, reporter: RichReporter, counts: Counter[str]) -> None:
        """Run a schedule's runs as they become ready, ``capacity`` at a time, recording each."""
        in_flight: dict[Hashable, tuple[RunSpec, Path]] = {}
        while schedule.ready or in_flight:
            while schedule.ready and len(in_flight) < self.capacity:
                spec = by_id[schedule.pop()]
                task = RunTask(spec, kinds[spec.kind], store.temp_dir(spec.id), _dependencies(spec, by_id, store))
                store.mark_running(spec.id, _now())
                reporter.started(spec)
                in_flight[self._submit(self._prepare(task, reporter))] = (spec, task.run_dir)
            for handle, outcome in self._wait(list(in_flight)):
                spec, temp = in_flight.pop(handle)
                for run_id, result in _record(spec, temp, outcome, store, schedule):
                    counts[result.status] += 1
                    reporter.finished(by_id[run_id], result, kinds[by_id[run_id].kind])

    def _prepare(self, task: RunTask, reporter: RichReporter) -> RunTask:
        """The task as submitted; the sequential executor wires in live progress."""
        return task

    def _open(self) -> None:
        """Start the workers (if any)."""

    def _close(self) -> None:
        """Stop the workers (if any)."""

    @abstractmethod
    def _submit(self, task: RunTask) -> Hashable: ...

    @abstractmethod
    def _wait(self, handles: Sequence[Hashable]) -> list[tuple[Hashable, RunOutcome]]: ...


class _Schedule:
    """Which runs are left, which are ready (a heap ordered for reuse), who waits on whom."""

    def __init__(self, by_id: Mapping[str, RunSpec], statuses: Mapping[str, str]) -> None:
        self.by_id = by_id
        self.todo = {run_id for run_id in by_id if statuses.get(run_id) != "done"}
        for run_id in self.todo:
            for dep in by_id[run_id].deps:
                if dep not in by_id and statuses.get(dep) != "done":
                    raise XnerError(f"run {run_id} needs run {dep}, which is neither planned nor done")
        self.waiting = {run_id: {d for d in by_id[run_id].deps if d in self.todo} for run_id in self.todo}
        self.dependents: dict[str, list[str]] = defaultdict(list)
        for run_id, deps in self.waiting.items():
            for dep in deps:
                self.dependents[dep].append(run_id)
        self.blocked: set[str] = set()
        self.ready: list[tuple[tuple[str, ...], str]] = []
        for run_id, deps in self.waiting.items():
            if not deps:
                heapq.heappush(self.ready, (_reuse_key(by_id[run_id]), run_id))

    def pop(self) -> str:
        return heapq.heappop(self.ready)[1]

    def done(self, run_id: str) -> None:
        """A run finished: its dependents whose dependencies are all done become ready."""
        for child in self.dependents.pop(run_id, []):
            self.waiting[child].discard(run_id)
            if not self.waiting[child] and child not in self.blocked:
                heapq.heappush(self.ready, (_reuse_key(self.by_id[child]), child))

    def failed(self, run_id: str) -> list[str]:
        """A run failed: every run that depends on it, directly or not, cannot run."""
        below = reachable(self.dependents.pop(run_id, []), lambda child: self.dependents.pop(child, []))
        blocked = [child for child in below if child not in self.blocked]
        self.blocked.update(blocked)
        return blocked


def _dependencies(spec: RunSpec, by_id: Mapping[str, RunSpec], store: ResultStore) -> dict[str, Dependency]:
    """Every run ``spec`` depends on, directly or transitively (all done by now)."""
    records: dict[str, RunRecord] = {}

    def deps_of(run_id: str) -> tuple[str, ...]:
        records[run_id] = store.get(run_id)
        return records[run_id].spec.deps

    order = reachable(spec.deps, deps_of)
    return {run_id: Dependency(by_id.get(run_id, records[run_id].spec), store.run_dir(run_id),
                               records[run_id].metrics or {}) for run_id in order}


def _record(
    spec: RunSpec, temp: Path, outcome: RunOutcome, store: ResultStore, schedule: _Schedule
) -> list[tuple[str, RunOutcome]]:
    """Publish and store one outcome; fail the runs that depended on a failed one."""
    if outcome.status == "done":
        try:
            if any(temp.iterdir()):
                store.publish(spec.id, temp)
        except OSError as err:
            outcome = RunOutcome.failure(f"cannot publish the run folder: {one_line(err)}")
    shutil.rmtree(temp, ignore_errors=True)
    store.finish(spec.id, outcome)
    if outcome.status == "done":
        schedule.done(spec.id)
        return [(spec.id, outcome)]
    results = [(spec.id, outcome)]
    for child in schedule.failed(spec.id):
        blocked = RunOutcome.failure(f"dependency {spec.id} ({spec.kind}) failed")
        store.finish(child, blocked)
        results.append((child, blocked))
    return results


# -- executors -------------------------------------------------------------------------
class SequentialExecutor(Executor):
    """One run at a time, in this process, with progress shown inside each run."""

    def __init__(self) -> None:
        self._finished: dict[int, RunOutcome] = {}
        self._submitted = 0

    def _prepare(self, task: RunTask, reporter: RichReporter) -> RunTask:
        return replace(task, log=reporter.log, progress=reporter.step)

    def _submit(self, task: RunTask) -> Hashable:
        self._submitted += 1
        self._finished[self._submitted] = execute_run(task)
        return self._submitted

    def _wait(self, handles: Sequence[Hashable]) -> list[tuple[Hashable, RunOutcome]]:
        return [(handle, self._finished.pop(handle)) for handle in handles]


def _init_worker(threads: int, driver: int) -> None:
    """Pool worker initializer: share the cores among workers (read when torch loads), and
    exit when the driver dies -- a ``kill -9`` leaves nobody to shut the pool down, and a
    worker in the middle of a run would hold its memory until the run ends."""
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, str(threads))
    threading.Thread(target=_exit_with, args=(driver,), name="xner-driver-watch", daemon=True).start()


def _exit_with(driver: int, every: float = 0.5) -> None:
    """Exit this process as soon as its parent is no longer ``driver`` (it was re-parented)."""
    while os.getppid() == driver:
        time.sleep(every)
    os._exit(1)


class ProcessExecutor(Executor):
    """A local pool of ``workers`` spawned processes (default: one per CPU core).

    Each worker gets ``cores // workers`` threads. A worker that dies (killed, out of
    memory) fails the runs it held; the pool is restarted and the study goes on.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.capacity = workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None

    def _open(self) -> None:
        threads = max(1, (os.cpu_count() or 1) // self.capacity)
        self._pool = ProcessPoolExecutor(
            max_workers=self.capacity,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(threads, os.getpid()),
        )

    def _close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)

    def _submit(self, task: RunTask) -> Hashable:
        assert self._pool is not None
        return self._pool.submit(execute_run, task)

    def _wait(self, handles: Sequence[Hashable]) -> list[tuple[Hashable, RunOutcome]]:
        finished, _ = wait(handles, return_when=FIRST_COMPLETED)  # type: ignore[arg-type]
        results, broken = [], False
        for future in finished:
            results.append((future, _future_outcome(future)))
            broken = broken or isinstance(future.exception(), BrokenProcessPool)
        if broken:
            self._close()
            self._open()
        return results


def _future_outcome(future: Future) -> RunOutcome:
    error = future.exception()
    if error is None:
        return future.result()
    return RunOutcome.failure(f"worker failed: {one_line(error)}")


class RayExecutor(Executor):
    """Each run a Ray task reserving its spec's ``num_cpus``/``num_gpus``.

    Args:
        address: ``None`` starts a local cluster; ``"auto"`` or ``"HOST:PORT"`` joins a
            running one (``ray start --head`` on the head node). If Ray is already
            initialised in this process, that cluster is used and left running.
        workers: runs in flight at once (default: the cluster's CPUs).
    """

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        self.address = address
        self.workers = workers
        self._owns_cluster = False

    def _open(self) -> None:
        try:
            import ray
        except ImportError:
            raise XnerError("the ray executor needs Ray: pip install 'xner[ray]'") from None
        self._ray = ray
        if not ray.is_initialized():
            ray.init(address=self.address)
            self._owns_cluster = True
        self._remote = ray.remote(execute_run)
        self.capacity = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))

    def _close(self) -> None:
        if self._owns_cluster:
            self._ray.shutdown()
            self._owns_cluster = False

    def _submit(self, task: RunTask) -> Hashable:
        resources = task.spec.resources
        options = {"num_cpus": resources.get("num_cpus", 1), "num_gpus": resources.get("num_gpus", 0)}
        return self._remote.options(**options).remote(task)

    def _wait(self, handles: Sequence[Hashable]) -> list[tuple[Hashable, RunOutcome]]:
        ready, _ = self._ray.wait(list(handles), num_returns=1)
        results = []
        for ref in ready:
            try:
                results.append((ref, self._ray.get(ref)))
            except Exception as err:  # noqa: BLE001 - a lost worker or node fails that run only
                results.append((ref, RunOutcome.failure(f"ray task failed: {one_line(err)}")))
        return results


EXECUTORS = {"sequential": SequentialExecutor, "process": ProcessExecutor, "ray": RayExecutor}


def make_executor(name: str = "sequential", workers: int | None = None, address: str | None = None) -> Executor:
    """An executor by name (``sequential``, ``process`` or ``ray``)."""
    if name not in EXECUTORS:
        raise one_of("executor", name, EXECUTORS)
    if workers is not None and workers < 1:
        raise XnerError(f"workers must be at least 1, got {workers}")
    if name == "process":
        return ProcessExecutor(workers)
    if name == "ray":
        return RayExecutor(address, workers)
    return SequentialExecutor()


# -- a whole study ---------------------------------------------------------------------
@dataclass(frozen=True)
class StudyRun:
    """What :func:`run_study` did.

    Attributes:
        study: the validated config.
        store_path: the result store.
        specs: the study's runs.
        to_run: runs that were not done when the call started.
        counts: runs that finished done/failed in this call (empty for a dry run).
        report: the report written at the end, or ``None``.
        stale: runs in the store that the config does not plan (an earlier version's), left in it.
        pruned: such runs deleted (``prune=True``).
    """

    study: Study
    store_path: Path
    specs: list[RunSpec]
    to_run: int
    counts: Mapping[str, int]
    report: Path | None = None
    stale: int = 0
    pruned: int = 0


def _as_study(config: Study | Mapping[str, Any] | str | Path) -> Study:
    if isinstance(config, Study):
        return config
    if isinstance(config, Mapping):
        return parse_study(config)
    return load_study(config)


def _write_report(study: Study, store: ResultStore) -> Path | None:
    """The report of a study with results (``<output_dir>/report``), else ``None``."""
    if store.frame().empty:
        return None
    from xner.report import write_report

    return Path(write_report(store.path, study.out_dir / "report", study.model_dump(mode="json")))


def default_registry() -> RunRegistry:
    """:data:`REGISTRY` after importing xner's own kinds (:mod:`xner.study.kinds`) and every
    module of the ``xner.run_kinds`` entry points.

    A package adds run kinds by declaring, in its ``pyproject.toml``,
    ``[project.entry-points."xner.run_kinds"] name = "package.module"`` where the module
    registers its kinds with :func:`register_run_kind`.
    """
    import xner.study.kinds  # noqa: F401 - registers xner's own kinds (imports torch: only when a study runs)

    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        entry_point.load()
    return REGISTRY



def run_study(
    config: Study | Mapping[str, Any] | str | Path,
    store: str | Path | None = None,
    executor: str | None = None,
    *,
    workers: int | None = None,
    address: str | None = None,
    dry_run: bool = False,
    registry: RunRegistry | None = None,
    progress: RichReporter | None = None,
    report: bool = True,
    only: Mapping[str, str] | None = None,
    prune: bool = False,
) -> StudyRun:
    """Run every run of a study that is not done yet, then write its report.

    Args:
        config: a :class:`Study`, a config mapping, or the path of a YAML config.
        store: the result store (default ``<output_dir>/study.sqlite``).
        executor: ``sequential``, ``process`` or ``ray`` (default: the config's).
        workers: pool size / Ray runs in flight (default: the config's, else the cores).
        address: Ray cluster address (default: the config's).
        dry_run: plan only: expand the study and count what would run.
        registry: run kinds (default: xner's, see :func:`default_registry`, whose data files and
            models are checked first: :func:`~xner.study.preflight.preflight`).
        progress: the progress reporter (default: rich, on stderr).
        report: write the report (:func:`xner.report.write_report`) into
            ``<output_dir>/report`` at the end, when there are results.
        only: run a restricted sample: the runs whose params match these ``key: value``
            pairs, with their dependencies (:func:`xner.study.restrict.restrict_runs`).
        prune: first delete the store's runs that the (whole) config does not plan -- those of
            an edited config's earlier version, which the results and the report would
            otherwise still hold -- with their run folders.

    Returns:
        A :class:`StudyRun`; the results are in ``ResultStore(run.store_path).frame()``.

    >>> run = run_study("configs/quick.yaml", executor="ray")  # doctest: +SKIP
    """
    study = _as_study(config)
    planned = study.expand(registry or default_registry())
    specs = restrict_runs(planned, only or {})
    if registry is None:  # xner's own kinds: their data and models are known before any run
        preflight(study, specs)
    registry = registry or default_registry()
    store_path = Path(store) if store is not None else study.out_dir / "study.sqlite"
    planned_ids = {spec.id for spec in planned}
    if dry_run:
        done = {}
        if store_path.is_file():
            with ResultStore(store_path, create=False) as existing:
                done = existing.statuses()
        to_run = sum(done.get(spec.id) != "done" for spec in specs)
        return StudyRun(study, store_path, specs, to_run, {}, stale=len(done.keys() - planned_ids))
    options = study.executor
    runner = make_executor(executor or options.name, options.workers if workers is None else workers,
                           address or options.address)
    with ResultStore(store_path, runs_dir=study.out_dir / "runs") as result_store:
        pruned = 0
        if prune:
            with result_store.session():
                pruned = result_store.forget(result_store.statuses().keys() - planned_ids)
        statuses = result_store.statuses()
        to_run = sum(statuses.get(spec.id) != "done" for spec in specs)
        counts = runner.run(specs, result_store, registry, progress)
        written = _write_report(study, result_store) if report else None
        stale = len(result_store.statuses().keys() - planned_ids)
    return StudyRun(study, store_path, specs, to_run, dict(counts), written, stale=stale, pruned=pruned)
