"""Do volume curves keep rising past the labelled split? (raw-text pools, ``configs/extended.yaml``)

A study whose unlabeled pool is a target's train split (labels dropped) ends its volume curves
where the split ends; a raw-text pool (``xner data sentences``) appended to the split continues
them. :func:`beyond_the_split` measures each continued curve twice -- F1 per doubling over the
whole range (every volume > 0) and over the new range only (the volumes at or past the end of
the target's train split, the split's own end point included where the curve has it) -- so a
curve that flattens or falls on out-of-split text shows as a new-range slope under the
whole-range one, with both CIs to say whether the difference is more than seed noise.

The train split's size comes from the language registry (:meth:`xner.languages.Language.train_sentences`);
curves on a dataset it does not describe are left out.

>>> beyond_the_split(results, by="genus")[["genus", "slope", "slope_new"]]  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xner.analysis import Grouping, volume_correlations
from xner.errors import XnerError
from xner.languages import get_language

__all__ = ["beyond_the_split", "split_sentences"]

_CURVE = ["model", "source", "target"]
_SLOPE = ["slope", "slope_lo", "slope_hi", "slope_p"]


def split_sentences(target: str, dataset: str) -> float:
    """The target's train-split sentences in ``dataset`` (NaN: the registry does not know)."""
    try:
        size = get_language(str(target)).train_sentences(str(dataset))
    except XnerError:  # a hand-made table's language outside the registry
        return np.nan
    return float(size) if size is not None else np.nan


def beyond_the_split(frame: pd.DataFrame, by: Grouping = "target", *, n_resamples: int = 2000, seed: int = 0,
                     confidence: float = 0.95) -> pd.DataFrame:
    """F1 per doubling over the whole volume range and over the range past the train split.

    Only curves (model, source, target) with a student past their target's train split enter:
    the others did not leave the split, and would only dilute a genus's new-range slope.
    Slopes are :func:`xner.analysis.volume_correlations`'s (OLS with a fixed effect per teacher
    model, i.e. per seed), so each seed's teacher level cancels out.

    Args:
        frame: the tidy results (clean student rows, volume 0 being the teacher).
        by: ``target`` (one row per curve), ``genus`` or ``family`` (their curves pooled).
        n_resamples, seed, confidence: the bootstrap's, for the correlations underneath.

    Returns:
        The keys of ``by``, ``n_targets``, ``n_seeds``, ``teacher_f1``; per target
        ``split_sentences`` and ``pool_sentences`` (the largest volume); ``split_f1`` (mean F1
        at the largest volume within the split, NaN where the curve has none) and ``pool_f1``
        (at the largest volume) -- a genus's are means over its curves; ``slope, slope_lo, slope_hi,
        slope_p, n_volumes`` over the whole range, ``slope_new, slope_new_lo, slope_new_hi,
        slope_new_p, n_volumes_new`` over the new range.
        Empty when no student went past its split.
    """
    rows = frame[(frame["kind"] == "student") & (frame["perturbation"] == "clean") & frame["volume"].notna()].copy()
    rows = rows.astype({"volume": "int64", "f1": "float64"})
    # A curve's seed is one teacher (a continuing study reuses the earlier study's teacher runs),
    # but only the newer table names its teacher runs: named on one side of the split and
    # described on the other, one teacher would pass for two and its slope break at the split.
    rows = rows.drop(columns="teacher_runs", errors="ignore")
    rows["split_sentences"] = [split_sentences(t, d) for t, d in zip(rows["target"], rows["dataset"])]
    past = rows[rows["volume"] > rows["split_sentences"]]
    if past.empty:
        return pd.DataFrame()
    rows = rows.merge(past[_CURVE].drop_duplicates(), on=_CURVE)
    new = rows[(rows["volume"] == 0) | (rows["volume"] >= rows["split_sentences"])]
    options = {"n_resamples": n_resamples, "seed": seed, "confidence": confidence}
    whole = volume_correlations(rows, by=by, **options)
    keys = [c for c in whole.columns if c in ("model", "genus", "family", "source", "target")]
    renamed = {"n_volumes": "n_volumes_new", **{c: c.replace("slope", "slope_new") for c in _SLOPE}}
    table = whole[[*keys, "n_targets", "n_volumes", *_SLOPE, "teacher_f1"]].merge(
        volume_correlations(new, by=by, **options)[[*keys, *renamed]].rename(columns=renamed), on=keys)
    # a genus's curves end at different sizes: its row keeps the mean F1s, not a mean size
    sizes = ["split_sentences", "pool_sentences"] if by == "target" else []
    ends = _curve_ends(rows).groupby(keys)[["n_seeds", *sizes, "split_f1", "pool_f1"]]
    return table.merge(ends.mean().reset_index(), on=keys)


def _curve_ends(rows: pd.DataFrame) -> pd.DataFrame:
    """Per curve: seeds, split size, pool size and the mean F1 at the split's end and the pool's."""
    records = []
    keys = [*_CURVE, *(c for c in ("genus", "family") if c in rows)]
    for key, curve in rows[rows["volume"] > 0].groupby(keys, sort=True):
        split = float(curve["split_sentences"].iloc[0])
        within = curve[curve["volume"] <= split]
        largest = curve["volume"].max()
        records.append({
            **dict(zip(keys, key)), "n_seeds": curve["seed"].nunique(),
            "split_sentences": split, "pool_sentences": float(largest),
            "split_f1": float(within.loc[within["volume"] == within["volume"].max(), "f1"].mean())
            if not within.empty else np.nan,
            "pool_f1": float(curve.loc[curve["volume"] == largest, "f1"].mean()),
        })
    return pd.DataFrame(records)
