"""``xner recommend``: rank candidate teacher languages for a target before training anything,
and build the ranker's training table from a measured transfer matrix.

>>> recommend("kin", dataset="masakhaner2").head(3)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from xner.data.corpus import Sentence
from xner.data.sampling import nested_subset
from xner.errors import XnerError, one_of
from xner.io import atomic_write
from xner.paths import cache_file
from xner.pipeline import DataSpec
from xner.ranker import DATA_FEATURES, SHIPPED_RANKER, Ranker, signals_table, train_ranker, transfer_matrix
from xner.transfer_features import SourceProfile, pair_features

__all__ = ["TARGET_SAMPLE", "MeasuredMatrix", "ensemble_experiment", "ranking_pairs", "recommend",
           "train_ranker_from", "write_ranker_tables"]

TARGET_SAMPLE = 1000
"""Unlabeled target sentences the overlap features are measured on (a seeded sample)."""


PROFILE_VERSION = 1
"""Bump when :class:`SourceProfile` changes meaning: cached profiles of older versions are ignored."""


def _backbone(model: str | None):
    if model is None:
        return None
    from xner.models.backbone import load_backbone

    return load_backbone(model)


def _source_profiles(datasets: Mapping[str, str], label_map: Mapping[str, str], data_dir,
                     backbone) -> dict[str, SourceProfile]:
    """Each candidate source's labelled train split (under the matrix's label map), profiled."""
    from xner.data import dataset_labels
    from xner.data.labels import entity_types

    profiles = {}
    for source, dataset in datasets.items():
        types = set(entity_types(dataset_labels(dataset)))
        data = DataSpec(dataset, data_dir, {k: v for k, v in label_map.items() if k in types})
        profiles[source] = _cached_profile(data, source, backbone)
    return profiles


def _cached_profile(data: DataSpec, source: str, backbone) -> SourceProfile:
    """A source's profile from ``$XNER_CACHE/source-profiles``, keyed by the split file's
    content, the label map and the tokenizer; computed and stored on a miss (hub data: always
    computed). Profiling tokenizes a whole train split, seconds per candidate; a hit is a read."""
    from xner.data.datasets import find_split

    def compute() -> SourceProfile:
        return SourceProfile.of(data.split(source, "train"), *(
            (backbone.tokenizer, backbone.normalize) if backbone is not None else ()))

    path = find_split(source, "train", data.dataset, data.data_dir)
    if path is None:
        return compute()
    with open(path, "rb") as handle:
        content = hashlib.file_digest(handle, "sha256").hexdigest()
    identity = [PROFILE_VERSION, content, source, dict(sorted(data.label_map.items())),
                None if backbone is None else backbone.fingerprint]
    cached = cache_file("source-profiles", identity, "json")
    if cached.is_file():
        try:
            return SourceProfile.from_json(json.loads(cached.read_text()))
        except (ValueError, KeyError, TypeError):
            pass  # a damaged cache entry is recomputed and replaced
    profile = compute()
    cached.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(cached, json.dumps(profile.to_json()))
    return profile


def _target_text(target: str, dataset: str | None, unlabeled: str | Path | None, data_dir) -> list[Sentence]:
    """The target's unlabeled text: a file (one tokenized sentence a line), else its train split."""
    if unlabeled is not None:
        from xner.data import read_text

        sentences = read_text(unlabeled, lang=target)
    elif dataset is not None:
        sentences = DataSpec(dataset, data_dir).split(target, "train")
    else:
        raise XnerError(f"recommend: no text of {target!r}: give --unlabeled FILE or --dataset")
    if not sentences:
        raise XnerError(f"recommend: no unlabeled {target!r} sentences in {unlabeled or dataset}")
    return [s.unlabeled() for s in nested_subset(sentences, min(TARGET_SAMPLE, len(sentences)), seed=0)]


def _features(target: str, target_text: list[Sentence], profiles: Mapping[str, SourceProfile],
              backbone) -> pd.DataFrame:
    """The data features of every candidate in ``profiles`` (the target is none of them)."""
    return pair_features(profiles, target, target_text, **(
        {"tokenizer": backbone.tokenizer, "normalize": backbone.normalize} if backbone is not None else {}))


@dataclass
class MeasuredMatrix:
    """Measured zero-shot transfer results and how their models were made: what a ranker
    learns from. Built from a study's store (:meth:`from_store`) or an exported results table
    (:meth:`from_table`)."""

    name: str
    frame: pd.DataFrame
    datasets: dict[str, str]
    label_map: dict[str, str]
    model: str | None
    signals: pd.DataFrame

    @classmethod
    def from_store(cls, store) -> "MeasuredMatrix":
        """Datasets, label map and model from the store's train runs; teacher signals from
        its ``signals`` runs."""
        done = store.records("done")
        trained = [r.spec.params for r in done if r.spec.kind == "train"]
        if not trained:
            raise XnerError(f"{store.path}: no trained model in the store to learn a ranker from")
        return cls(Path(store.path).name, store.frame(), {p["lang"]: p["dataset"] for p in trained},
                   dict(trained[0].get("label_map") or {}), trained[0]["model"],
                   signals_table([r for r in done if r.spec.kind == "signals"]))

    @classmethod
    def from_table(cls, path: str | Path, label_map: Mapping[str, str], model: str | None) -> "MeasuredMatrix":
        """An exported results table (``xner results``, a report's ``results.csv``); each
        source's dataset is the one the language registry has it in (MasakhaNER 2.0 first,
        else WikiANN). The table records neither the label map nor the model: give them."""
        from xner.languages import get_language

        path = Path(path)
        try:
            frame = pd.read_csv(path)
        except (OSError, ValueError) as err:
            raise XnerError(f"{path}: cannot read the results table ({getattr(err, 'strerror', None) or err})") from None
        if "source" not in frame:
            raise XnerError(f"{path}: not a results table (no 'source' column)")
        datasets = {}
        for code in sorted(set(frame["source"].dropna())):
            lang = get_language(code)
            datasets[code] = "masakhaner2" if lang.masakhaner_train else "wikiann"
        return cls(str(path), frame, datasets, dict(label_map), model, signals_table([]))


def ranking_pairs(measured: MeasuredMatrix, *, data_dir=None) -> pd.DataFrame:
    """The ranker's table: one row per measured off-diagonal (source, target) with its
    zero-shot ``f1`` (mean over seeds), the data features (subword overlap under the study's
    model's tokenizer) and the teacher signals (NaN without ``signals`` runs)."""
    matrix = transfer_matrix(measured.frame)
    matrix = matrix[matrix["kind"] == "transfer"]
    if matrix.empty:
        raise XnerError(f"{measured.name}: no zero-shot transfer results to learn a ranker from")
    targets = dict(measured.frame[["target", "dataset"]].drop_duplicates().itertuples(index=False))
    backbone = _backbone(measured.model)
    profiles = _source_profiles({s: measured.datasets[s] for s in sorted(set(matrix["source"]))},
                                measured.label_map, data_dir, backbone)
    tables = []
    for target, dataset in sorted(targets.items()):
        candidates = sorted(matrix.loc[matrix["target"] == target, "source"])
        if candidates:
            text = _target_text(target, dataset, None, data_dir)
            tables.append(_features(target, text, {s: profiles[s] for s in candidates}, backbone))
    features = pd.concat(tables, ignore_index=True)
    return matrix.merge(features, on=["source", "target"], how="left").merge(
        measured.signals, on=["source", "target"], how="left")


def train_ranker_from(measured: MeasuredMatrix, out: str | Path = SHIPPED_RANKER, *, kind: str = "auto",
                      data_dir=None) -> tuple[Ranker, pd.DataFrame]:
    """Learn the data-features ranker from measured transfer results and save it to ``out``.

    Args:
        kind: a :data:`~xner.ranker.RANKER_KINDS` name, or ``auto``: the kind whose
            data-features ranker has the lower mean regret leaving each target out (ties: ridge,
            the simpler); ``trained_on`` records both regrets.

    Returns:
        The ranker and the pairs table it learned from.
    """
    from xner.ranker import METHODS, RANKER_KINDS, leave_one_target_out

    if kind not in ("auto", *RANKER_KINDS):
        raise one_of("ranker kind", kind, ("auto", *RANKER_KINDS))
    pairs = ranking_pairs(measured, data_dir=data_dir)
    sources = sorted(set(pairs["source"]))
    trained_on = {"results": measured.name, "pairs": len(pairs), "targets": sorted(set(pairs["target"])),
                  "datasets": {s: measured.datasets[s] for s in sources}, "label_map": measured.label_map,
                  "model": measured.model}
    if kind == "auto":
        methods = {name: METHODS[f"{name} (data features only)"] for name in RANKER_KINDS}
        regret = leave_one_target_out(pairs, methods).groupby("method", sort=False)["regret"].mean()
        kind = min(RANKER_KINDS, key=lambda name: (round(regret[name], 9), RANKER_KINDS.index(name)))
        trained_on["leave_one_target_out_regret"] = {name: float(regret[name]) for name in RANKER_KINDS}
    ranker = train_ranker(pairs, DATA_FEATURES, kind=kind, trained_on=trained_on)
    ranker.save(out)
    return ranker, pairs


def recommend(
    target: str,
    *,
    dataset: str | None = None,
    unlabeled: str | Path | None = None,
    candidates: Sequence[str] | None = None,
    ranker: Ranker | str | Path | None = None,
    data_dir=None,
) -> pd.DataFrame:
    """Candidate sources for ``target`` ranked by predicted zero-shot F1, with the features.

    Args:
        target: the target language's code.
        dataset: the target's dataset (its train split, labels unused, is the unlabeled
            text) unless ``unlabeled`` is given.
        unlabeled: a file of unlabeled target text (one sentence a line, or CoNLL).
        candidates: source codes (default: every source the ranker was trained with).
        ranker: a :class:`Ranker` or its file (default: the one shipped with xner).
        data_dir: the data root that holds the candidates' labelled train splits.

    Returns:
        ``rank, source, predicted_f1, predicted_lo, predicted_hi`` and the features.
    """
    from xner.languages import get_language

    get_language(target)
    ranker = ranker if isinstance(ranker, Ranker) else Ranker.load(ranker or SHIPPED_RANKER)
    known = ranker.trained_on.get("datasets") or {}
    chosen = list(candidates) if candidates else sorted(known)
    unknown = [c for c in chosen if c not in known]
    if unknown:
        raise XnerError(f"recommend: no dataset known for candidate(s) {unknown}; the ranker knows {sorted(known)}")
    label_map = ranker.trained_on.get("label_map") or {}
    text = _target_text(target, dataset, unlabeled, data_dir)
    backbone = _backbone(ranker.trained_on.get("model"))
    profiles = _source_profiles({c: known[c] for c in chosen if c != target}, label_map, data_dir, backbone)
    table = _features(target, text, profiles, backbone)
    ranked = ranker.recommend(table)
    return ranked[["rank", "source", "predicted_f1", "predicted_lo", "predicted_hi", *DATA_FEATURES]]


def ensemble_experiment(frame: pd.DataFrame, per_target: pd.DataFrame, method: str) -> pd.DataFrame:
    """Does a student of the top-2 recommended teachers beat a student of the top-1?

    For each target where ``frame`` has students (and the volume-0 teacher baseline) of both
    the top-1 source ``method`` recommended in leave-one-target-out and of the set "top-1 +
    top-2" (in either order), :func:`xner.analysis.teacher_comparison` with the top-1 as the
    reference: zero-shot F1 of the top-1 teacher and of the two teachers' ensemble, their
    students' F1 at the largest common volume and the difference paired by seed (CI over
    seeds); a last row ``target = "mean"`` averages the targets with a bootstrap CI over them.

    Returns:
        ``target, top1, ensemble`` and the comparison's columns; empty when no target has both.
    """
    from xner.analysis import _mean_ci, teacher_comparison

    rows = []
    students = frame[frame["kind"] == "student"]
    for pick in per_target[per_target["method"] == method].itertuples():
        wanted = {pick.recommended, pick.second}
        mine = students[students["target"] == pick.target]
        sets = [s for s in mine["source"].unique() if "+" in s and set(s.split("+")) == wanted]
        if not sets or not (mine["source"] == pick.recommended).any():
            continue
        subset = mine[mine["source"].isin([pick.recommended, sets[0]])]
        compared = teacher_comparison(subset, reference=pick.recommended)
        rows += [{"target": pick.target, "top1": pick.recommended, "ensemble": sets[0], **row}
                 for row in compared.drop(columns=["target", "source", "reference"]).to_dict("records")]
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    ci = _mean_ci(table["full_diff"], table["full_diff_lo"], table["full_diff_hi"], n_resamples=2000, seed=0,
                  confidence=0.95)
    mean = table.drop(columns=["target", "top1", "ensemble", "model", "genus"]).mean(numeric_only=True).to_dict()
    mean |= {"target": "mean", "top1": "", "ensemble": "", "model": table["model"].iloc[0], "genus": "",
             "n_targets": len(table), "full_diff": ci["mean"], "full_diff_lo": ci["lo"], "full_diff_hi": ci["hi"]}
    return pd.concat([table, pd.DataFrame([mean])], ignore_index=True)


def write_ranker_tables(pairs: pd.DataFrame, out_dir: str | Path, frame: pd.DataFrame | None = None,
                        kind: str = "ridge") -> dict[str, pd.DataFrame]:
    """The evidence behind a ranker, as CSV tables in ``out_dir``: ``pairs.csv`` (measured F1
    and features per pair), ``feature_correlations.csv``, ``ranker_by_target.csv`` (each
    method's recommendation per held-out target), ``ranker_quality.csv`` (means with CIs) and,
    where ``frame`` (the results) has students of the teachers that the data-features ranker of
    ``kind`` (the shipped one's) recommends, ``ensemble.csv`` (:func:`ensemble_experiment`)."""
    from xner.analysis import feature_correlations
    from xner.ranker import SIGNAL_FEATURES, leave_one_target_out, quality_summary

    per_target = leave_one_target_out(pairs)
    tables = {"pairs": pairs, "feature_correlations": feature_correlations(pairs, (*DATA_FEATURES, *SIGNAL_FEATURES)),
              "ranker_by_target": per_target, "ranker_quality": quality_summary(per_target)}
    method = f"{kind} (data features only)"
    ensemble = ensemble_experiment(frame, per_target, method) if frame is not None else pd.DataFrame()
    if not ensemble.empty:
        tables["ensemble"] = ensemble
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        tmp = out / f".{name}.csv.tmp"
        table.to_csv(tmp, index=False)
        tmp.replace(out / f"{name}.csv")
    return tables
