"""Which teacher? A ranker of source languages learned from a measured transfer matrix.

The measured source x target zero-shot F1 (a study with ``matrix`` blocks) and the label-free
features of each pair (:mod:`xner.transfer_features`, :mod:`xner.teacher_signals`) train a
model that predicts a new target's zero-shot F1 from every candidate source, before any
teacher is trained. Its quality is measured honestly, leaving each target out in turn
(:func:`leave_one_target_out`): NDCG@3, top-1 accuracy and regret (F1 of the best source minus
F1 of the recommended one) against simple baselines (always English, the URIEL-nearest
language, the largest-overlap language).

A :class:`Ranker` is of one of two kinds: a ridge regression of F1 on standardized features,
or LightGBM LambdaRank (LangRank's learner, Lin et al. 2019) trained on each target's ranking of
its sources, its score mapped to F1 by a line. Both are stored as plain JSON (coefficients, or
LightGBM's own text model; never a pickle), with a predicted-F1 interval from the
leave-one-target-out residuals (split-conformal, Vovk et al. 2005). ``xner train-ranker``
ships whichever kind ranks better in leave-one-target-out on the features a new target has
before any teacher is trained (:data:`~xner.transfer_features.DATA_FEATURES`).
"""

from __future__ import annotations

import functools
import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from xner.errors import XnerError, one_of
from xner.teacher_signals import agreement
from xner.transfer_features import DATA_FEATURES

__all__ = [
    "METHODS",
    "RANKER_FORMAT",
    "RANKER_KINDS",
    "SHIPPED_RANKER",
    "SIGNAL_FEATURES",
    "Ranker",
    "fit_ranker",
    "leave_one_target_out",
    "quality_summary",
    "ranking_metrics",
    "signals_table",
    "train_ranker",
    "transfer_matrix",
]

RANKER_FORMAT = "xner.ranker.v2"
"""The version of the ranker file format (checked on load; v1 files, ridge rankers, still load)."""

SHIPPED_RANKER = Path(__file__).parent / "resources" / "ranker.v2.json"
"""The ranker ``xner recommend`` uses unless given another (trained on ``configs/matrix.yaml``)."""

SIGNAL_FEATURES: tuple[str, ...] = ("teacher_confidence", "teacher_entropy", "entity_rate_ratio", "teacher_agreement")
"""Model-based, label-free features: they need the candidate teacher trained (a ``signals`` run)."""

RANKER_KINDS = ("ridge", "lambdarank")
"""What a :class:`Ranker` can be."""

_RIDGE_ALPHA = 1.0
_MIN_TARGETS = 3  # every held-out ranker then learns from at least two targets' rankings
_INTERVAL = 0.9


def transfer_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """Zero-shot (and native, on the diagonal) clean F1 per (model, source, target), over seeds.

    Args:
        frame: a store's tidy table (:meth:`xner.study.ResultStore.frame`).

    Returns:
        ``model, dataset`` (the target's), ``source, target, kind, f1`` (mean over seeds), ``f1_lo, f1_hi`` (mean of the
        seeds' test-set bootstrap bounds), ``f1_min, f1_max`` (seed spread), ``n_seeds``, and
        the mean of every ``f1_<decoding>`` column the table has.
    """
    rows = frame[frame["kind"].isin(["transfer", "native"]) & (frame["perturbation"] == "clean")]
    decodings = [c for c in rows.columns if c.startswith("f1_") and not c.endswith(("_lo", "_hi"))]
    rows = rows.assign(**{c: pd.to_numeric(rows[c], errors="coerce") for c in ("f1", "f1_lo", "f1_hi", *decodings)})
    if "dataset" not in rows:  # a hand-made table
        rows = rows.assign(dataset="")
    grouped = rows.groupby(["model", "dataset", "source", "target", "kind"], as_index=False)
    table = grouped.agg(f1=("f1", "mean"), f1_lo=("f1_lo", "mean"), f1_hi=("f1_hi", "mean"), f1_min=("f1", "min"),
                        f1_max=("f1", "max"), n_seeds=("f1", "size"), **{c: (c, "mean") for c in decodings})
    return table.sort_values(["model", "target", "source"]).reset_index(drop=True)


def signals_table(records: Sequence) -> pd.DataFrame:
    """Teacher signals per (source, target), averaged over seeds, with agreement between the
    candidate teachers of each (target, seed) computed from their stored tags.

    Args:
        records: finished run records of kind ``signals`` (:meth:`ResultStore.records`).

    Returns:
        ``source, target`` and :data:`SIGNAL_FEATURES`; empty without records.
    """
    rows = [{"source": r.spec.params["source"], "target": r.spec.params["target"], "seed": r.spec.params["seed"],
             **r.metrics, "labels": tuple(r.metrics["labels"])} for r in records]
    if not rows:
        return pd.DataFrame(columns=["source", "target", *SIGNAL_FEATURES])
    table = pd.DataFrame(rows)
    table["teacher_agreement"] = np.nan
    for _, group in table.groupby(["target", "seed"]):
        labels = _tag_labels(group)
        scores = agreement(dict(zip(group["source"], group["tags"])), labels)
        table.loc[group.index, "teacher_agreement"] = [scores[s] for s in group["source"]]
    return table.groupby(["source", "target"], as_index=False)[list(SIGNAL_FEATURES)].mean()


def _tag_labels(group: pd.DataFrame) -> list[str]:
    """The label list every teacher of a matrix shares (one study-wide label set)."""
    recorded = set(group["labels"])
    if len(recorded) > 1:
        raise XnerError(f"teachers of one target tag with different label sets: {sorted(recorded)}")
    return list(recorded.pop())


# ---------------------------------------------------------------------------------------- model
@dataclass
class Ranker:
    """A fitted teacher ranker: features of (source, target) pairs -> a score that ranks a
    target's candidate sources, and a predicted zero-shot F1.

    ``kind`` ``ridge``: ridge regression of F1 on standardized features, the prediction is the
    score (a missing value counts as the training mean). ``lambdarank``: LightGBM LambdaRank on
    the raw features (the trees route missing values), its score mapped to F1 by a line fitted on
    the training pairs (slope >= 0: the ranking stays the model's).
    """

    kind: str
    features: tuple[str, ...]
    model: dict
    """ridge: ``means, scales, coef, intercept``; lambdarank: ``booster`` (LightGBM's text
    model) and ``calibration`` ``[intercept, slope]``."""
    half_width: float
    """Half-width of the predicted-F1 interval: the :data:`_INTERVAL` quantile of the absolute
    leave-one-target-out residuals (NaN when not measured)."""
    trained_on: dict = field(default_factory=dict)

    def score(self, table: pd.DataFrame) -> np.ndarray:
        """The ranking score of each row (higher: a better source for its target)."""
        x = _matrix(table, self.features)
        if self.kind == "lambdarank":
            return self._booster.predict(x)
        z = (x - np.asarray(self.model["means"])) / np.asarray(self.model["scales"])
        return np.where(np.isnan(z), 0.0, z) @ np.asarray(self.model["coef"]) + self.model["intercept"]

    def predict(self, table: pd.DataFrame) -> np.ndarray:
        """Predicted zero-shot F1 of each row."""
        if self.kind == "ridge":
            return self.score(table)
        intercept, slope = self.model["calibration"]
        return intercept + slope * self.score(table)

    @functools.cached_property
    def _booster(self):
        import lightgbm

        return lightgbm.Booster(model_str=self.model["booster"])

    def recommend(self, table: pd.DataFrame) -> pd.DataFrame:
        """``table`` ranked by score, with ``predicted_f1, predicted_lo, predicted_hi, rank``."""
        predicted = self.predict(table)
        ranked = table.assign(_score=self.score(table), predicted_f1=predicted,
                              predicted_lo=predicted - self.half_width, predicted_hi=predicted + self.half_width)
        ranked = ranked.sort_values("_score", ascending=False, kind="stable").drop(columns="_score")
        return ranked.reset_index(drop=True).assign(rank=np.arange(1, len(ranked) + 1))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"format": RANKER_FORMAT, "kind": self.kind, "features": list(self.features), "model": self.model,
                  "half_width": self.half_width, "trained_on": self.trained_on}
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path = SHIPPED_RANKER) -> "Ranker":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise XnerError(f"{path}: cannot read the ranker ({getattr(err, 'strerror', None) or err})") from None
        version = data.pop("format", None) if isinstance(data, dict) else None
        if version not in (RANKER_FORMAT, _RIDGE_FORMAT_V1):
            raise XnerError(f"{path}: not a ranker file of format {RANKER_FORMAT}")
        try:
            if version == _RIDGE_FORMAT_V1:  # v1: a ridge ranker, its coefficients at the top level
                data = {"kind": "ridge", "features": data["features"], "half_width": data["half_width"],
                        "trained_on": data.get("trained_on", {}),
                        "model": {key: data[key] for key in ("means", "scales", "coef", "intercept")}}
            if data["kind"] not in RANKER_KINDS:
                raise XnerError(f"{path}: {one_of('ranker kind', data['kind'], RANKER_KINDS)}")
            return cls(**{**data, "features": tuple(data["features"])})
        except (TypeError, KeyError) as err:
            raise XnerError(f"{path}: malformed ranker file ({err})") from None


_RIDGE_FORMAT_V1 = "xner.ranker.v1"


def _matrix(table: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    """The features as floats; a feature the table lacks is all NaN (imputed downstream)."""
    return table.reindex(columns=list(features)).apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)


def _standardize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Columns scaled to mean 0, sd 1 (an all-NaN or constant column: scale 1), NaN -> 0."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column (a feature not measured)
        means = np.nanmean(x, axis=0)
        scales = np.nanstd(x, axis=0)
    means = np.where(np.isnan(means), 0.0, means)
    scales = np.where((scales > 0) & ~np.isnan(scales), scales, 1.0)
    z = (x - means) / scales
    return np.where(np.isnan(z), 0.0, z), means, scales


def fit_ranker(table: pd.DataFrame, features: Sequence[str], *, kind: str = "ridge", alpha: float = _RIDGE_ALPHA,
               half_width: float = float("nan"), trained_on: Mapping | None = None) -> Ranker:
    """A :class:`Ranker` of ``kind`` fitted on every row of ``table`` (``f1`` and ``features``)."""
    y = table["f1"].to_numpy(dtype=float)
    if kind == "ridge":
        from sklearn.linear_model import Ridge

        z, means, scales = _standardize(_matrix(table, features))
        fitted = Ridge(alpha=alpha).fit(z, y)
        model = {"means": means.tolist(), "scales": scales.tolist(), "coef": fitted.coef_.tolist(),
                 "intercept": float(fitted.intercept_)}
    elif kind == "lambdarank":
        booster = _fit_lambdarank(table, features)
        scores = booster.predict(_matrix(table, features))
        slope = float(np.polyfit(scores, y, 1)[0]) if np.ptp(scores) > 0 else 0.0
        slope = max(slope, 0.0)
        model = {"booster": booster.model_to_string(),
                 "calibration": [float(y.mean() - slope * scores.mean()), slope]}
    else:
        raise one_of("ranker kind", kind, RANKER_KINDS)
    return Ranker(kind, tuple(features), model, half_width, dict(trained_on or {}))


def _fit_lambdarank(table: pd.DataFrame, features: Sequence[str]):
    """LightGBM LambdaRank (LangRank's ranker): relevance = the source's F1 decile in its target."""
    import lightgbm

    table = table.sort_values("target", kind="stable")
    relevance = table.groupby("target")["f1"].transform(lambda f: np.ceil(9 * f.rank(pct=True))).astype(int)
    model = lightgbm.LGBMRanker(objective="lambdarank", n_estimators=100, learning_rate=0.05, num_leaves=8,
                                min_child_samples=5, random_state=0, verbose=-1, n_jobs=1)
    model.fit(_matrix(table, features), relevance, group=table.groupby("target", sort=False).size())
    return model.booster_


def train_ranker(pairs: pd.DataFrame, features: Sequence[str] = DATA_FEATURES, *, kind: str = "ridge",
                 trained_on: Mapping | None = None) -> Ranker:
    """A ranker of ``kind`` on every pair, with its predicted-F1 interval from leave-one-target-out
    residuals (each target's pairs predicted by a ranker that never saw that target)."""
    residuals = []
    for target, test in pairs.groupby("target"):
        held_out = fit_ranker(pairs[pairs["target"] != target], features, kind=kind)
        residuals.extend(test["f1"].to_numpy(dtype=float) - held_out.predict(test))
    half_width = float(np.quantile(np.abs(residuals), _INTERVAL)) if residuals else float("nan")
    return fit_ranker(pairs, features, kind=kind, half_width=half_width, trained_on=trained_on)


# ------------------------------------------------------------------------------------- methods
Scorer = Callable[[pd.DataFrame, pd.DataFrame], np.ndarray]
"""``(training rows, one target's candidate rows) -> a score per candidate (higher: better)``."""


def _learned(kind: str, features: Sequence[str]) -> Scorer:
    return lambda train, test: fit_ranker(train, features, kind=kind).score(test)


def _column(name: str, sign: float) -> Scorer:
    return lambda train, test: sign * pd.to_numeric(test[name], errors="coerce").fillna(-sign * np.inf).to_numpy()


def _always(source: str) -> Scorer:
    return lambda train, test: (test["source"] == source).to_numpy(dtype=float)


_URIEL = [f for f in DATA_FEATURES if f.startswith("uriel_")]
METHODS: dict[str, Scorer] = {
    "ridge (all features)": _learned("ridge", [*DATA_FEATURES, *SIGNAL_FEATURES]),
    "ridge (data features only)": _learned("ridge", DATA_FEATURES),
    "lambdarank (all features)": _learned("lambdarank", [*DATA_FEATURES, *SIGNAL_FEATURES]),
    "lambdarank (data features only)": _learned("lambdarank", DATA_FEATURES),
    "always English": _always("en"),
    "URIEL-nearest": lambda train, test: -test[_URIEL].apply(pd.to_numeric, errors="coerce").mean(axis=1).to_numpy(),
    "largest subword overlap": _column("subword_overlap", 1.0),
}
"""The rankers and baselines :func:`leave_one_target_out` compares, by name."""


# ------------------------------------------------------------------------------------- quality
def ranking_metrics(f1: Sequence[float], scores: Sequence[float], k: int = 3) -> dict[str, float]:
    """How well ``scores`` rank candidates whose measured F1 is ``f1`` (ties: first listed).

    Returns:
        ``ndcg`` (NDCG@k with the F1 values as graded relevance), ``top1`` (1 if the
        top-scored candidate is a best one), ``regret`` (best F1 minus the top-scored one's),
        ``recommended_f1`` and ``best_f1``.

    >>> ranking_metrics([30.0, 50.0, 40.0], [0.1, 0.2, 0.9])["regret"]
    10.0
    """
    from sklearn.metrics import ndcg_score

    f1, scores = np.asarray(f1, dtype=float), np.asarray(scores, dtype=float)
    top = int(np.argmax(scores))
    best = float(f1.max())
    ndcg = float(ndcg_score(np.clip(f1, 0, None)[None, :], scores[None, :], k=k)) if len(f1) > 1 else 1.0
    return {"ndcg": ndcg, "top1": float(f1[top] == best), "regret": best - float(f1[top]),
            "recommended_f1": float(f1[top]), "best_f1": best}


def leave_one_target_out(pairs: pd.DataFrame, methods: Mapping[str, Scorer] = METHODS) -> pd.DataFrame:
    """Each method's ranking quality on each target, trained without any of that target's rows.

    Targets with a single measured source have nothing to rank: they train the others'
    rankers but are not scored.

    Args:
        pairs: one row per (source, target) off the diagonal: ``f1`` and the features.
        methods: name -> scorer (:data:`METHODS`).

    Returns:
        One row per (method, target): ``method, target, recommended, second`` (the runner-up),
        ``predicted_f1`` (ridge methods) and :func:`ranking_metrics`.
    """
    if pairs["target"].nunique() < _MIN_TARGETS:
        raise XnerError(f"leave-one-target-out needs pairs of at least {_MIN_TARGETS} targets, "
                        f"got {pairs['target'].nunique()}")
    rows = []
    for target, candidates in pairs.groupby("target", sort=True):
        if len(candidates) < 2:
            continue
        train = pairs[pairs["target"] != target]
        for name, scorer in methods.items():
            scores = np.asarray(scorer(train, candidates), dtype=float)
            metrics = ranking_metrics(candidates["f1"], scores)
            order = np.argsort(-scores, kind="stable")
            dataset = {"dataset": candidates["dataset"].iloc[0]} if "dataset" in candidates else {}
            rows.append({"method": name, "target": target, **dataset, "n_candidates": len(candidates),
                         "recommended": candidates["source"].iloc[order[0]],
                         "second": candidates["source"].iloc[order[1]], **metrics,
                         "predicted_f1": float(scores.max()) if name.startswith("ridge") else math.nan})
    return pd.DataFrame(rows)


def quality_summary(per_target: pd.DataFrame, *, n_resamples: int = 2000, seed: int = 0,
                    confidence: float = 0.95) -> pd.DataFrame:
    """Each method's mean NDCG@3, top-1 accuracy and regret over targets, with bootstrap CIs
    over targets (:func:`leave_one_target_out` rows): over every target (``targets = "all"``)
    and, where the targets come from several datasets, over each dataset's."""
    from xner.analysis import _bootstrap_ci

    groups = [("all", per_target)]
    if "dataset" in per_target and per_target["dataset"].nunique() > 1:
        groups += list(per_target.groupby("dataset", sort=True))
    rows = []
    for targets, subset in groups:
        for method, group in subset.groupby("method", sort=False):
            row = {"method": method, "targets": targets, "n_targets": len(group)}
            for metric in ("ndcg", "top1", "regret"):
                values = group[metric].to_numpy(dtype=float)
                lo, hi = (_bootstrap_ci((values,), np.mean, paired=False, n_resamples=n_resamples, seed=seed,
                                        confidence=confidence) if np.ptp(values) > 0 else (values[0], values[0]))
                row |= {metric: float(values.mean()), f"{metric}_lo": lo, f"{metric}_hi": hi}
            rows.append(row)
    table = pd.DataFrame(rows)
    order = {targets: i for i, (targets, _) in enumerate(groups)}
    return table.sort_values(["targets", "regret"], key=lambda c: c.map(order) if c.name == "targets" else c,
                             kind="stable").reset_index(drop=True)
