"""Report sections of the document tasks: accuracy native vs transfer, clean vs P4/P5, and
whether the accuracy drop follows the word overlap a perturbation removes.

:func:`xner.report.write_report` gives the NER sections the rows without a ``task`` (or with
``ner``) and these sections the others (:func:`split_tasks`).
"""

from __future__ import annotations

import pandas as pd

from xner.analysis import correlate

__all__ = ["document_predictions", "document_tables", "split_tasks"]

_KEYS = ["task", "model", "kind", "source", "target", "perturbation"]


def split_tasks(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(NER rows, document-task rows)`` of a tidy results table."""
    if "task" not in frame:
        return frame, frame.iloc[0:0]
    document = frame["task"].notna() & (frame["task"].astype(str).str.split(".").str[0] != "ner")
    return frame.loc[~document].reset_index(drop=True), frame.loc[document].reset_index(drop=True)


def document_tables(frame: pd.DataFrame, *, n_resamples: int = 2000, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Three tables of document-task rows, means over seeds:

    - ``document_accuracy``: per task, model, kind, source, target and perturbation: accuracy
      and its CI bounds, drop from clean, word overlap before (``overlap_clean``) and after;
    - ``document_robustness``: per task, kind (native/transfer) and perturbation: mean accuracy,
      drop and removed overlap over (source, target) pairs, and the correlation of the drop
      with the removed overlap across them (:func:`xner.analysis.correlate`: Pearson and
      Spearman, p-values, bootstrap CIs of ``n_resamples`` seeded by ``seed``); kind ``all``
      pools native and transferred pairs (does the drop follow the removed overlap across both?);
    - ``document_native_vs_transfer``: per task, target that has a native model, and test
      condition: the native accuracy against its transferred models' (their mean and the best
      source), and the drops from clean of both -- the reference study's comparison, per target.
    """
    table = frame.assign(removed_overlap=frame["overlap_clean"].astype(float) - frame["overlap"].astype(float))
    numbers = ["accuracy", "accuracy_lo", "accuracy_hi", "drop", "overlap_clean", "overlap", "removed_overlap"]
    table[numbers] = table[numbers].astype(float)
    accuracy = (table.groupby(_KEYS, dropna=False, sort=True)
                .agg(seeds=("seed", "nunique"), examples=("examples", "max"), max_length=("max_length", "max"),
                     **{name: (name, "mean") for name in numbers})
                .reset_index())
    kinds = accuracy if accuracy["kind"].nunique() < 2 else pd.concat([accuracy, accuracy.assign(kind="all")])
    perturbed = kinds[kinds["perturbation"] != "clean"]
    groups = perturbed.groupby(["task", "kind", "perturbation"], dropna=False, sort=True)
    robustness = groups.agg(pairs=("target", "size"), accuracy=("accuracy", "mean"), drop=("drop", "mean"),
                            removed_overlap=("removed_overlap", "mean")).reset_index()
    correlations = pd.DataFrame.from_records(
        [correlate(group["removed_overlap"], group["drop"], n_resamples=n_resamples, seed=seed)
         for _, group in groups],
        index=robustness.index)
    robustness = robustness.join(correlations)
    clean = kinds[kinds["perturbation"] == "clean"].groupby(["task", "kind"], sort=True)["accuracy"].mean()
    robustness["clean_accuracy"] = [clean.get((task, kind)) for task, kind in zip(robustness["task"], robustness["kind"])]
    return {"document_accuracy": accuracy.round(2), "document_robustness": robustness.round(3),
            "document_native_vs_transfer": _native_vs_transfer(accuracy).round(2)}


def _native_vs_transfer(accuracy: pd.DataFrame) -> pd.DataFrame:
    """One row per task, target with a native model, and perturbation (see :func:`document_tables`)."""
    keys = ["task", "target", "perturbation"]
    native = (accuracy[accuracy["kind"] == "native"].set_index(keys)[["accuracy", "drop"]]
              .rename(columns={"accuracy": "native_accuracy", "drop": "native_drop"}))
    transfer = accuracy[accuracy["kind"] == "transfer"].sort_values([*keys, "accuracy", "source"],
                                                                    ascending=[True, True, True, False, True])
    groups = transfer.groupby(keys, sort=True)
    summary = pd.DataFrame({
        "sources": groups["source"].nunique(),
        "transfer_accuracy": groups["accuracy"].mean(),
        "best_source": groups["source"].first(),
        "best_transfer_accuracy": groups["accuracy"].first(),
        "transfer_drop": groups["drop"].mean(),
    })
    table = native.join(summary, how="inner").reset_index()
    table["native_minus_best"] = table["native_accuracy"] - table["best_transfer_accuracy"]
    return table


_PREDICTION_PARAMS = ("task", "role", "source", "target", "seed")


def document_predictions(runs: pd.DataFrame) -> pd.DataFrame:
    """Every finished document-task evaluation's per-example predictions, one row per example
    and condition: ``run_id, task, role, source, target, seed, perturbation, index, gold,
    predicted`` (``runs``: a store's run records with their ``params`` and ``metrics``)."""
    columns = ["run_id", *_PREDICTION_PARAMS, "perturbation", "index", "gold", "predicted"]
    rows = [
        {"run_id": run_id, **{key: params.get(key) for key in _PREDICTION_PARAMS}, **record}
        for run_id, kind, status, params, metrics in zip(runs["id"], runs["kind"], runs["status"], runs["params"],
                                                          runs["metrics"])
        if kind == "evaluate" and status == "done" and "predictions" in (metrics or {})
        for record in metrics["predictions"]
    ]
    return pd.DataFrame.from_records(rows, columns=columns)
