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

from xner.data.corpus import Sentence, SentenceSubset
from xner.data.sampling import subset_indices
from xner.evaluation import score_predictions
from xner.languages import get_language
from xner.models.tagger import Tagger, repair_iob2
from xner.pipeline import DataSpec
from xner.train import DistillConfig, distill, soft_labels
from xner.weighting import TeacherWeighting, resolve_weighting, teacher_language

__all__ = ["ensemble_predict", "volume_sweep"]


def ensemble_predict(teachers: Sequence[Tagger], sentences: Sequence[Sentence],
                     weighting: TeacherWeighting) -> list[list[str]]:
    """Tags of the teachers' weighted ensemble (a single teacher: its own predictions)."""
    distributions, _ = soft_labels(teachers, sentences, weighting=weighting, use_cache=False)
    labels = teachers[0].labels
    return [repair_iob2([labels[j] for j in d.argmax(axis=1)]) for d in distributions]


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
    n_resamples: int = 1000,
    on_row: Callable[[dict], None] | None = None,
    progress: bool = False,
) -> list[dict]:
    """Train and evaluate one student per (volume, seed); return tidy rows.

    Returns:
        One row per (volume, seed): ``target``, ``family``, ``source`` (teacher
        languages joined by ``+``), ``volume``, ``seed``, ``precision``,
        ``recall``, ``f1``, ``f1_lo``, ``f1_hi``, ``teacher_f1``, ``gain``,
        ``seconds``, ``status`` (``done`` or why the volume was skipped).
    """
    config = config or DistillConfig()
    weighting = weighting or resolve_weighting(config.weighting)
    pool = data.split(target, "train")
    test = data.split(target, "test")[:test_limit]
    gold = [s.tags for s in test]
    base = {"kind": "student", "target": target, "family": get_language(target).genus,
            "source": "+".join(teacher_language(t) for t in teachers), "dataset": data.dataset,
            "weighting": weighting.name, "perturbation": "clean"}

    def score(pred) -> dict:
        s = score_predictions(gold, pred, teachers[0].labels, data.labels, n_resamples=n_resamples)
        return {k: s[k] for k in ("precision", "recall", "f1", "f1_lo", "f1_hi")}

    start = time.perf_counter()
    teacher_scores = score(ensemble_predict(teachers, test, weighting))
    teacher_seconds = time.perf_counter() - start
    rows = []
    for seed in seeds:
        for volume in volumes:
            row = {**base, "volume": int(volume), "seed": int(seed)}
            if volume > len(pool):
                row |= {"status": f"skipped: volume {volume} > {len(pool)} unlabeled sentences available"}
            elif volume == 0:
                row |= {**teacher_scores, "seconds": teacher_seconds, "status": "done"}
            else:
                start = time.perf_counter()
                unlabeled = SentenceSubset(pool, subset_indices(len(pool), volume, seed))
                seeded = replace(config, train=replace(config.train, seed=seed))
                student = distill(teachers, unlabeled, config=seeded, weighting=weighting, progress=progress)
                row |= {**score(student.predict(test)), "seconds": time.perf_counter() - start, "status": "done"}
            if "f1" in row:
                row |= {"teacher_f1": teacher_scores["f1"], "gain": row["f1"] - teacher_scores["f1"]}
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows

