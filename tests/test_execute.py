"""Executors: dependencies, failures, resume, a real kill -9, process pool and Ray.

The run kinds here are small but real: ``train`` writes a model file whose weight is a
hash of its params, ``distill`` reads its teachers' files, ``evaluate`` reads its model's
file and returns tidy rows; each execution is counted in a file. Run as a module
(``python -m test_execute CONFIG STORE``) this file is the study process the kill test
kills.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from rich.console import Console

from xner.errors import XnerError
from xner.study import ResultStore, RunRegistry, RunSpec, parse_study, run_study
from xner.study.execute import RichReporter, make_executor

KINDS = RunRegistry()
TESTS = Path(__file__).resolve().parent


def _weight(*parts: object) -> float:
    """A deterministic number in [50, 90) from the given values."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    return 50 + int(digest[:8], 16) % 4000 / 100


def _count(spec: RunSpec) -> None:
    """Count executions (COUNT_DIR) and take a while (SLEEP seconds), as real runs do; the
    user presses Ctrl-C when INTERRUPT_AT runs have started."""
    if counts := os.environ.get("COUNT_DIR"):
        if len(list(Path(counts).iterdir())) + 1 == int(os.environ.get("INTERRUPT_AT", 0)):
            raise KeyboardInterrupt
        with open(Path(counts) / spec.id, "a") as handle:
            handle.write("x\n")
    time.sleep(float(os.environ.get("SLEEP", "0")))


def _write_model(folder: Path, weight: float) -> None:
    (folder / "model.json").write_text(json.dumps({"weight": weight}))


def _read_model(folder: Path) -> float:
    return json.loads((folder / "model.json").read_text())["weight"]


@KINDS.register("train", version=1)
def train(spec, ctx):
    _count(spec)
    p = spec.params
    if ctx.data_dir and not (ctx.data_dir / p["dataset"] / p["lang"]).is_dir():
        raise ValueError(f"no training data for {p['lang']}\nsecond line")
    if ctx.data_dir and (ctx.data_dir / p["dataset"] / p["lang"] / "crash").exists():
        os._exit(3)  # the process dies (as when the OS kills it for memory)
    with ctx.timed("fit"):  # MODEL_SALT stands for another xner, whose model differs
        salt = [os.environ["MODEL_SALT"]] if "MODEL_SALT" in os.environ else []
        weight = _weight(p["lang"], p["seed"], p["train_size"], p["training"]["epochs"], *salt)
        ctx.progress(1, 1)
    _write_model(ctx.run_dir, weight)
    ctx.log(f"trained {p['lang']}")
    return {"f1": weight, "fingerprint": str(weight)}


@KINDS.register("distill", version=1)
def distill(spec, ctx):
    _count(spec)
    teachers = [_read_model(ctx.dep(run).dir) for run in spec.params["teacher_runs"]]
    weight = sum(teachers) / len(teachers) + spec.params["volume"] / 100
    _write_model(ctx.run_dir, weight)
    return {"teachers": len(teachers)}


@KINDS.register("evaluate", version=1)
def evaluate(spec, ctx):
    _count(spec)
    f1 = _read_model(ctx.dep(spec.params["model_run"]).dir)
    rows = [
        {"perturbation": name, "precision": f1 - i, "recall": f1 - i, "f1": f1 - i, "f1_lo": f1 - i - 1, "f1_hi": f1 - i + 1}
        for i, name in enumerate(spec.params["perturbations"])
    ]
    return {"rows": rows, "f1": f1}


STUDY = {
    "name": "tiny",
    "pairs": ["en:nl"],
    "teachers": {"nl": ["en", "en+de"]},
    "volumes": [100],
    "perturbations": ["mask-entity"],
    "seeds": [1, 2],
    "training": {"epochs": 1},
}


def quiet() -> RichReporter:
    return RichReporter(Console(file=open(os.devnull, "w")))


def run(tmp_path: Path, config: dict = STUDY, executor: str = "sequential", **options) -> ResultStore:
    """Run a study into ``tmp_path`` and return its store."""
    config = {**config, "output_dir": str(tmp_path)}
    outcome = run_study(config, executor=executor, registry=KINDS, progress=quiet(), report=False, **options)
    return ResultStore(outcome.store_path)


@pytest.fixture
def counted(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "counts"
    folder.mkdir()
    monkeypatch.setenv("COUNT_DIR", str(folder))
    return folder


def executions(counts: Path) -> dict[str, int]:
    return {path.name: len(path.read_text().split()) for path in counts.iterdir()}


def test_sequential_runs_everything_once_in_dependency_order(tmp_path, counted):
    store = run(tmp_path / "out")
    specs = parse_study(STUDY).expand(KINDS)
    assert store.status_counts() == {"pending": 0, "running": 0, "done": len(specs), "failed": 0}
    assert executions(counted) == {spec.id: 1 for spec in specs}
    finished = {r.id: r.finished for r in store.records()}
    for spec in specs:
        assert all(finished[dep] <= finished[spec.id] for dep in spec.deps)
    trained = [r for r in store.records() if r.kind == "train"]
    assert all((tmp_path / "out" / "runs" / r.id / "model.json").is_file() for r in trained)
    assert not list((tmp_path / "out" / "runs").glob(".tmp-*"))


def test_outcome_records_metrics_timings_versions(tmp_path):
    store = run(tmp_path)
    record = next(r for r in store.records() if r.kind == "train")
    expected = _weight(record.spec.params["lang"], record.spec.params["seed"], None, 1)
    assert record.metrics == {"f1": expected, "fingerprint": str(expected)}
    assert record.timings["seconds"] >= record.timings["fit"] >= 0
    assert set(record.versions) == {"xner", "torch", "transformers", "python"}
    assert record.host and record.started <= record.finished


def test_cpu_seconds_count_compute_not_waiting(tmp_path, monkeypatch):
    """A run's CPU time is its compute: a run that waits (here sleeps 0.3 s; in a study, a
    worker stopped with SIGSTOP) has wall seconds but hardly any CPU seconds."""
    monkeypatch.setenv("SLEEP", "0.3")
    store = run(tmp_path)
    record = next(r for r in store.records() if r.kind == "train")
    assert record.timings["seconds"] >= 0.3
    assert 0 <= record.timings["cpu_seconds"] < record.timings["seconds"] - 0.2
    assert record.timings["threads"] == torch.get_num_threads()


def test_resume_skips_done_runs(tmp_path, counted):
    run(tmp_path)
    first = executions(counted)
    bigger = {**STUDY, "volumes": [100, 200]}
    store = run(tmp_path, bigger)
    again = executions(counted)
    new = set(again) - set(first)
    assert all(again[run_id] == 1 for run_id in again)  # nothing ran twice
    assert {store.get(i).kind for i in new} == {"distill", "evaluate"}
    assert len(new) == 2 * 2 * 2  # (distill + evaluate) x 2 teacher sets x 2 seeds


def test_runs_of_an_edited_configs_earlier_version_are_counted_and_pruned_on_request(tmp_path):
    config = {**STUDY, "output_dir": str(tmp_path)}
    first = run_study(config, registry=KINDS, progress=quiet(), report=False)
    old = {r.id for r in ResultStore(first.store_path).records() if r.kind == "train"}
    edited = {**config, "training": {"epochs": 2}}  # other teachers: every run of the study changes
    kept = run_study(edited, registry=KINDS, progress=quiet(), report=False)
    assert kept.stale == len(first.specs) and kept.pruned == 0
    assert len(ResultStore(kept.store_path).records()) == 2 * len(first.specs)
    assert all((tmp_path / "runs" / run_id).is_dir() for run_id in old)
    counted = run_study(edited, registry=KINDS, dry_run=True)
    assert counted.stale == len(first.specs) and counted.to_run == 0
    pruned = run_study(edited, registry=KINDS, progress=quiet(), report=False, prune=True, only={"seed": "1"})
    assert pruned.pruned == len(first.specs) and pruned.stale == 0  # against the whole config, not the sample
    assert {r.id for r in ResultStore(pruned.store_path).records()} == {spec.id for spec in kept.specs}
    assert not any((tmp_path / "runs" / run_id).exists() for run_id in old)


def data_without(tmp_path: Path, missing: str) -> Path:
    """A data root with a folder per language of STUDY except ``missing``."""
    for lang in {"en", "nl", "de"} - {missing}:
        (tmp_path / "data" / "wikiann" / lang).mkdir(parents=True)
    return tmp_path / "data"


def test_a_failed_run_fails_its_dependents_and_the_rest_goes_on(tmp_path):
    data = data_without(tmp_path, "de")
    store = run(tmp_path, {**STUDY, "data_dir": str(data)})
    failed = {r.id: r for r in store.records("failed")}
    de_train = [r for r in failed.values() if r.kind == "train"]
    assert len(de_train) == 2  # one per seed
    assert de_train[0].error == "ValueError: no training data for de"
    assert "Traceback" in de_train[0].traceback and "second line" in de_train[0].traceback
    blocked = [r for r in failed.values() if r.kind != "train"]
    assert {r.error for r in blocked} == {f"dependency {r.id} (train) failed" for r in de_train}
    # de's transfer evaluation + the en+de students (distill and evaluate, 2 volumes) per seed
    assert len(blocked) == 2 * (1 + 2 * 2)
    assert store.status_counts()["done"] == len(parse_study(STUDY).expand(KINDS)) - len(failed)

    (data / "wikiann" / "de").mkdir()
    store = run(tmp_path, {**STUDY, "data_dir": str(data)})  # failed runs are retried
    assert store.status_counts()["failed"] == 0


def test_missing_dependency_is_an_error(tmp_path):
    orphan = RunSpec("evaluate", 1, {"model_run": "0" * 16}, deps=("0" * 16,))
    with ResultStore(tmp_path / "s.sqlite") as store, pytest.raises(XnerError, match="neither planned nor done"):
        make_executor().run([orphan], store, KINDS, quiet())


def test_unknown_run_kind_lists_registered_ones(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as store, pytest.raises(XnerError, match="valid: distill, evaluate, train"):
        make_executor().run([RunSpec("bake", 1, {})], store, KINDS, quiet())


def test_an_empty_registry_says_where_kinds_come_from():
    with pytest.raises(XnerError, match="no run kinds are registered .*'xner.run_kinds' entry points"):
        RunRegistry().get("train")


def test_a_taken_kind_name_cannot_be_reused():
    registry = RunRegistry()
    registry.register("train")(train)
    registry.register("train")(train)  # the same function again (a re-imported module) is fine
    with pytest.raises(XnerError, match="run kind 'train' is already registered by test_execute.train"):
        registry.register("train")(evaluate)


def test_unknown_executor():
    with pytest.raises(XnerError, match="unknown executor 'dask'; valid: process, ray, sequential"):
        make_executor("dask")


def test_store_is_held_by_one_process(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as store, store.session():
        with ResultStore(tmp_path / "s.sqlite") as other, pytest.raises(XnerError, match="in use by another"):
            with other.session():
                pass


def test_progress_prints_one_summary_line_per_run(tmp_path):
    lines = tmp_path / "progress.txt"
    with open(lines, "w") as handle:
        config = {**STUDY, "output_dir": str(tmp_path), "seeds": [1]}
        run_study(config, registry=KINDS, progress=RichReporter(Console(file=handle, width=200)), report=False)
    text = lines.read_text()
    assert "done   train lang=en dataset=wikiann model=embedded seed=1 | f1 " in text
    assert "  trained en\n" in text  # the run's own log lines
    assert text.count("done   evaluate ") == len([s for s in parse_study(config).expand(KINDS) if s.kind == "evaluate"])


class Recorder(RichReporter):
    def __init__(self) -> None:
        super().__init__(Console(file=open(os.devnull, "w")))
        self.order: list[str] = []

    def finished(self, spec, outcome, kind) -> None:
        super().finished(spec, outcome, kind)
        self.order.append(f"{spec.kind} {spec.params.get('lang', spec.params.get('target'))}")


def test_runs_of_one_language_run_together(tmp_path):
    # planned per seed (nl de nl de); run per language, across seeds
    recorder = Recorder()
    config = {"name": "t", "languages": ["nl", "de"], "seeds": [1, 2], "output_dir": str(tmp_path)}
    run_study(config, registry=KINDS, progress=recorder, report=False)
    assert recorder.order == [f"{kind} {lang}" for lang in ("de", "nl") for _ in (1, 2) for kind in ("train", "evaluate")]


def test_the_larger_student_of_a_language_starts_first():
    from xner.study.execute import _Schedule

    base = {"model": "m", "dataset": "d", "target": "de", "train_size": 100, "seed": 1}
    specs = [RunSpec("distill", 1, {**base, "volume": volume}) for volume in (250, 0, 4000, 1000)]
    specs.append(RunSpec("evaluate", 1, {**base, "volume": None, "role": "transfer"}))
    schedule = _Schedule({spec.id: spec for spec in specs}, {})
    order = [schedule.pop() for _ in specs]
    volumes = [next(s for s in specs if s.id == run_id).params["volume"] for run_id in order]
    assert volumes[:3] == [4000, 1000, 250] and set(volumes[3:]) == {0, None}


def test_a_finished_teachers_students_run_before_the_next_teacher():
    # an interrupted study then leaves at most the teachers in flight with students to run
    from xner.study.execute import _Schedule

    teachers = [RunSpec("train", 1, {"model": "m", "dataset": "d", "lang": lang, "seed": 1}) for lang in ("de", "nl")]
    students = [RunSpec("distill", 1, {"model": "m", "dataset": "d", "target": target, "seed": 1, "volume": 500},
                        deps=(teacher.id,)) for teacher, target in zip(teachers, ("yo", "zu"))]
    specs = {spec.id: spec for spec in teachers + students}
    schedule = _Schedule(specs, {})
    order = []
    for _ in range(len(specs)):  # one worker: each run finishes before the next starts
        order.append(schedule.pop())
        schedule.done(order[-1])
    assert [specs[run_id].kind for run_id in order] == ["train", "distill", "train", "distill"]
    assert specs[order[1]].deps == (order[0],) and specs[order[3]].deps == (order[2],)


def results(store: ResultStore):
    return store.frame().drop(columns="seconds").sort_values(["run_id", "perturbation"]).reset_index(drop=True)


def test_process_pool_gives_the_sequential_results(tmp_path):
    sequential = results(run(tmp_path / "seq"))
    pool = run(tmp_path / "pool", executor="process", workers=2)
    assert results(pool).equals(sequential)
    # each worker's share of the cores, recorded with every run (bf16 sums depend on it)
    share = int(os.environ.get("OMP_NUM_THREADS") or max(1, (os.cpu_count() or 1) // 2))
    assert {record.timings["threads"] for record in pool.records()} == {share}


def test_a_dying_pool_worker_fails_its_run_only(tmp_path):
    data = data_without(tmp_path, "")
    (data / "wikiann" / "de" / "crash").touch()
    config = {**STUDY, "seeds": [1], "data_dir": str(data)}
    store = run(tmp_path, config, executor="process", workers=1)
    [crashed] = [r for r in store.records("failed") if r.kind == "train"]
    assert crashed.spec.params["lang"] == "de" and crashed.error.startswith("worker failed: BrokenProcessPool")
    assert store.status_counts() == {"pending": 0, "running": 0, "done": 8, "failed": 6}


# -- kill -9 in the middle of a study ----------------------------------------------------
def _study_process(config: Path, store: Path, counts: Path, sleep: float) -> subprocess.Popen:
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "COUNT_DIR": str(counts), "SLEEP": str(sleep)}
    return subprocess.Popen(
        [sys.executable, "-m", "test_execute", str(config), str(store)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _done(store_path: Path) -> dict[str, dict]:
    try:
        with ResultStore(store_path, create=False) as store:
            return {r.id: r.metrics for r in store.records("done")}
    except XnerError:  # not created yet, or created but its table not yet
        return {}


@pytest.mark.slow
def test_kill_9_mid_study_loses_nothing_finished_and_uses_nothing_half_written(tmp_path):
    config = tmp_path / "study.yaml"
    config.write_text(json.dumps({**STUDY, "output_dir": str(tmp_path / "out")}))  # JSON is YAML
    store_path, counts = tmp_path / "out" / "study.sqlite", tmp_path / "counts"
    counts.mkdir()
    total = len(parse_study(STUDY).expand(KINDS))

    process = _study_process(config, store_path, counts, sleep=0.1)
    deadline = time.monotonic() + 60
    while len(_done(store_path)) < total // 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = _done(store_path)
    assert total // 3 <= len(before) < total, "the study must be killed mid-way"

    assert _study_process(config, store_path, counts, sleep=0).wait(timeout=120) == 0
    after = _done(store_path)
    assert len(after) == total
    assert {run_id: after[run_id] for run_id in before} == before  # identical metrics
    assert all(executions(counts)[run_id] == 1 for run_id in before)  # not executed again
    assert not list((tmp_path / "out" / "runs").glob(".tmp-*"))

    with ResultStore(store_path) as killed:
        assert results(killed).equals(results(run(tmp_path / "uninterrupted")))


# -- Ray -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(TESTS)}},
    )
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_gives_the_sequential_results(tmp_path, ray_cluster):
    sequential = results(run(tmp_path / "seq"))
    on_ray = run(tmp_path / "ray", executor="ray")
    assert results(on_ray).equals(sequential)
    assert ray_cluster.is_initialized()  # a cluster the executor did not start is left running


@pytest.mark.slow
def test_ray_records_failures_and_goes_on(tmp_path, ray_cluster):
    config = {**STUDY, "seeds": [1], "data_dir": str(data_without(tmp_path, "de"))}
    store = run(tmp_path, config, executor="ray")
    errors = sorted(r.error.split(" ")[0] for r in store.records("failed"))
    assert errors == ["ValueError:"] + ["dependency"] * 5
    assert store.status_counts()["done"] == len(parse_study(config).expand(KINDS)) - 6


if __name__ == "__main__":
    run_study(sys.argv[1], store=sys.argv[2], registry=KINDS, progress=quiet(), report=False)
