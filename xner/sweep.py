"""The unlabeled-volume sweep: student F1 as a function of unlabeled target text.

For each seed, the target's pool (default: its train split, labels dropped; see
:mod:`xner.data.pools`) is permuted once; the student of volume V learns from its first V
sentences, so volumes are nested.
Teacher soft labels and frozen-layer features are cached per sentence and shared by
every (volume, seed). Volume 0 is the teacher itself, applied zero-shot (for several
teachers: their weighted ensemble), the baseline every student's gain is measured
against. A volume larger than the pool is reported as skipped, never silently capped.

The sweep is a study (:mod:`xner.study`): the teachers (model folders trained outside it)
are taken in as ``teacher`` runs, every student is a ``distill`` run and every score an
``evaluate`` run, with the params a study gives them, in a result store under
``models_dir``. Finished runs are never redone: an interrupted sweep (even ``kill -9``)
resumes where it stopped when called again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from xner.distillation.losses import distill_loss_name
from xner.distillation.student import DistillConfig
from xner.distillation.weighting import teacher_language
from xner.data.pools import TRAIN, name_sources, pool_digest, read_pool
from xner.data.sampling import check_limit
from xner.decoding import DEFAULT_DECODING
from xner.errors import XnerError
from xner.languages import get_language
from xner.models.tagger import Tagger
from xner.paths import cache_dir
from xner.perturb import get_perturbation
from xner.pipeline import DataSpec
from xner.study.execute import RichReporter, default_registry, make_executor
from xner.study.runs import RunRegistry, RunSpec
from xner.study.store import ResultStore

__all__ = ["sweep_table", "volume_sweep"]

SCORES = ("precision", "recall", "f1", "f1_lo", "f1_hi")


def volume_sweep(
    teachers: Sequence[str | Path],
    target: str,
    volumes: Sequence[int],
    seeds: Sequence[int] = (0,),
    *,
    data: DataSpec = DataSpec(),
    config: DistillConfig | None = None,
    perturbations: Sequence[str] = (),
    pool: Sequence[str | Path] = (TRAIN,),
    test_limit: int | None = None,
    n_resamples: int = 1000,
    models_dir: str | Path | None = None,
    on_row: Callable[[dict], None] | None = None,
    progress: RichReporter | None = None,
) -> list[dict]:
    """Train and evaluate one student per (volume, seed) as study runs; return tidy rows.

    Args:
        teachers: model folders (``xner train``); several: a multi-source ensemble.
        perturbations: also score every model on these perturbed test sets (relative to the
            first teacher's language, see :mod:`xner.perturb`).
        pool: the unlabeled pool's sources in order (see :func:`xner.data.pools.read_pool`):
            ``train`` (the target's train split) and/or pool files.
        models_dir: the sweep's result store and models (default ``$XNER_CACHE/sweeps``).

    Returns:
        One row per (volume, seed, test set): ``target``, ``genus``, ``family``, ``source`` (teacher
        languages joined by ``+``), ``volume``, ``seed``, ``precision``,
        ``recall``, ``f1``, ``f1_lo``, ``f1_hi``, ``teacher_f1``, ``gain``,
        ``seconds``, ``perturbation`` (``clean`` or its name), ``status``
        (``done`` or why the volume was skipped), ``pool`` (the pool's digest).

    Raises:
        XnerError: a run failed (the store keeps why: ``xner status <models_dir>/study.sqlite``).
    """
    config = config or DistillConfig()
    check_limit(test_limit, "test_limit")
    if not teachers:
        raise XnerError("a sweep needs at least one teacher model folder")
    loaded = [Tagger.load(path) for path in teachers]
    registry = default_registry()
    plan = _Plan(loaded, [Path(path).resolve() for path in teachers], target, data, config, perturbations,
                 test_limit, n_resamples, registry)
    sentences = read_pool(pool, target, lambda: data.split(target, "train"))
    plan.pool = name_sources(pool)
    pool = len(sentences)
    baseline = plan.student(seeds[0] if seeds else 0, 0)  # the teachers zero-shot: every gain's reference
    cells = [(seed, volume, plan.student(seed, volume) if volume <= pool else None) for seed in seeds for volume in volumes]
    models_dir = Path(models_dir) if models_dir is not None else cache_dir() / "sweeps"
    names = {get_perturbation(kind).name: kind for kind in perturbations}
    base = {"kind": "student", "model": loaded[0].base_name, "target": target,
            "genus": get_language(target).genus, "family": get_language(target).family,
            "source": "+".join(teacher_language(t) for t in loaded), "dataset": data.dataset,
            "weighting": config.weighting, "loss": distill_loss_name(config), "pool": pool_digest(sentences)}
    test_sets = ["clean", *perturbations]
    with ResultStore(models_dir / "study.sqlite", runs_dir=models_dir / "runs") as store:
        make_executor("sequential").run(plan.specs.values(), store, registry, progress)
        failed = [record for record in store.records("failed") if record.id in plan.specs]
        if failed:
            raise XnerError(f"{len(failed)} run(s) failed, e.g. {failed[0].spec.label()}: {failed[0].error} "
                            f"(xner status {store.path})")
        teacher = _scores(store, baseline, names)
        rows = []
        for seed, volume, runs in cells:
            key = {**base, "volume": int(volume), "seed": int(seed)}
            if runs is None:
                skipped = f"skipped: volume {volume} > {pool} unlabeled sentences available"
                new_rows = [{**key, "perturbation": name, "status": skipped} for name in test_sets]
            else:
                scores = _scores(store, runs, names)
                new_rows = [{**key, "perturbation": name, **scores[name], "teacher_f1": teacher[name]["f1"],
                             "gain": scores[name]["f1"] - teacher[name]["f1"], "status": "done"} for name in test_sets]
            rows += new_rows
            for row in new_rows if on_row is not None else ():
                on_row(row)
    return rows


class _Plan:
    """The runs of a sweep, with the params a study gives them (so a study shares them)."""

    def __init__(self, teachers: Sequence[Tagger], paths: Sequence[Path], target: str, data: DataSpec,
                 config: DistillConfig, perturbations: Sequence[str], test_limit: int | None, n_resamples: int,
                 registry: RunRegistry) -> None:
        self.registry = registry
        self.data = data
        self.specs: dict[str, RunSpec] = {}
        self.pool: tuple[list[str], dict[str, str]] = ([TRAIN], {})  # distill params' pool, files by digest
        self.teacher_runs = [self.add("teacher", {"path": str(path), "fingerprint": tagger.fingerprint})
                             for tagger, path in zip(teachers, paths)]
        self.cell = {"target": target, "dataset": data.dataset, "model": teachers[0].base_name}
        self.languages = [teacher_language(tagger) for tagger in teachers]
        options = config.model_dump(exclude={"train"})
        self.options = {**options, "student": config.train.model_dump(exclude={"seed"})}
        self.evaluation = {"split": "test", "perturbations": ["clean", *(get_perturbation(k).name for k in perturbations)],
                           "test_size": test_limit, "bootstrap": n_resamples, "decoding": DEFAULT_DECODING,
                           "rate": 1.0}

    def add(self, kind: str, params: dict[str, Any], deps: Sequence[RunSpec] = (), files: Mapping[str, str] | None = None) -> RunSpec:
        where = None if self.data.data_dir is None else str(self.data.data_dir)
        spec = RunSpec(kind, self.registry.version(kind), params, tuple(dep.id for dep in deps), data_dir=where,
                       files=dict(files or {}))
        return self.specs.setdefault(spec.id, spec)

    def student(self, seed: int, volume: int) -> tuple[RunSpec, RunSpec]:
        """The distill run of one (seed, volume) and the run evaluating it."""
        distillation = self.options if volume else {"weighting": self.options["weighting"]}
        pool, files = self.pool if volume else ([TRAIN], {})  # the teachers zero-shot draw nothing
        distill = self.add("distill", {
            "teacher_runs": [run.id for run in self.teacher_runs], "teachers": self.languages, **self.cell,
            "seed": seed, "train_size": None, "volume": volume, "distillation": distillation, "pool": pool,
        }, self.teacher_runs, files)
        evaluate = self.add("evaluate", {
            "model_run": distill.id, "role": "student", "source": "+".join(self.languages),
            "target": self.cell["target"], "dataset": self.cell["dataset"], "label_map": dict(self.data.label_map),
            "model": self.cell["model"], "seed": seed, "train_size": None, "volume": volume, **self.evaluation,
        }, [distill])
        return distill, evaluate


def _scores(store: ResultStore, runs: tuple[RunSpec, RunSpec], names: Mapping[str, str]) -> dict[str, dict]:
    """Scores per test set (perturbations named as requested) of one student, with the seconds its
    distillation and evaluation took."""
    distill, evaluate = (store.get(run.id) for run in runs)
    seconds = sum((record.timings or {}).get("seconds", 0.0) for record in (distill, evaluate))
    return {names.get(row["perturbation"], row["perturbation"]): {**{k: row[k] for k in SCORES}, "seconds": seconds}
            for row in evaluate.metrics["rows"]}


def sweep_table(rows: Sequence[dict]):
    """The sweep's rows as a DataFrame in a stable column order (tidy results schema)."""
    import pandas as pd

    columns = ["kind", "model", "target", "genus", "family", "source", "dataset", "pool", "weighting", "loss", "volume", "seed", "perturbation",
               "precision", "recall", "f1", "f1_lo", "f1_hi", "teacher_f1", "gain", "seconds", "status"]
    frame = pd.DataFrame(list(rows))
    return frame[[c for c in columns if c in frame.columns]]
