"""Does the volume effect hold under stronger teachers, stronger students and more seeds?

The analysis of a study whose runs differ in how teachers and students were trained
(``configs/sensitivity.yaml``): every evaluated model carries its regime in the results table
(``teacher_train_layers``, ``teacher_train_size``, ``student_train_layers``,
``teacher_checkpoint``; :meth:`xner.study.ResultStore.frame`), so each table here is grouped
by *setting* -- weak or strong teacher x top-K or all-layer student:

- :func:`setting_gains`: per setting and curve, the whole-pool student's gain over its own
  teacher (mean over seeds, bootstrap CI) and F1 per doubling of unlabeled volume (OLS on the
  gains, so each seed's teacher level cancels out);
- :func:`setting_effects`: one mixed model ``gain ~ log2(volume) * teacher * student`` with a
  random intercept per target: do teacher strength or student capacity change the slope?
- :func:`checkpoint_spread`: the seed-to-seed spread of zero-shot F1 per teacher checkpoint
  policy, with a bootstrap CI of the standard deviation;
- :func:`checkpoint_comparison`: each policy against the default on the same seeds (paired
  bootstrap): is its spread smaller, is its mean F1 lower?
- :func:`decoding_gains`: the whole-pool gains under each decoding of the same predictions.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from xner.analysis import _bootstrap_ci, _mean_ci, _ols_slope, _student_sweep
from xner.errors import XnerError
from xner.options import DEFAULT_CHECKPOINT

__all__ = ["SETTING", "checkpoint_comparison", "checkpoint_spread", "decoding_gains", "setting_effects", "setting_gains",
           "with_settings"]

SETTING = ["teacher_regime", "student_regime"]
"""The columns :func:`with_settings` adds: ``weak``/``strong`` teacher, ``top-K``/``all`` student."""

_CURVE = ["model", "source", "target"]


def _regime(layers: object) -> str:
    """``strong`` for a teacher whose every layer trained, else ``weak`` (top K layers)."""
    return "strong" if str(layers) == "all" else "weak"


def with_settings(frame: pd.DataFrame) -> pd.DataFrame:
    """Clean student rows (volume 0 = the teacher) with their setting columns (:data:`SETTING`).

    Raises:
        XnerError: the table does not say how its models were trained.
    """
    needed = ["teacher_train_layers", "student_train_layers", "teacher_runs"]
    missing = [c for c in needed if c not in frame]
    if missing:
        raise XnerError(f"the sensitivity analysis needs the columns {missing} (a store's results table)")
    rows = frame[(frame["kind"] == "student") & (frame["perturbation"] == "clean")].copy()
    rows["teacher_regime"] = rows["teacher_train_layers"].map(_regime)
    student = rows["student_train_layers"].astype(object)
    rows["student_regime"] = np.where(student.astype(str) == "all", "all", "top-" + student.astype(str))
    # every student's gain is over the volume-0 evaluation of its own teacher runs on its target
    # (one teacher run, e.g. an English one, teaches several targets)
    baseline = rows[rows["volume"] == 0].groupby(["teacher_runs", "target"])["f1"].mean().rename("teacher_f1")
    rows = rows.drop(columns="teacher_f1", errors="ignore").join(baseline, on=["teacher_runs", "target"])
    rows["gain"] = pd.to_numeric(rows["f1"]) - rows["teacher_f1"]
    # a student whose teacher is not evaluated yet (an unfinished study) has no gain yet
    students = rows[(rows["volume"] > 0) & rows["teacher_f1"].notna()]
    # volume 0 is the teachers' ensemble: it belongs to each student setting of that teacher on
    # that target (and to none where no student of it has run)
    curves = students[["teacher_runs", "target", "student_regime"]].drop_duplicates()
    baselines = rows[rows["volume"] == 0].drop(columns="student_regime").merge(curves, on=["teacher_runs", "target"])
    return pd.concat([students, baselines], ignore_index=True)


def setting_gains(frame: pd.DataFrame, *, n_resamples: int = 2000, seed: int = 0,
                  confidence: float = 0.95) -> pd.DataFrame:
    """Per setting and curve: teacher F1, whole-pool student F1 and gain (mean over seeds,
    bootstrap CI over seeds), and F1 per doubling of volume with its CI.

    Returns:
        ``teacher_regime, student_regime, model, source, target, n_seeds, pool, teacher_f1,
        student_f1, gain, gain_lo, gain_hi, slope, slope_lo, slope_hi, slope_p``.
    """
    rows = with_settings(frame)
    sweep = _student_sweep(rows)
    records = []
    for key, curve in sweep.groupby([*SETTING, *_CURVE], sort=True):
        pool = int(curve["volume"].max())
        whole = curve[curve["volume"] == pool]
        gain = _mean_ci(whole["gain"], whole["gain"], whole["gain"], n_resamples=n_resamples, seed=seed,
                        confidence=confidence)
        slope = _ols_slope(curve, "gain ~ log2_volume", "log2_volume", confidence)
        records.append({
            **dict(zip([*SETTING, *_CURVE], key)), "n_seeds": whole["seed"].nunique(), "pool": pool,
            "teacher_f1": float(whole["teacher_f1"].mean()), "student_f1": float(whole["f1"].mean()),
            "gain": gain["mean"], "gain_lo": gain["lo"], "gain_hi": gain["hi"],
            **{k: slope[k] for k in ("slope", "slope_lo", "slope_hi", "slope_p")},
        })
    return pd.DataFrame(records)


def setting_effects(frame: pd.DataFrame, *, confidence: float = 0.95) -> pd.DataFrame:
    """Fixed effects of ``gain ~ log2_volume * strong_teacher * all_layer_student`` (0/1
    indicators; the reference is the volume study's regime, a weak teacher and a top-K
    student) with a random intercept per target (statsmodels MixedLM, REML): the
    ``log2_volume:...`` interaction terms say by how much each setting changes F1 per doubling.
    Without one of the four cells (a fractional design) the model is
    ``gain ~ log2_volume * (strong_teacher + all_layer_student)``.

    Returns:
        ``term, coef, se, p, lo, hi``; empty when the design has a single setting.
    """
    import statsmodels.formula.api as smf

    sweep = _student_sweep(with_settings(frame))
    sweep = sweep.assign(strong_teacher=(sweep["teacher_regime"] == "strong").astype(float),
                         all_layer_student=(sweep["student_regime"] == "all").astype(float))
    factors = [name for name in ("strong_teacher", "all_layer_student") if sweep[name].nunique() > 1]
    if not factors or sweep["target"].nunique() < 2:
        return pd.DataFrame(columns=["term", "coef", "se", "p", "lo", "hi"])
    # a fractional design (a cell of the 2 x 2 left out) cannot separate the teacher x student
    # interaction from the main effects: fit the main effects and their slope changes only
    crossed = len(factors) == 1 or sweep.groupby(factors).ngroups == 4
    formula = "gain ~ log2_volume * " + (" * ".join(factors) if crossed else f"({' + '.join(factors)})")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        fit = smf.mixedlm(formula, sweep, groups=sweep["target"]).fit(reml=True)
    bounds = fit.conf_int(1 - confidence)
    terms = fit.fe_params.index
    return pd.DataFrame({"term": terms, "coef": fit.fe_params.to_numpy(), "se": fit.bse_fe.to_numpy(),
                         "p": fit.pvalues[terms].to_numpy(), "lo": bounds.loc[terms, 0].to_numpy(),
                         "hi": bounds.loc[terms, 1].to_numpy()})


def checkpoint_spread(frame: pd.DataFrame, *, n_resamples: int = 2000, seed: int = 0,
                      confidence: float = 0.95) -> pd.DataFrame:
    """Seed-to-seed spread of zero-shot (transfer) F1 per target, source, teacher setting and
    checkpoint policy: mean, standard deviation (bootstrap CI over seeds), range."""
    keys = ["model", "source", "target", "teacher_train_size", "teacher_train_layers", "teacher_checkpoint"]
    columns = [*keys, "n_seeds", "mean_f1", "sd", "sd_lo", "sd_hi", "min_f1", "max_f1"]
    if any(key not in frame for key in keys):
        return pd.DataFrame(columns=columns)  # a table that does not say how its teachers were trained
    rows = frame[(frame["kind"] == "transfer") & (frame["perturbation"] == "clean")]
    records = []
    for key, group in rows.groupby(keys, sort=True):
        f1 = pd.to_numeric(group["f1"]).to_numpy(dtype=float)
        sd = float(np.std(f1, ddof=1)) if len(f1) > 1 else np.nan
        lo, hi = (_bootstrap_ci((f1,), lambda x, axis: np.std(x, ddof=1, axis=axis), paired=False,
                                n_resamples=n_resamples, seed=seed, confidence=confidence)
                  if len(f1) > 2 and np.ptp(f1) > 0 else (np.nan, np.nan))
        records.append({**dict(zip(keys, key)), "n_seeds": len(f1), "mean_f1": float(f1.mean()), "sd": sd,
                        "sd_lo": lo, "sd_hi": hi, "min_f1": float(f1.min()), "max_f1": float(f1.max())})
    return pd.DataFrame(records, columns=columns)


def _policy_minus_default(measure):
    """A bootstrap statistic: the mean over targets of ``measure(policy) - measure(default)``,
    its columns being the policy's per-target F1 by seed, then the default's, in one order."""
    def difference(*columns: np.ndarray, axis: int = -1) -> np.ndarray:
        half = len(columns) // 2
        return np.mean([measure(policy, axis) - measure(default, axis)
                        for policy, default in zip(columns[:half], columns[half:])], axis=0)
    return difference


_sd_difference = _policy_minus_default(lambda f1, axis: np.std(f1, ddof=1, axis=axis))
_mean_difference = _policy_minus_default(lambda f1, axis: np.mean(f1, axis=axis))


def checkpoint_comparison(frame: pd.DataFrame, *, default: str = DEFAULT_CHECKPOINT,
                          n_resamples: int = 2000, seed: int = 0, confidence: float = 0.95) -> pd.DataFrame:
    """Each teacher checkpoint policy against ``default`` on the same seeds: the difference in
    seed-to-seed SD and in mean zero-shot F1, per target and over all targets of a teacher
    setting (``target`` = ``all``: the mean of the per-target differences). ``default``: xner's
    own policy (:data:`xner.options.DEFAULT_CHECKPOINT`).

    A policy's teachers of one seed differ from the default's only in which weights were kept
    (same initialisation, same batches), so the seeds pair up: the CIs resample seeds jointly
    (paired bootstrap), which is what makes a 5-seed comparison of spreads decidable at all.
    A policy is clearly better when its SD difference's CI lies below 0 and its mean F1
    difference's does not.

    Returns:
        ``model, source, teacher_train_size, teacher_train_layers, policy, target, n_seeds,
        sd_diff, sd_diff_lo, sd_diff_hi, f1_diff, f1_diff_lo, f1_diff_hi``.
    """
    keys = ["model", "source", "teacher_train_size", "teacher_train_layers"]
    columns = [*keys, "policy", "target", "n_seeds", "sd_diff", "sd_diff_lo", "sd_diff_hi",
               "f1_diff", "f1_diff_lo", "f1_diff_hi"]
    if any(key not in frame for key in [*keys, "teacher_checkpoint", "seed"]):
        return pd.DataFrame(columns=columns)
    rows = frame[(frame["kind"] == "transfer") & (frame["perturbation"] == "clean")]
    records = []
    for key, setting in rows.groupby(keys, sort=True):
        by_seed = setting.pivot_table(index="seed", columns=["teacher_checkpoint", "target"], values="f1",
                                      aggfunc="mean")
        policies = by_seed.columns.get_level_values(0).unique()
        if default not in policies:
            continue
        for policy in sorted(set(policies) - {default}):
            paired = pd.concat([by_seed[policy], by_seed[default]], axis=1, keys=["p", "d"]).dropna()
            targets = sorted(set(by_seed[policy].columns) & set(by_seed[default].columns))
            for target in [*targets, "all"]:
                chosen = targets if target == "all" else [target]
                data = tuple(paired[(side, t)].to_numpy(dtype=float) for side in ("p", "d") for t in chosen)
                record = {**dict(zip(keys, key)), "policy": policy, "target": target, "n_seeds": len(paired),
                          "sd_diff": float(_sd_difference(*data)), "f1_diff": float(_mean_difference(*data))}
                for name, statistic in (("sd_diff", _sd_difference), ("f1_diff", _mean_difference)):
                    record[f"{name}_lo"], record[f"{name}_hi"] = (
                        _bootstrap_ci(data, statistic, paired=True, n_resamples=n_resamples, seed=seed,
                                      confidence=confidence) if len(paired) > 2 else (np.nan, np.nan))
                records.append(record)
    return pd.DataFrame(records, columns=columns)


def decoding_gains(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean whole-pool gain per setting and curve under each decoding recorded in the table
    (``f1_<decoding>`` columns): does the choice of decoding change the volume answer?"""
    decodings = [c for c in frame.columns if c.startswith("f1_") and not c.endswith(("_lo", "_hi"))]
    rows = with_settings(frame)
    records = []
    for key, curve in rows.groupby([*SETTING, *_CURVE], sort=True):
        pool = curve["volume"].max()
        record = dict(zip([*SETTING, *_CURVE], key))
        for column in decodings:
            by_seed = curve.assign(value=pd.to_numeric(curve[column], errors="coerce")).pivot_table(
                index="seed", columns="volume", values="value", aggfunc="mean").reindex(columns=[0, pool])
            record[f"gain_{column.removeprefix('f1_')}"] = float((by_seed[pool] - by_seed[0]).mean())
        records.append(record)
    return pd.DataFrame(records)
