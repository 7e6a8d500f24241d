"""The unlabeled-volume sweep: student F1 as a function of unlabeled target text.

For each seed, the target's train split (labels dropped) is permuted once; the
student of volume V learns from its first V sentences, so volumes are nested.
Teacher soft labels and frozen-layer features are computed once for the whole
pool and shared by every (volume, seed). Volume 0 is the teacher itself, applied
zero-shot (for several teachers: their weighted ensemble), the baseline every
student's gain is measured against. A volume larger than the pool is reported as
skipped, never silently capped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from xner.data.corpus import Sentence
from xner.data.pools import TRAIN, pool_digest, read_pool
from xner.data.sampling import nested_subset
from xner.decoding import DEFAULT_DECODING, decode
from xner.evaluation import score_predictions
from xner.languages import get_language
from xner.models.tagger import Tagger
from xner.pipeline import DataSpec
from xner.train import DistillConfig, distill, distill_loss_name, soft_labels
from xner.weighting import TeacherWeighting, resolve_weighting, teacher_language

__all__ = ["Ensemble", "sweep_table", "volume_sweep"]


class Ensemble:
    """The teachers' weighted ensemble as a predictor: volume 0 of a sweep, zero-shot.

    It offers what evaluation needs of a tagger (``labels``, ``predict_proba``, ``predict``, the first
    teacher's ``metadata`` and ``base_name`` for perturbation resources); one
    teacher is simply that teacher.
    """

    def __init__(self, teachers: Sequence[Tagger], weighting: TeacherWeighting) -> None:
        self.teachers = list(teachers)
        self.weighting = weighting
        self.labels = teachers[0].labels
        self.metadata = teachers[0].metadata
        self.base_name = teachers[0].base_name

    def predict_proba(self, sentences: Sequence[Sentence]) -> list[np.ndarray]:
        """The teachers' weighted word distributions (the soft labels a student learns from)."""
        distributions, _ = soft_labels(self.teachers, sentences, weighting=self.weighting)
        return distributions

    def predict(self, sentences: Sequence[Sentence], decoding: str = DEFAULT_DECODING) -> list[list[str]]:
        return [decode(d, self.labels, decoding) for d in self.predict_proba(sentences)]


def volume_sweep(
    teachers: Sequence[Tagger],
    target: str,
    volumes: Sequence[int],
    seeds: Sequence[int] = (0,),
    *,
    data: DataSpec = DataSpec(),
    config: DistillConfig | None = None,
    weighting: TeacherWeighting | None = None,
    test_limit: int | None = None,
    perturbed: Sequence[tuple[str, Sequence[Sentence]]] = (),
    pool: Sequence[str] = (TRAIN,),
    n_resamples: int = 1000,
    on_row: Callable[[dict], None] | None = None,
    progress: bool = False,
) -> list[dict]:
    """Train and evaluate one student per (volume, seed); return tidy rows.

    Args:
        perturbed: ``(perturbation name, perturbed test sentences)`` pairs; every
            model is also scored on each (see :func:`xner.perturb.perturb_corpus`).
        pool: the unlabeled pool's sources in order (see :func:`xner.data.pools.read_pool`):
            ``train`` (the target's train split) and/or pool files.

    Returns:
        One row per (volume, seed, test set): ``target``, ``family``, ``source`` (teacher
        languages joined by ``+``), ``volume``, ``seed``, ``precision``,
        ``recall``, ``f1``, ``f1_lo``, ``f1_hi``, ``teacher_f1``, ``gain``,
        ``seconds``, ``perturbation`` (``clean`` or its name), ``status``
        (``done`` or why the volume was skipped), ``pool`` (the pool's digest).
    """
    config = config or DistillConfig()
    weighting = weighting or resolve_weighting(config.weighting)
    pool = read_pool(pool, target, lambda: data.split(target, "train"))
    test_sets = [("clean", list(data.split(target, "test")[:test_limit])), *perturbed]
    base = {"kind": "student", "model": teachers[0].base_name, "target": target, "family": get_language(target).genus,
            "source": "+".join(teacher_language(t) for t in teachers), "dataset": data.dataset,
            "weighting": weighting.name, "loss": distill_loss_name(config), "pool": pool_digest(pool)}

    def scores(predict: Callable[[Sequence[Sentence]], list[list[str]]]) -> dict[str, dict]:
        out = {}
        for name, sentences in test_sets:
            s = score_predictions([x.tags for x in sentences], predict(sentences), teachers[0].labels,
                                  data.labels, n_resamples=n_resamples)
            out[name] = {k: s[k] for k in ("precision", "recall", "f1", "f1_lo", "f1_hi")}
        return out

    start = time.perf_counter()
    teacher_scores = scores(Ensemble(teachers, weighting).predict)
    teacher_seconds = time.perf_counter() - start
    rows = []
    for seed in seeds:
        for volume in volumes:
            key = {**base, "volume": int(volume), "seed": int(seed)}
            if volume > len(pool):
                skipped = f"skipped: volume {volume} > {len(pool)} unlabeled sentences available"
                new_rows = [{**key, "perturbation": name, "status": skipped} for name, _ in test_sets]
            else:
                start = time.perf_counter()
                if volume == 0:
                    result, seconds = teacher_scores, teacher_seconds
                else:
                    unlabeled = nested_subset(pool, volume, seed)
                    seeded = replace(config, train=replace(config.train, seed=seed))
                    student = distill(teachers, unlabeled, config=seeded, weighting=weighting, progress=progress)
                    result, seconds = scores(student.predict), time.perf_counter() - start
                new_rows = [
                    {**key, "perturbation": name, **result[name], "teacher_f1": teacher_scores[name]["f1"],
                     "gain": result[name]["f1"] - teacher_scores[name]["f1"], "seconds": seconds, "status": "done"}
                    for name, _ in test_sets
                ]
            rows += new_rows
            for row in new_rows if on_row is not None else ():
                on_row(row)
    return rows



def sweep_table(rows: Sequence[dict]):
    """The sweep's rows as a DataFrame in a stable column order (tidy results schema)."""
    import pandas as pd

    columns = ["kind", "model", "target", "family", "source", "dataset", "pool", "weighting", "loss", "volume", "seed", "perturbation",
               "precision", "recall", "f1", "f1_lo", "f1_hi", "teacher_f1", "gain", "seconds", "status"]
    frame = pd.DataFrame(list(rows))
    return frame[[c for c in columns if c in frame.columns]]
