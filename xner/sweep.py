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

from xner.data.corpus import Sentence
from xner.data.sampling import nested_subset
from xner.distillation.ensemble import Ensemble
from xner.distillation.losses import distill_loss_name
from xner.distillation.student import DistillConfig, distill
from xner.distillation.weighting import TeacherWeighting, resolve_weighting, teacher_language
from xner.evaluation import score_predictions
from xner.languages import get_language
from xner.models.tagger import Tagger
from xner.pipeline import DataSpec

__all__ = ["sweep_table", "volume_sweep"]


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
    n_resamples: int = 1000,
    on_row: Callable[[dict], None] | None = None,
    progress: bool = False,
) -> list[dict]:
    """Train and evaluate one student per (volume, seed); return tidy rows.

    Args:
        perturbed: ``(perturbation name, perturbed test sentences)`` pairs; every
            model is also scored on each (see :func:`xner.perturb.perturb_corpus`).

    Returns:
        One row per (volume, seed, test set): ``target``, ``family``, ``source`` (teacher
        languages joined by ``+``), ``volume``, ``seed``, ``precision``,
        ``recall``, ``f1``, ``f1_lo``, ``f1_hi``, ``teacher_f1``, ``gain``,
        ``seconds``, ``perturbation`` (``clean`` or its name), ``status``
        (``done`` or why the volume was skipped).
    """
    config = config or DistillConfig()
    weighting = weighting or resolve_weighting(config.weighting)
    pool = data.split(target, "train")
    test_sets = [("clean", list(data.split(target, "test")[:test_limit])), *perturbed]
    base = {"kind": "student", "model": teachers[0].base_name, "target": target, "family": get_language(target).genus,
            "source": "+".join(teacher_language(t) for t in teachers), "dataset": data.dataset,
            "weighting": weighting.name, "loss": distill_loss_name(config)}

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
                    seeded = config.model_copy(update={"train": config.train.model_copy(update={"seed": seed})})
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

    columns = ["kind", "model", "target", "family", "source", "dataset", "weighting", "loss", "volume", "seed", "perturbation",
               "precision", "recall", "f1", "f1_lo", "f1_hi", "teacher_f1", "gain", "seconds", "status"]
    frame = pd.DataFrame(list(rows))
    return frame[[c for c in columns if c in frame.columns]]
