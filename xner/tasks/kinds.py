"""The study's ``train`` and ``evaluate`` runs for document tasks (params with a ``task``).

Same run kinds, store and report as NER (:mod:`xner.study.kinds` hands runs whose params name a
task here): a train run saves a compact :class:`~xner.models.document_model.DocumentModel`; an evaluate run
returns flat rows (accuracy with its CI, overlap, drop, maximum length) and the per-example
predictions, so every accuracy can be recomputed from the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xner.models.tagger import TrainConfig
from xner.models.document_model import DocumentModel
from xner.tasks.pipeline import DocumentData, evaluate_document_model, train_document_model

__all__ = ["evaluate_documents_run", "train_documents_run"]


def _data(params: Mapping[str, Any], ctx) -> DocumentData:
    return DocumentData(params["dataset"], ctx.data_dir, params.get("category_map") or {},
                        params.get("choices", 4))


def train_documents_run(params: Mapping[str, Any], config: TrainConfig, ctx) -> dict:
    with ctx.timed("train"):
        trained = train_document_model(params["task"], params["lang"], data=_data(params, ctx), model=params["model"],
                                       train_size=params["train_size"], config=config, out=ctx.run_dir, compact=True)
    record = trained.metadata["trainings"][-1]
    ctx.log(f"trained {params['task']} {params['lang']}: {record['train_examples']} examples, "
            f"best epoch {record['best_epoch']}")
    return {"train_examples": record["train_examples"], "best_epoch": record["best_epoch"],
            "dev_accuracy": record["history"][record["best_epoch"] - 1].get("dev_accuracy"),
            "epochs_run": len(record["history"]), "truncated_sequences": record["truncated_sequences"]}


def evaluate_documents_run(params: Mapping[str, Any], ctx) -> dict:
    document_model = DocumentModel.load(ctx.dep(params["model_run"]).dir)
    kinds = [k for k in params["perturbations"] if k != "clean"]
    with ctx.timed("evaluate"):
        rows, predictions = evaluate_document_model(
            document_model, params["target"], data=_data(params, ctx), split=params["split"], perturbations=kinds,
            seed=params["seed"], n_resamples=max(params["bootstrap"], 1), limit=params["test_size"])
    return {"rows": rows, "accuracy": rows[0]["accuracy"], "predictions": predictions}
