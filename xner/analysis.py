"""Statistics over a study's tidy results: does unlabeled text help, and why does transfer work?

Every function takes the tidy results table (one row per run and test set, the columns of the
results schema: ``kind, model, source, target, genus, volume, seed, perturbation, f1, f1_lo,
f1_hi, teacher_f1, gain, entity_overlap, train_size``...) and returns a plain DataFrame, so the
analyses are testable without a store and the report only formats what they return.

- :func:`volume_correlations`: per target or per genus, Pearson/Spearman of log2(volume) with
  student F1 and with the gain over the zero-shot teacher, bootstrap CIs, F1 per doubling, the
  volume at which the student first beats its teacher (Wu et al. 2020's question, per language).
- :func:`mixed_effects`: ``f1 ~ log2(volume) * genus + (1 | target)`` (statsmodels MixedLM),
  with a teacher-within-target component where targets have several teacher models.
- :func:`transfer_correlates`: transfer F1 against entity overlap, source train size and URIEL
  distances (Manafi & Krishnaswamy 2024: transfer depends largely on entity overlap).
- :func:`robustness_table`: F1 drop under each perturbation, native vs transfer, with CIs.

Confidence intervals are 95% percentile bootstrap intervals (``scipy.stats.bootstrap``) over
runs; the table holds no per-sentence predictions, so test-sentence uncertainty enters only
through each row's own ``f1_lo``/``f1_hi`` (used where a cell has a single run).

>>> table = volume_correlations(results, by="genus")  # doctest: +SKIP
>>> table[["genus", "n_targets", "f1_pearson", "f1_pearson_lo", "slope"]]  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats

from xner.errors import XnerError, one_of
from xner.languages import get_language
from xner.typology import uriel_distance

__all__ = [
    "MixedEffects",
    "TRANSFER_COVARIATES",
    "REPORTED_URIEL",
    "URIEL_FEATURES",
    "correlate",
    "feature_correlations",
    "mixed_effects",
    "robustness_overlap",
    "robustness_table",
    "teacher_comparison",
    "transfer_correlates",
    "transfer_pairs",
    "uriel_distances",
    "volume_correlations",
    "volume_curves",
]

Grouping = Literal["target", "genus", "family"]

_GROUP_KEYS: dict[str, list[str]] = {
    "target": ["model", "genus", "source", "target"],
    "genus": ["model", "genus"],
    "family": ["model", "family"],
}
"""Rows that one correlation pools: a target's runs share model and teacher; a genus's (or a
family's: Germanic and Slavic are both Indo-European) runs share the model and pool every
target (and teacher) of the genus (family)."""

_MIN_MIXED_TARGETS = 2

TRANSFER_COVARIATES: tuple[str, ...] = ("entity_overlap", "train_size")
"""Explanatory columns of the tidy table that :func:`transfer_correlates` always tries."""

URIEL_FEATURES: dict[str, str] = {
    "genetic": "fam",
    "geographic": "geo",
    "syntactic": "syntax_knn",
    "phonological": "phonology_knn",
    "inventory": "inventory_knn",
    "featural": "syntax_knn+phonology_knn+inventory_knn",
}
"""URIEL distance kind -> lang2vec feature set, for :func:`xner.typology.uriel_distance` (cosine
distance of the two languages' vectors, URIEL's definition, Littell et al. 2017; "geographic"
is the cosine distance of lang2vec's ``geo`` vectors -- distances to fixed points on the globe --
as the PyPI lang2vec ships no great-circle table). ``knn`` sets are imputed, so no value is
missing; "featural" concatenates syntax, phonology and inventory."""

REPORTED_URIEL: tuple[str, ...] = ("genetic", "syntactic", "featural")
"""The URIEL distances the transfer analysis correlates with F1 by default (LangRank's six are
all in :data:`URIEL_FEATURES`, for :mod:`xner.transfer_features`)."""

@contextmanager
def _quiet() -> Iterator[None]:
    """Silence the warnings of degenerate resamples (constant input, empty slices)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


def _z(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


def _bootstrap_ci(
    data: tuple[np.ndarray, ...],
    statistic,
    *,
    paired: bool,
    n_resamples: int,
    seed: int,
    confidence: float,
) -> tuple[float, float]:
    """Percentile bootstrap interval over the resamples where the statistic is defined.

    ``scipy.stats.bootstrap`` resamples; its own interval turns NaN as soon as one resample is
    degenerate (e.g. every resampled run at one volume, where a correlation is undefined), so
    the interval is read from its bootstrap distribution with those resamples left out.
    """
    with _quiet():
        result = stats.bootstrap(
            data,
            statistic,
            paired=paired,
            vectorized=True,
            n_resamples=n_resamples,
            confidence_level=confidence,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
        alpha = (1 - confidence) / 2
        lo, hi = np.nanquantile(result.bootstrap_distribution, [alpha, 1 - alpha])
    return float(lo), float(hi)


def _pearson(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return stats.pearsonr(x, y, axis=axis).statistic


def _spearman(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman's rho as Pearson's r of the ranks (ties averaged), vectorised over resamples."""
    return _pearson(stats.rankdata(x, axis=axis), stats.rankdata(y, axis=axis), axis=axis)


_CORRELATIONS = {
    "pearson": (stats.pearsonr, _pearson),
    "spearman": (stats.spearmanr, _spearman),
}


def correlate(
    x: Sequence[float],
    y: Sequence[float],
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, float]:
    """Pearson and Spearman correlation with p-values and paired-bootstrap CIs.

    Args:
        x, y: paired observations (NaN pairs are dropped).
        n_resamples: bootstrap resamples of the (x, y) pairs.
        seed: seeds the resampling.
        confidence: interval level.

    Returns:
        ``{"pearson", "pearson_p", "pearson_lo", "pearson_hi", "spearman", ...}``, all NaN when
        fewer than 3 pairs or either side is constant (no correlation is defined).

    >>> round(correlate([1, 2, 3, 4], [2, 4, 5, 9], n_resamples=99)["pearson"], 3)
    0.965
    """
    pairs = pd.DataFrame({"x": x, "y": y}, dtype=float).dropna()
    out = {f"{name}{part}": np.nan for name in _CORRELATIONS for part in ("", "_p", "_lo", "_hi")}
    if len(pairs) < 3 or pairs["x"].nunique() < 2 or pairs["y"].nunique() < 2:
        return out
    xs, ys = pairs["x"].to_numpy(), pairs["y"].to_numpy()
    for name, (test, statistic) in _CORRELATIONS.items():
        result = test(xs, ys)
        lo, hi = _bootstrap_ci(
            (xs, ys),
            statistic,
            paired=True,
            n_resamples=n_resamples,
            seed=seed,
            confidence=confidence,
        )
        out.update(
            {
                name: float(result.statistic),
                f"{name}_p": float(result.pvalue),
                f"{name}_lo": lo,
                f"{name}_hi": hi,
            }
        )
    return out


def _mean_ci(
    values: Iterable[float],
    lo: Iterable[float],
    hi: Iterable[float],
    *,
    n_resamples: int,
    seed: int,
    confidence: float,
) -> dict[str, object]:
    """Mean over runs (seeds) with a CI: a bootstrap over the runs when they differ, else the
    mean of the runs' own (test-set) intervals."""
    values, lo, hi = (np.asarray(list(v), dtype=float) for v in (values, lo, hi))
    if len(values) > 1 and np.ptp(values) > 0:
        low, high = _bootstrap_ci(
            (values,),
            np.mean,
            paired=False,
            n_resamples=n_resamples,
            seed=seed,
            confidence=confidence,
        )
        source = "seeds"
    else:
        with _quiet():
            low, high = float(np.nanmean(lo)), float(np.nanmean(hi))
        source = "test set"
    return {"mean": float(values.mean()), "lo": low, "hi": high, "n": len(values), "ci": source}


def _ols_slope(rows: pd.DataFrame, formula: str, term: str, confidence: float) -> dict[str, float]:
    """Slope of ``term`` in an OLS fit, with its CI and p-value (NaN when not estimable)."""
    out = dict.fromkeys(("slope", "slope_lo", "slope_hi", "slope_p", "intercept"), np.nan)
    if len(rows) < 3 or rows[term].nunique() < 2:
        return out
    with _quiet():
        fit = smf.ols(formula, rows).fit()
        lo, hi = fit.conf_int(1 - confidence).loc[term]
    out.update(
        slope=float(fit.params[term]),
        slope_lo=float(lo),
        slope_hi=float(hi),
        slope_p=float(fit.pvalues[term]),
        intercept=float(fit.params["Intercept"]),
    )
    return out


def _require(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise XnerError(
            f"{what} needs result columns {', '.join(missing)}; "
            f"the table has: {', '.join(map(str, df.columns))}"
        )


def _numeric(rows: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """``rows`` with ``columns`` as floats (NaN for missing values or a missing column): a
    store, a CSV or a hand-made table may leave them None, object-typed or out."""
    return rows.assign(
        **{c: pd.to_numeric(rows[c], errors="coerce") if c in rows else np.nan for c in columns}
    ).astype({c: "float64" for c in columns})


def _clean_students(df: pd.DataFrame) -> pd.DataFrame:
    """Clean student rows, teacher baseline (volume 0) included, with ``teacher_f1``/``gain``
    filled from the volume-0 rows where the table left them empty."""
    _require(df, ("kind", "model", "source", "target", "genus", "volume", "perturbation", "f1"),
             "the volume analysis")
    rows = df[(df["kind"] == "student") & (df["perturbation"] == "clean") & df["volume"].notna()]
    if "seed" not in rows:  # a hand-made table without seeds: one teacher model per curve
        rows = rows.assign(seed=0)
    rows = _numeric(rows.astype({"volume": "int64"}), ("f1", "f1_lo", "f1_hi", "teacher_f1", "gain"))
    keys = ["model", "source", "target"]
    teacher = rows[rows["volume"] == 0].groupby(keys)["f1"].mean().rename("_teacher")
    rows = rows.join(teacher, on=keys)
    rows["teacher_f1"] = rows["teacher_f1"].fillna(rows["_teacher"])
    rows["gain"] = rows["gain"].fillna(rows["f1"] - rows["teacher_f1"])
    return rows.drop(columns="_teacher")


def _student_sweep(df: pd.DataFrame) -> pd.DataFrame:
    """Student rows with volume > 0, their ``log2_volume`` (log2 is undefined at volume 0,
    the teacher's own zero-shot row, which enters only as ``teacher_f1``) and ``teacher_model``:
    the curve a row belongs to -- target, source and seed, as each seed trains its own teacher."""
    rows = _clean_students(df)
    rows = rows[rows["volume"] > 0].copy()
    rows["log2_volume"] = np.log2(rows["volume"].astype(float))
    described = rows["target"].astype(str) + "<-" + rows["source"].astype(str) + "/seed" + rows["seed"].astype(str)
    # the teacher run ids, where the table has them, also tell teachers trained differently apart
    runs = rows["teacher_runs"] if "teacher_runs" in rows else pd.Series(np.nan, index=rows.index)
    rows["teacher_model"] = runs.where(runs.notna(), described)
    return rows


def _first_win(rows: pd.DataFrame) -> dict[str, float]:
    """Teacher F1 and the smallest volume whose mean gain (over seeds, and targets for a
    genus) is positive, i.e. where the student's mean F1 first exceeds the teacher's."""
    mean_gain = rows.groupby("volume")["gain"].mean()
    wins = mean_gain.index[mean_gain > 0]
    return {
        "teacher_f1": float(rows["teacher_f1"].mean()),
        "beats_teacher_at": float(wins.min()) if len(wins) else np.nan,
    }


def volume_correlations(
    df: pd.DataFrame,
    by: Grouping = "target",
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    flat_below: float = 0.5,
) -> pd.DataFrame:
    """How student F1 grows with unlabeled volume, per target language or per genus.

    Over clean student rows with volume > 0 (each row one run: a (volume, seed) pair), the
    Pearson and Spearman correlation of log2(volume) with ``f1`` and with ``gain`` (F1 minus
    the zero-shot teacher's), p-values and bootstrap CIs resampling those runs (the table has
    no per-sentence predictions, so test sentences are not resampled here); the slope = F1
    gained per doubling of volume (OLS with a fixed effect per curve, i.e. per target and
    teacher model -- source and seed, as each seed trains its own teacher -- so that targets'
    and teachers' levels don't pass for a volume effect or for noise),
    its CI and p-value; the teacher's F1 and the smallest volume at which the student's mean F1
    over seeds first exceeds it; where the curve flattens (see :func:`_flattening`).

    A genus's correlation pools its targets' runs (and every teacher's: the raw-F1 correlation
    then mixes levels, the gain's and the slope's do not); a genus of one target is that
    target's curves, and its note says so.

    Args:
        df: the tidy results table.
        by: ``"target"`` (one row per model, teacher source and target) or ``"genus"``.
        n_resamples, seed, confidence: the bootstrap's resamples, seed and level.
        flat_below: F1 per doubling under which a curve counts as flat.

    Returns:
        One row per group: keys, ``n_targets, n_runs, n_volumes, note``, ``f1_pearson``,
        ``f1_pearson_p``, ``f1_pearson_lo``, ``f1_pearson_hi``, the same for ``f1_spearman``,
        ``gain_pearson``, ``gain_spearman``, then ``slope, slope_lo, slope_hi, slope_p,
        teacher_f1, beats_teacher_at, flattens_at, last_doubling``. Empty when the table has no
        student sweep.

    Raises:
        XnerError: unknown ``by``, or the table lacks a needed column.

    >>> volume_correlations(results, by="genus", n_resamples=500)  # doctest: +SKIP
    """
    if by not in _GROUP_KEYS:
        raise one_of("grouping", by, _GROUP_KEYS)
    _require(df, tuple(_GROUP_KEYS[by]), f"grouping by {by}")
    rows = _student_sweep(df)
    keys = _GROUP_KEYS[by]
    records = []
    for key, group in rows.groupby(keys, sort=True):
        n_targets = group["target"].nunique()
        fixed = " + C(teacher_model)" if group["teacher_model"].nunique() > 1 else ""
        statistics = {
            f"{metric}_{name}": value
            for metric in ("f1", "gain")
            for name, value in correlate(
                group["log2_volume"],
                group[metric],
                n_resamples=n_resamples,
                seed=seed,
                confidence=confidence,
            ).items()
        }
        statistics.update(
            _ols_slope(group, f"f1 ~ log2_volume{fixed}", "log2_volume", confidence)
        )
        statistics.pop("intercept")
        statistics.update(_first_win(group))
        statistics.update(_flattening(group, flat_below))
        note = ""
        if group["volume"].nunique() < 2:
            note = "one volume: no correlation"
        elif by != "target" and n_targets == 1:
            note = "one target: its curves (one per teacher), not a comparison across targets"
        records.append(
            {
                **dict(zip(keys, key)),
                "n_targets": n_targets,
                "n_runs": len(group),
                "n_volumes": group["volume"].nunique(),
                "note": note,
                **statistics,
            }
        )
    table = pd.DataFrame.from_records(records)
    if not table.empty:
        table = table.astype({"beats_teacher_at": "Int64", "flattens_at": "Int64"})
    return table


def _flattening(rows: pd.DataFrame, flat_below: float) -> dict[str, float]:
    """Where a learning curve stops paying: the smallest volume after which every further step
    of the volume grid gains less than ``flat_below`` F1 per doubling (mean gain over seeds).

    ``last_doubling`` is the F1 per doubling of the last step (the full pool's). A genus's
    value is the median over its curves (targets x teachers), whose grids may end at different
    volumes. NaN ``flattens_at``: still rising at the largest volume. A grid volume less than
    half a doubling below the next (4,000 before a whole pool of 4,343) is left out: seed noise
    divided by such a sliver of a doubling would pass for a steep slope.
    """
    flat, last = [], []
    for _, curve in rows.groupby(["target", "source"], sort=True):
        # gain, not F1: the same differences once every seed is in, but a seed whose teacher
        # sits 20 F1 higher can't fake a step while its curve is still partial
        means = curve.groupby("volume")["gain"].mean().sort_index()
        volumes = means.index.to_numpy(dtype=float)
        means = means[np.append(volumes[1:] / volumes[:-1] >= np.sqrt(2), True)]
        if len(means) < 2:
            continue
        per_doubling = means.diff().iloc[1:] / np.diff(np.log2(means.index.to_numpy(dtype=float)))
        rising = np.flatnonzero(per_doubling.to_numpy() >= flat_below)
        flat.append(np.inf if len(rising) and rising[-1] == len(per_doubling) - 1
                    else float(means.index[rising[-1] + 1 if len(rising) else 0]))
        last.append(float(per_doubling.iloc[-1]))
    if not flat:
        return {"flattens_at": np.nan, "last_doubling": np.nan}
    median = float(np.median(flat))
    return {"flattens_at": np.nan if np.isinf(median) else median, "last_doubling": float(np.median(last))}


def teacher_comparison(
    df: pd.DataFrame,
    reference: str = "en",
    by: Grouping = "target",
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Close vs distant teacher: each teacher's students against the reference teacher's
    (English by default, the distant teacher of every target in ``configs/volume.yaml``), on
    the same target, volumes and seeds.

    Per target and other teacher: both teachers' zero-shot F1 and their difference; the
    students' F1 at the largest volume both curves have (the whole pool) and their difference
    (other - reference), paired by seed, with a CI over seeds (a single seed: the two runs' own
    test-set intervals, combined conservatively); the mean difference over every volume > 0;
    each curve's F1 per doubling. ``by="genus"`` averages the targets' differences, with a
    bootstrap CI over targets (a one-target genus keeps its target's CI).

    Returns:
        Columns ``model, genus, [target,] source, reference, n_targets, teacher_f1,
        reference_teacher_f1, teacher_diff, full_volume, full_f1, reference_full_f1, full_diff,
        full_diff_lo, full_diff_hi, mean_diff, slope, reference_slope``; empty when no target
        has students of the reference and of another teacher.
    """
    if by not in ("target", "genus"):
        raise one_of("grouping", by, ("target", "genus"))
    rows = _clean_students(df)
    records = []
    for (model, genus, target), group in rows.groupby(["model", "genus", "target"], sort=True):
        ref = group[group["source"] == reference]
        if ref.empty:
            continue
        for source, other in group[group["source"] != reference].groupby("source", sort=True):
            records.append({"model": model, "genus": genus, "target": target, "source": source,
                            "reference": reference, "n_targets": 1,
                            **_paired_curves(other, ref, n_resamples, seed, confidence)})
    table = pd.DataFrame.from_records(records)
    if table.empty or by == "target":
        return table
    genera = []
    averaged = ["teacher_f1", "reference_teacher_f1", "teacher_diff", "full_volume", "full_f1",
                "reference_full_f1", "mean_diff", "slope", "reference_slope"]
    for (model, genus), group in table.groupby(["model", "genus"], sort=True):
        ci = _mean_ci(group["full_diff"], group["full_diff_lo"], group["full_diff_hi"],
                      n_resamples=n_resamples, seed=seed, confidence=confidence)
        genera.append({"model": model, "genus": genus, "source": "+".join(sorted(group["source"].unique())),
                         "reference": reference, "n_targets": group["target"].nunique(),
                         **group[averaged].mean().to_dict(),
                         "full_diff": ci["mean"], "full_diff_lo": ci["lo"], "full_diff_hi": ci["hi"]})
    return pd.DataFrame.from_records(genera)[[c for c in table.columns if c != "target"]]


def _paired_curves(other: pd.DataFrame, ref: pd.DataFrame, n_resamples: int, seed: int,
                   confidence: float) -> dict[str, float]:
    """One teacher's curve against the reference teacher's on the same target."""
    students = other[other["volume"] > 0]
    ref_students = ref[ref["volume"] > 0]
    common = sorted(set(students["volume"]) & set(ref_students["volume"]))
    out = {"teacher_f1": float(other.loc[other["volume"] == 0, "f1"].mean()),
           "reference_teacher_f1": float(ref.loc[ref["volume"] == 0, "f1"].mean())}
    out["teacher_diff"] = out["teacher_f1"] - out["reference_teacher_f1"]
    out.update(dict.fromkeys(("full_volume", "full_f1", "reference_full_f1", "full_diff", "full_diff_lo",
                              "full_diff_hi", "mean_diff"), np.nan))
    if common:
        full = common[-1]
        columns = ["seed", "f1", "f1_lo", "f1_hi"]
        paired = pd.merge(students.loc[students["volume"] == full, columns],
                          ref_students.loc[ref_students["volume"] == full, columns], on="seed", suffixes=("", "_ref"))
        difference = paired["f1"] - paired["f1_ref"]
        ci = _mean_ci(difference, paired["f1_lo"] - paired["f1_hi_ref"], paired["f1_hi"] - paired["f1_lo_ref"],
                      n_resamples=n_resamples, seed=seed, confidence=confidence)
        by_volume = (students.groupby("volume")["f1"].mean() - ref_students.groupby("volume")["f1"].mean()).dropna()
        out.update(full_volume=float(full), full_f1=float(paired["f1"].mean()),
                   reference_full_f1=float(paired["f1_ref"].mean()), full_diff=ci["mean"],
                   full_diff_lo=ci["lo"], full_diff_hi=ci["hi"], mean_diff=float(by_volume.mean()))
    for name, curve in (("slope", students), ("reference_slope", ref_students)):
        curve = curve.assign(log2_volume=np.log2(curve["volume"].astype(float)))
        out[name] = _ols_slope(curve, "f1 ~ log2_volume", "log2_volume", confidence)["slope"]
    return out


def volume_curves(
    df: pd.DataFrame, *, n_resamples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> pd.DataFrame:
    """Mean student F1 per (model, genus, source, target, volume) with a CI, for plotting.

    Volume 0 is the zero-shot teacher. The CI is a bootstrap over seeds when the seeds differ,
    else the runs' own test-set interval (``f1_lo``/``f1_hi``).

    Returns:
        Columns ``model, genus, source, target, volume, f1, f1_lo, f1_hi, n_seeds, ci``.
    """
    rows = _clean_students(df)
    keys = ["model", "genus", "source", "target", "volume"]
    records = []
    for key, group in rows.groupby(keys, sort=True):
        ci = _mean_ci(
            group["f1"],
            group["f1_lo"],
            group["f1_hi"],
            n_resamples=n_resamples,
            seed=seed,
            confidence=confidence,
        )
        records.append(
            {
                **dict(zip(keys, key)),
                "f1": ci["mean"],
                "f1_lo": ci["lo"],
                "f1_hi": ci["hi"],
                "n_seeds": ci["n"],
                "ci": ci["ci"],
            }
        )
    return pd.DataFrame.from_records(records, columns=[*keys, "f1", "f1_lo", "f1_hi", "n_seeds", "ci"])


@dataclass(frozen=True)
class MixedEffects:
    """A fitted (or, with ``note`` saying why, unfitted) mixed-effects model of student F1.

    Attributes:
        formula: the fixed-effects formula actually fitted.
        random: its random part: ``(1 | target)``, plus ``(1 | target:teacher)`` when some
            target was taught by several teacher models.
        coefficients: ``term, coef, se, z, p, lo, hi`` (empty when not fitted).
        genus_slopes: ``genus, slope, lo, hi, p``: F1 per doubling of volume in each genus,
            the base slope plus the genus's interaction (empty when not fitted).
        summary: statsmodels' summary text, or the reason the model was not fitted.
        note: why the model differs from ``f1 ~ log2(volume) * genus + (1 | target)`` or was
            not fitted, and any convergence warning; ``""`` when fitted as asked.
    """

    formula: str
    random: str
    coefficients: pd.DataFrame
    genus_slopes: pd.DataFrame
    summary: str
    note: str

    @property
    def fitted(self) -> bool:
        return not self.coefficients.empty


def _unfitted(formula: str, random: str, note: str) -> MixedEffects:
    return MixedEffects(formula, random, pd.DataFrame(), pd.DataFrame(), note, note)


def _genus_slopes(fit, genera: Sequence[str], confidence: float) -> pd.DataFrame:
    """Per genus, log2_volume + its interaction term, tested as one linear contrast."""
    names = list(fit.fe_params.index)
    contrasts = np.zeros((len(genera), len(names)))
    for row, genus in enumerate(genera):
        contrasts[row, names.index("log2_volume")] = 1
        interaction = f"log2_volume:C(genus)[T.{genus}]"
        if interaction in names:
            contrasts[row, names.index(interaction)] = 1
    test = fit.t_test(contrasts)
    bounds = test.conf_int(alpha=1 - confidence)
    return pd.DataFrame(
        {
            "genus": list(genera),
            "slope": test.effect,
            "lo": bounds[:, 0],
            "hi": bounds[:, 1],
            "p": test.pvalue,
        }
    )


def mixed_effects(
    df: pd.DataFrame, model: str | None = None, *, confidence: float = 0.95
) -> MixedEffects:
    """Fit ``f1 ~ log2(volume) * genus + (1 | target)`` on clean student rows (volume > 0).

    The random intercept per target absorbs each language's level, so the log2(volume) terms
    are within-language growth per doubling, and the interactions how genera differ in it.
    Where a target has several teacher models (a close and a distant source language, and a
    teacher trained per seed), each sets its students' level: English teachers of one African
    target differ by up to 20 F1 between seeds. A variance component per teacher model
    (source and seed) within target, ``(1 | target:teacher)``, absorbs that too; without it the
    teacher gaps would sit in the residual and swamp the slopes' standard errors.
    Degenerate designs give an explained result instead of an exception: fewer than 2 targets
    (no random effect to estimate) or one volume leaves the model unfitted; one genus drops
    the genus terms (``f1 ~ log2_volume``).

    Args:
        df: the tidy results table.
        model: the backbone to analyse; may be omitted when the table has one.
        confidence: level of the coefficient intervals.

    Raises:
        XnerError: several models and ``model`` not given, or an unknown ``model``.

    >>> fit = mixed_effects(results); fit.genus_slopes  # doctest: +SKIP
    """
    rows = _student_sweep(df)
    models = sorted(rows["model"].unique())
    if model is None and len(models) > 1:
        raise XnerError(f"the results hold several models; pass one of: {', '.join(models)}")
    if model is not None and model not in models:
        raise one_of("model", model, models)
    if model is not None:
        rows = rows[rows["model"] == model]
    genera = sorted(rows["genus"].unique())
    formula = "f1 ~ log2_volume * C(genus)" if len(genera) > 1 else "f1 ~ log2_volume"
    notes = [] if len(genera) > 1 else [f"one genus ({', '.join(genera) or 'none'}): no genus terms"]
    several_teachers = bool((rows.groupby("target")["teacher_model"].nunique() > 1).any())
    random = "(1 | target) + (1 | target:teacher)" if several_teachers else "(1 | target)"
    n_targets = rows["target"].nunique()
    if n_targets < _MIN_MIXED_TARGETS:
        return _unfitted(formula, random, f"too few targets ({n_targets}) for a random intercept per target")
    if rows["volume"].nunique() < 2:
        return _unfitted(formula, random, "one volume: log2(volume) has no effect to estimate")
    teacher_component = {"teacher": "0 + C(teacher_model)"} if several_teachers else None
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        try:
            fit = smf.mixedlm(formula, rows, groups=rows["target"], vc_formula=teacher_component).fit(reml=True)
        except (np.linalg.LinAlgError, ValueError) as err:
            return _unfitted(formula, random, f"model not estimable: {err}")
        bounds = fit.conf_int(1 - confidence)
        slopes = _genus_slopes(fit, genera, confidence)
    notes += sorted({str(w.message).splitlines()[0] for w in caught})
    terms = fit.fe_params.index
    coefficients = pd.DataFrame(
        {
            "term": terms,
            "coef": fit.fe_params.to_numpy(),
            "se": fit.bse_fe.to_numpy(),
            "z": fit.tvalues[terms].to_numpy(),
            "p": fit.pvalues[terms].to_numpy(),
            "lo": bounds.loc[terms, 0].to_numpy(),
            "hi": bounds.loc[terms, 1].to_numpy(),
        }
    )
    return MixedEffects(formula, random, coefficients, slopes, str(fit.summary()), "; ".join(notes))


def _iso3(code: str) -> str:
    """ISO 639-3 code of a data-folder code (``"br"`` -> ``"bre"``); unknown codes as given."""
    try:
        return get_language(code).iso3
    except XnerError:
        return code


def _distance(source: str, target: str, feature_set: str) -> float:
    """URIEL distance, NaN where URIEL lacks a language or the source is a teacher set."""
    try:
        return uriel_distance(_iso3(source), _iso3(target), (feature_set,))
    except XnerError:
        return np.nan


def uriel_distances(
    pairs: Iterable[tuple[str, str]], kinds: Sequence[str] = REPORTED_URIEL
) -> pd.DataFrame:
    """URIEL typological distances between source and target languages (offline, lang2vec).

    Args:
        pairs: (source, target) data-folder codes, ISO 639-1 or 639-3 (``("fr", "br")``).
        kinds: keys of :data:`URIEL_FEATURES`.

    Returns:
        Columns ``source, target, uriel_<kind>``; NaN where URIEL lacks a language or the
        source is a "+"-joined teacher set (``"en+nl"``).

    Raises:
        XnerError: unknown distance kind.

    >>> uriel_distances([("es", "ca"), ("ar", "hi")])["uriel_genetic"].round(2).tolist()  # doctest: +SKIP
    [0.09, 1.0]
    """
    for kind in kinds:
        if kind not in URIEL_FEATURES:
            raise one_of("URIEL distance", kind, URIEL_FEATURES)
    table = pd.DataFrame(sorted(set(pairs)), columns=["source", "target"])
    for kind in kinds:
        table[f"uriel_{kind}"] = [
            _distance(s, t, URIEL_FEATURES[kind]) for s, t in zip(table["source"], table["target"])
        ]
    return table


def feature_correlations(pairs: pd.DataFrame, features: Sequence[str], outcome: str = "f1", *,
                         n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """How each feature of (source, target) pairs correlates with a measured outcome over the
    pairs (Pearson and Spearman with bootstrap CIs, :func:`correlate`): which label-free signal
    tells a good teacher language (``xner train-ranker --tables`` writes it for the ranker's
    features). Features the table lacks are left out; pairs missing a value are left out of
    that feature's row (``n_pairs`` says how many were used).
    """
    rows = []
    for feature in features:
        if feature in pairs:
            known = pairs[[feature, outcome]].apply(pd.to_numeric, errors="coerce").dropna()
            rows.append({"feature": feature, "n_pairs": len(known),
                         **correlate(known[feature], known[outcome], n_resamples=n_resamples, seed=seed)})
    return pd.DataFrame(rows)


def transfer_pairs(df: pd.DataFrame, covariates: pd.DataFrame | None = None) -> pd.DataFrame:
    """Clean transfer rows averaged over seeds: one row per (model, source, target).

    Args:
        df: the tidy results table.
        covariates: optional per-pair columns keyed by ``source, target`` (e.g.
            :func:`uriel_distances`), merged in.

    Returns:
        ``model, source, target, f1, entity_overlap, train_size, n_seeds`` and the covariates.
    """
    _require(df, ("kind", "model", "source", "target", "perturbation", "f1"), "the transfer analysis")
    rows = df[(df["kind"] == "transfer") & (df["perturbation"] == "clean")]
    rows = _numeric(rows, ("f1", *TRANSFER_COVARIATES))
    pairs = rows.groupby(["model", "source", "target"], as_index=False).agg(
        f1=("f1", "mean"),
        entity_overlap=("entity_overlap", "mean"),
        train_size=("train_size", "mean"),
        n_seeds=("f1", "size"),
    )
    if covariates is not None and not covariates.empty:
        pairs = pairs.merge(covariates, on=["source", "target"], how="left")
    return pairs


def transfer_correlates(
    df: pd.DataFrame,
    covariates: pd.DataFrame | None = None,
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """What predicts transfer F1? Correlations over (source, target) pairs, per model.

    Each pair's clean transfer F1 (mean over seeds) is correlated with entity overlap, source
    train size and every covariate column (by default URIEL genetic/syntactic/featural
    distance from :func:`uriel_distances`); each gets Pearson and Spearman with p-values and
    bootstrap CIs over pairs, and an OLS line ``f1 = intercept + slope * covariate``.

    Args:
        df: the tidy results table.
        covariates: per-pair columns keyed by ``source, target``; ``None`` computes URIEL
            distances for the table's pairs.
        n_resamples, seed, confidence: the bootstrap's resamples, seed and level.

    Returns:
        ``model, covariate, n_pairs``, ``pearson*``, ``spearman*``, ``slope, slope_lo,
        slope_hi, slope_p, intercept``. Empty when the table has no transfer rows.

    >>> transfer_correlates(results)[["covariate", "pearson", "pearson_lo"]]  # doctest: +SKIP
    """
    pairs = transfer_pairs(df)
    if pairs.empty:
        return pd.DataFrame()
    if covariates is None:
        covariates = uriel_distances(zip(pairs["source"], pairs["target"]))
    pairs = transfer_pairs(df, covariates)
    names = [*TRANSFER_COVARIATES, *(c for c in covariates.columns if c not in ("source", "target"))]
    records = []
    for model, group in pairs.groupby("model", sort=True):
        for name in names:
            known = group[[name, "f1"]].dropna()
            records.append(
                {
                    "model": model,
                    "covariate": name,
                    "n_pairs": len(known),
                    **correlate(
                        known[name],
                        known["f1"],
                        n_resamples=n_resamples,
                        seed=seed,
                        confidence=confidence,
                    ),
                    **_ols_slope(known, f"f1 ~ {name}", name, confidence),
                }
            )
    return pd.DataFrame.from_records(records)


def robustness_table(
    df: pd.DataFrame, *, n_resamples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> pd.DataFrame:
    """F1 drop under each perturbation, for native and transfer models, with CIs.

    For every (model, kind, source, target, perturbation) the clean and the perturbed F1 (mean
    over seeds, with CIs) and the drop = clean - perturbed. The drop is paired by seed; its CI
    is a bootstrap over seeds when there are several differing ones, else from the two rows'
    test-set intervals taken as independent normals (conservative: clean and perturbed test
    sets share their sentences, so their errors correlate positively). Transfer rows also get
    the native model's drop on the same target and perturbation and whether transfer degrades
    less (the reference study's finding: transfer is the more robust).

    Args:
        df: the tidy results table.
        n_resamples, seed, confidence: the bootstrap's resamples, seed and level.

    Returns:
        ``model, kind, source, target, perturbation, n_seeds, clean_f1, clean_lo, clean_hi,
        perturbed_f1, perturbed_lo, perturbed_hi, drop, drop_lo, drop_hi, drop_ci,
        native_drop, transfer_degrades_less``. Empty when nothing was perturbed.

    >>> robustness_table(results).query("kind == 'transfer'")  # doctest: +SKIP
    """
    _require(df, ("kind", "model", "source", "target", "perturbation", "seed", "f1"),
             "the robustness analysis")
    rows = _numeric(df[df["kind"].isin(["native", "transfer"])], ("f1", "f1_lo", "f1_hi"))
    keys = ["model", "kind", "source", "target"]
    clean = {key: group for key, group in rows[rows["perturbation"] == "clean"].groupby(keys)}
    z = _z(confidence)
    options = {"n_resamples": n_resamples, "seed": seed, "confidence": confidence}
    records = []
    perturbed = rows[rows["perturbation"] != "clean"]
    for key, group in perturbed.groupby([*keys, "perturbation"], sort=True):
        base = clean.get(key[:-1])
        if base is None:
            continue
        paired = base.merge(group, on="seed", suffixes=("_clean", "_pert"))
        drop = paired["f1_clean"] - paired["f1_pert"]
        spread = z * np.hypot(
            (paired["f1_hi_clean"] - paired["f1_lo_clean"]) / (2 * z),
            (paired["f1_hi_pert"] - paired["f1_lo_pert"]) / (2 * z),
        )
        before = _mean_ci(base["f1"], base["f1_lo"], base["f1_hi"], **options)
        after = _mean_ci(group["f1"], group["f1_lo"], group["f1_hi"], **options)
        change = _mean_ci(drop, drop - spread, drop + spread, **options)
        records.append(
            {
                **dict(zip([*keys, "perturbation"], key)),
                "n_seeds": len(paired),
                "clean_f1": before["mean"],
                "clean_lo": before["lo"],
                "clean_hi": before["hi"],
                "perturbed_f1": after["mean"],
                "perturbed_lo": after["lo"],
                "perturbed_hi": after["hi"],
                "drop": change["mean"],
                "drop_lo": change["lo"],
                "drop_hi": change["hi"],
                "drop_ci": change["ci"],
            }
        )
    table = pd.DataFrame.from_records(records)
    if table.empty:
        return table
    native = table[table["kind"] == "native"].set_index(["model", "target", "perturbation"])["drop"]
    lookup = pd.MultiIndex.from_frame(table[["model", "target", "perturbation"]])
    table["native_drop"] = native.reindex(lookup).to_numpy()
    table.loc[table["kind"] == "native", "native_drop"] = np.nan
    comparable = table["native_drop"].notna()
    table["transfer_degrades_less"] = pd.array(
        np.where(comparable, table["drop"] < table["native_drop"], None), dtype="boolean"
    )
    return table


def robustness_overlap(
    df: pd.DataFrame, table: pd.DataFrame | None = None, *, n_resamples: int = 2000, seed: int = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Does a perturbation hurt a model in proportion to the overlap it removes?

    Per (model, perturbation): the correlation, over the native and transfer models of a
    study, of each model's F1 drop with its entity overlap (share of target test mentions
    seen as entities in its training data). The overlap-removing perturbations can only take
    away what overlaps, so a strong correlation says that the models' advantage there *was*
    memorised names -- the reference study's explanation of why native models degrade more.

    Args:
        df: the tidy results (needs ``entity_overlap``).
        table: :func:`robustness_table` of ``df`` when already computed.

    Returns:
        ``model, perturbation, n_models`` and :func:`correlate`'s columns; empty without
        perturbed rows or overlap measures.
    """
    if "entity_overlap" not in df.columns:
        return pd.DataFrame()
    options = {"n_resamples": n_resamples, "seed": seed, "confidence": confidence}
    table = robustness_table(df, **options) if table is None else table
    if table.empty:
        return table
    keys = ["model", "kind", "source", "target"]
    overlap = _numeric(df, ("entity_overlap",)).groupby(keys)["entity_overlap"].mean()
    rows = table.join(overlap, on=keys)
    records = [
        {"model": model, "perturbation": perturbation, "n_models": int(group["entity_overlap"].notna().sum()),
         **correlate(group["entity_overlap"], group["drop"], **options)}
        for (model, perturbation), group in rows.groupby(["model", "perturbation"], sort=True)
    ]
    return pd.DataFrame.from_records(records)
