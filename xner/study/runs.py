"""Run kinds: the registry of what a study can run, and the worker-side call of one run.

A study is a graph of runs (train a model, distill a student, evaluate a model). Each run
*kind* is a plain function ``(spec, ctx) -> metrics`` registered under a name and a
version (spaCy-style versioned registry): the version is hashed into every run id, so
bumping it after a change that alters results makes old results stale instead of silently
mixing them with new ones.

xner's own kinds are registered by :mod:`xner.study.kinds`, other packages' by the modules
of the ``xner.run_kinds`` entry point group (both loaded by
:func:`xner.study.execute.default_registry`); tests and plug-ins build their own
:class:`RunRegistry`.

>>> registry = RunRegistry()
>>> @registry.register("double", version=2)
... def double(spec, ctx):
...     return {"value": 2 * spec.params["x"]}
>>> registry.get("double").version
2
"""

from __future__ import annotations

import hashlib
import json
import platform
import socket
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from xner.errors import XnerError, one_line, one_of
from xner.study.schema import identity

__all__ = [
    "Dependency",
    "RunContext",
    "RunKind",
    "RunOutcome",
    "RunRegistry",
    "RunSpec",
    "RunTask",
    "REGISTRY",
    "execute_run",
    "one_line",
    "reachable",
    "register_run_kind",
    "run_id",
]

ENTRY_POINT_GROUP = "xner.run_kinds"
"""Entry point group whose modules register xner's run kinds when imported."""

DEFAULT_RESOURCES: Mapping[str, float] = {"num_cpus": 1, "num_gpus": 0}


def _canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal text (and hashes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def reachable(starts: Iterable[str], neighbours: Callable[[str], Iterable[str]]) -> list[str]:
    """Every run reached from ``starts`` (themselves included) by following ``neighbours`` --
    a run's dependencies, or the runs that depend on it -- each once, in the order first reached.

    >>> reachable(["c"], {"c": ["b"], "b": ["a"], "a": []}.get)
    ['c', 'b', 'a']
    """
    reached: dict[str, None] = {}
    stack = list(starts)
    while stack:
        run = stack.pop()
        if run not in reached:
            reached[run] = None
            stack.extend(neighbours(run))
    return list(reached)


def run_id(kind: str, version: int, params: Mapping[str, Any], deps: tuple[str, ...]) -> str:
    """Content hash of a run: first 16 hex digits of sha256 over its canonical JSON.

    Everything that changes a run's result is in ``params`` (fully resolved, defaults
    filled) or in its dependencies' ids, so equal ids mean equal results.

    >>> run_id("train", 1, {"lang": "nl"}, ())
    '3f71bde9c7294f82'
    """
    payload = {"kind": kind, "version": version, "params": params, "deps": sorted(deps)}
    return hashlib.sha256(_canonical_json(payload).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RunSpec:
    """One run of a study: what to run (kind, params), after what (deps), with what.

    ``id`` is derived from kind, version, params (as :func:`~xner.study.schema.identity`
    spells them, so ids outlive params-schema upgrades) and deps. ``resources`` (CPUs/GPUs a
    scheduler reserves) and ``data_dir`` (where data is read) do not change the result, so
    they are not hashed: a study moved to another machine or cluster keeps its ids. Nor is
    ``files``, the paths of input files by the content digest that params name them by
    (a raw-text pool: ``{"3f71bde9c7294f82": "pools/yor.txt"}``).
    """

    kind: str
    version: int
    params: Mapping[str, Any]
    deps: tuple[str, ...] = ()
    resources: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_RESOURCES))
    data_dir: str | None = None
    files: Mapping[str, str] = field(default_factory=dict)
    id: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "deps", tuple(self.deps))
        object.__setattr__(self, "id", run_id(self.kind, self.version, identity(self.kind, self.params), self.deps))

    def label(self, show: tuple[str, ...] = ()) -> str:
        """``kind key=value ...`` for progress and status lines: ``show`` params, else short ones.

        >>> spec = RunSpec("distill", 1, {"teachers": ["en", "de"], "seed": 1, "teacher_runs": ["1f.."], "volume": None})
        >>> spec.label()
        'distill teachers=en+de seed=1'
        >>> spec.label(show=("teachers", "volume"))
        'distill teachers=en+de'
        """
        shown = {
            name: "+".join(value) if isinstance(value, list) else value
            for name, value in self.params.items()
            if not name.endswith(("_run", "_runs"))
            and (isinstance(value, str | int | float) or (isinstance(value, list) and all(isinstance(v, str) for v in value)))
        }
        if show:  # the kind's own choice, less what a run does not have (volume of a native model)
            names = [name for name in show if self.params.get(name) is not None]
        else:
            names = [name for name, value in shown.items() if len(str(value)) <= 24][:6]
        return " ".join([self.kind, *(f"{name}={shown.get(name, self.params.get(name))}" for name in names)])

    def to_json(self) -> str:
        """The spec as stored in the result store (params in their planned order)."""
        return json.dumps(
            {
                "kind": self.kind,
                "version": self.version,
                "params": self.params,
                "deps": list(self.deps),
                "resources": self.resources,
                "data_dir": self.data_dir,
                "files": dict(self.files),
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> "RunSpec":
        """Inverse of :meth:`to_json`."""
        data = json.loads(text)
        data["deps"] = tuple(data["deps"])
        return cls(**data)


@dataclass(frozen=True)
class Dependency:
    """A finished run another run builds on: its spec, artifact folder and metrics."""

    spec: RunSpec
    dir: Path
    metrics: Mapping[str, Any]


def _ignore(*args: object, **kwargs: object) -> None:
    """Progress sink of runs whose progress nobody displays (pool and Ray workers)."""


def _print_log(message: str) -> None:
    """Log sink of worker processes: their stdout (Ray forwards it to the driver)."""
    print(message, flush=True)


@dataclass
class RunContext:
    """What a run kind gets besides its spec.

    Attributes:
        run_dir: the folder to write artifacts into. It is a temporary folder that the
            driver renames to ``runs/<id>`` only after the run succeeded, so a folder under
            its final name is always complete.
        deps: every run this one depends on, directly or transitively, by id.
        data_dir: the study's data root (``None``: ``XNER_DATA_DIR`` or the hub).
        files: input file paths by the digest the spec's params name them by.
        log: one line of progress text.
        progress: ``progress(completed, total)`` for a bar inside the run (shown by the
            sequential executor; a no-op in worker processes).
        timings: seconds per named phase, filled by :meth:`timed`, stored with the run.
    """

    run_dir: Path
    deps: Mapping[str, Dependency]
    data_dir: Path | None = None
    files: Mapping[str, str] = field(default_factory=dict)
    log: Callable[[str], None] = _print_log
    progress: Callable[..., None] = _ignore
    timings: dict[str, float] = field(default_factory=dict)

    def dep(self, run_id: str) -> Dependency:
        """The dependency with this id; a clear error if the run did not declare it."""
        try:
            return self.deps[run_id]
        except KeyError:
            raise one_of("dependency", run_id, self.deps) from None

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Add the wall time of a block to ``timings[name]`` (e.g. ``"train"``)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


RunFunction = Callable[[RunSpec, RunContext], dict]


@dataclass(frozen=True)
class RunKind:
    """A registered run kind.

    Attributes:
        name: what specs call it (``"train"``).
        version: hashed into run ids; bump it when the function's results change.
        func: ``(spec, ctx) -> metrics``; metrics must be JSON-serialisable. Evaluation
            kinds put their tidy result rows under ``metrics["rows"]``.
        primary: the metric a finished run's summary line shows.
        show: params the summary line shows (default: short scalar params).
    """

    name: str
    version: int
    func: RunFunction
    primary: str = "f1"
    show: tuple[str, ...] = ()


class RunRegistry:
    """Run kinds by name."""

    def __init__(self) -> None:
        self._kinds: dict[str, RunKind] = {}

    def register(
        self, name: str, version: int = 1, *, primary: str = "f1", show: tuple[str, ...] = ()
    ) -> Callable[[RunFunction], RunFunction]:
        """Decorator registering ``func`` as run kind ``name`` at ``version``.

        Registering the same function again (a module imported twice, e.g. in a worker
        process) is allowed; a different function under a taken name is an error.
        """

        def decorate(func: RunFunction) -> RunFunction:
            old = self._kinds.get(name)
            if old is not None and _qualified(old.func) != _qualified(func):
                raise XnerError(
                    f"run kind {name!r} is already registered by {_qualified(old.func)}; "
                    f"{_qualified(func)} cannot take its name"
                )
            self._kinds[name] = RunKind(name, version, func, primary, tuple(show))
            return func

        return decorate

    def get(self, name: str) -> RunKind:
        """The kind registered as ``name``; the error lists the registered ones."""
        if name in self._kinds:
            return self._kinds[name]
        if not self._kinds:
            raise XnerError(
                f"unknown run kind {name!r}: no run kinds are registered (modules named by the "
                f"{ENTRY_POINT_GROUP!r} entry points register them; reinstall xner: pip install -e .)"
            )
        raise one_of("run kind", name, self._kinds)

    def version(self, name: str) -> int:
        return self.get(name).version

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def names(self) -> list[str]:
        return sorted(self._kinds)


def _qualified(func: Callable) -> str:
    return f"{func.__module__}.{func.__qualname__}"


REGISTRY = RunRegistry()
"""The registry of xner's own run kinds and those of ``xner.run_kinds`` entry points."""

register_run_kind = REGISTRY.register


@dataclass(frozen=True)
class RunOutcome:
    """What one executed run produced, as the store records it."""

    status: str  # "done" | "failed"
    metrics: Mapping[str, Any] | None
    error: str | None
    traceback: str | None
    started: str
    finished: str
    timings: Mapping[str, float]
    versions: Mapping[str, str | None]
    host: str

    @property
    def seconds(self) -> float:
        return float(self.timings.get("seconds", 0.0))

    @classmethod
    def failure(cls, error: str, trace: str | None = None) -> "RunOutcome":
        """A run that failed before or outside its function (a failed dependency, a dead worker)."""
        now = _now()
        return cls("failed", None, error, trace, now, now, {"seconds": 0.0}, versions(), socket.gethostname())


@dataclass(frozen=True)
class RunTask:
    """Everything a worker needs to execute one run (picklable for pools and Ray)."""

    spec: RunSpec
    kind: RunKind
    run_dir: Path
    deps: Mapping[str, Dependency]
    log: Callable[[str], None] = _print_log
    progress: Callable[..., None] = _ignore


def versions() -> dict[str, str | None]:
    """Versions of the software that shapes results, recorded with every run."""

    def version_of(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    found: dict[str, str | None] = {p: version_of(p) for p in ("xner", "torch", "transformers")}
    found["python"] = platform.python_version()
    return found


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def execute_run(task: RunTask) -> RunOutcome:
    """Run one task and capture its outcome; a failing run becomes a ``failed`` outcome.

    Runs in the driver (sequential executor), a pool process or a Ray worker. Metrics
    are checked to be JSON-serialisable here, so a bad return value fails the run
    instead of the store.
    """
    ctx = RunContext(
        run_dir=task.run_dir,
        deps=task.deps,
        data_dir=Path(task.spec.data_dir) if task.spec.data_dir else None,
        files=task.spec.files,
        log=task.log,
        progress=task.progress,
    )
    started, start, cpu_start = _now(), time.perf_counter(), time.process_time()
    metrics: dict | None = None
    error = trace = None
    try:
        metrics = task.kind.func(task.spec, ctx)
        if not isinstance(metrics, Mapping):
            raise TypeError(f"run kind {task.kind.name!r} returned {type(metrics).__name__}, not a dict")
        metrics = json.loads(json.dumps(metrics))
    except Exception as err:  # noqa: BLE001 - every failure of a run is recorded, not raised
        metrics, error, trace = None, one_line(err), traceback.format_exc()
    # Wall time, and the CPU time of the run's process (all its threads): the compute a study
    # reports as CPU-hours, which a paused (SIGSTOP) or waiting process does not inflate. The
    # thread count too (the process executor gives each worker cores / workers).
    from xner.models.device import compute_threads

    timings = {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu_start,
               "threads": compute_threads(), **ctx.timings}
    return RunOutcome(
        status="failed" if error else "done",
        metrics=metrics,
        error=error,
        traceback=trace,
        started=started,
        finished=_now(),
        timings=timings,
        versions=versions(),
        host=socket.gethostname(),
    )
