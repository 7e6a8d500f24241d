"""Native vs transfer robustness (the reference study's experiment) for HRL -> LRL pairs.

For each pair, a *native* model (trained on LRL labels) and a *transfer* model
(trained on HRL labels, applied zero-shot) are evaluated on the LRL test set,
clean and perturbed; the entity overlap of each model's training data with the
LRL test set is reported beside its scores (Manafi & Krishnaswamy 2024: transfer
depends largely on entity-chunk overlap, and transfer models are more robust).
The ``unseen-*`` perturbations are relative to each model's own training
language L1 (the LRL for native models, the HRL for transfer models).

The experiment is a study (:mod:`xner.study`): its train and evaluate runs are the study's,
content-hashed, in a result store under ``models_dir`` (``study.sqlite``, models under
``runs/``). A model is trained once per (language, dataset, size, seed, options); pairs sharing
a language reuse it, a study with the same settings shares its runs, and an interrupted call
(even ``kill -9``) resumes where it stopped when called again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xner.data.datasets import find_split
from xner.data.sampling import check_limit
from xner.decoding import DEFAULT_DECODING
from xner.errors import XnerError
from xner.languages import STUDY_PAIRS, get_language
from xner.models.tagger import TrainConfig
from xner.perturb import get_perturbation
from xner.pipeline import DataSpec
from xner.study.execute import RichReporter, default_registry, make_executor
from xner.study.runs import RunRegistry, RunSpec
from xner.study.store import ResultStore

__all__ = ["Pair", "available_pairs", "parse_pairs", "robustness"]

#: Pairs of the same relation kinds as the reference study, from the local data (WikiANN, MasakhaNER).
LOCAL_PAIRS = (
    ("nl", "de", "genetic", "wikiann", "wikiann"),
    ("ru", "pl", "genetic (other script)", "wikiann", "wikiann"),
    ("swa", "zul", "genetic", "masakhaner2", "masakhaner2"),
    ("en", "pcm", "borrowing (creole)", "wikiann", "masakhaner2"),
    ("ru", "yor", "control", "wikiann", "masakhaner2"),
)
_KNOWN_RELATIONS = {**{(p.hrl, p.lrl): p.relation for p in STUDY_PAIRS}, **{(r[0], r[1]): r[2] for r in LOCAL_PAIRS}}
#: When a pair mixes datasets, entity types outside WikiANN's are mapped to O.
MIXED_LABEL_MAP = {"DATE": "O"}


@dataclass(frozen=True)
class Pair:
    hrl: str
    lrl: str
    relation: str
    hrl_dataset: str = "wikiann"
    lrl_dataset: str = "wikiann"

    @property
    def name(self) -> str:
        return f"{self.hrl}->{self.lrl}"

    def data(self, side: str, data_dir) -> DataSpec:
        """The data of one side; a cross-dataset pair maps both sides to shared types."""
        dataset = self.hrl_dataset if side == "hrl" else self.lrl_dataset
        mixed = self.hrl_dataset != self.lrl_dataset
        label_map = MIXED_LABEL_MAP if mixed and dataset == "masakhaner2" else {}
        return DataSpec(dataset, data_dir, label_map)


def parse_pairs(text: str) -> list[Pair]:
    """``all`` (the 13 reference pairs), ``local`` (pairs from the shared data) or ``HRL:LRL,...``.

    A language is looked up in WikiANN first; a MasakhaNER 2.0 language (by its
    ISO 639-3 code, e.g. ``swa``) uses MasakhaNER.
    """
    if text == "all":
        return [Pair(p.hrl, p.lrl, p.relation) for p in STUDY_PAIRS]
    if text == "local":
        return [Pair(*row) for row in LOCAL_PAIRS]
    pairs = []
    for item in text.split(","):
        hrl, sep, lrl = item.strip().partition(":")
        if not sep or not hrl or not lrl:
            raise XnerError(f"--pairs item {item!r}: expected HRL:LRL (e.g. nl:de), 'all' or 'local'")
        pairs.append(Pair(hrl, lrl, _KNOWN_RELATIONS.get((hrl, lrl), "user"), _dataset_of(hrl), _dataset_of(lrl)))
    return pairs


def _dataset_of(code: str) -> str:
    language = get_language(code)
    return "masakhaner2" if language.masakhaner_train and code == language.iso3 else "wikiann"


def available_pairs(pairs: Sequence[Pair], data_dir) -> tuple[list[Pair], list[str]]:
    """The pairs whose train and test data are present, and a reason for each missing one."""
    ready, missing = [], []
    for pair in pairs:
        absent = [f"{lang} ({dataset})" for lang, dataset in ((pair.hrl, pair.hrl_dataset), (pair.lrl, pair.lrl_dataset))
                  if not _has_data(lang, dataset, data_dir)]
        if absent:
            missing.append(f"{pair.name}: no data for {', '.join(absent)}")
        else:
            ready.append(pair)
    return ready, missing


def _has_data(lang: str, dataset: str, data_dir) -> bool:
    try:
        return all(find_split(lang, split, dataset, data_dir) is not None for split in ("train", "test"))
    except XnerError:
        return False


def robustness(
    pairs: Sequence[Pair],
    *,
    data_dir=None,
    model: str = "embedded",
    train_size: int | None = 2000,
    config: TrainConfig | None = None,
    perturbations: Sequence[str] = ("unseen-entity", "unseen-context", "unseen-both"),
    rate: float = 1.0,
    test_limit: int | None = None,
    models_dir: str | Path = "models",
    on_row: Callable[[dict], None] | None = None,
    progress: RichReporter | None = None,
) -> tuple[list[dict], list[str]]:
    """Train native and transfer models for each pair and evaluate them, as study runs.

    Runs already done in the store under ``models_dir`` are not run again.

    Returns:
        ``(rows, missing)``: tidy rows (pair, relation, kind native|transfer,
        source, target, perturbation, precision, recall, f1, f1_lo, f1_hi, drop,
        entity overlap measures) and the pairs skipped for lack of data.

    Raises:
        XnerError: a run failed (the store keeps why: ``xner status <models_dir>/study.sqlite``).
    """
    config = config or TrainConfig()
    check_limit(test_limit, "test_limit")
    ready, missing = available_pairs(pairs, data_dir)
    registry = default_registry()
    planned = [(pair, kind, _evaluation(pair, kind, data_dir, model, train_size, config, perturbations, rate,
                                        test_limit, registry)) for pair in ready for kind in ("native", "transfer")]
    specs = {spec.id: spec for _, _, (train, evaluate) in planned for spec in (train, evaluate)}
    models_dir = Path(models_dir)
    with ResultStore(models_dir / "study.sqlite", runs_dir=models_dir / "runs") as store:
        make_executor("sequential").run(specs.values(), store, registry, progress)
        failed = [record for record in store.records("failed") if record.id in specs]
        if failed:
            raise XnerError(f"{len(failed)} run(s) failed, e.g. {failed[0].spec.label()}: {failed[0].error} "
                            f"(xner status {store.path})")
        names = {get_perturbation(kind).name: kind for kind in perturbations}
        rows: list[dict] = []
        for pair, kind, (train, evaluate) in planned:
            for result in store.get(evaluate.id).metrics["rows"]:
                row = _row(pair, kind, evaluate, store.get(train.id).metrics, result, names)
                rows.append(row)
                if on_row is not None:
                    on_row(row)
    return rows, missing


def _evaluation(pair: Pair, kind: str, data_dir, model: str, train_size: int | None, config: TrainConfig,
                perturbations: Sequence[str], rate: float, test_limit: int | None,
                registry: RunRegistry) -> tuple[RunSpec, RunSpec]:
    """The train run of one side of a pair and the run evaluating it on the pair's LRL, with the
    params of a study's (so a study with the same settings shares them)."""
    lang, side = (pair.lrl, "lrl") if kind == "native" else (pair.hrl, "hrl")
    data, target = pair.data(side, data_dir), pair.data("lrl", data_dir)
    available = len(data.split(lang, "train"))
    size = available if train_size is None else min(train_size, available)  # as the reference study
    where = None if data_dir is None else str(data_dir)
    train = RunSpec("train", registry.version("train"), {
        "lang": lang, "dataset": data.dataset, "label_map": dict(data.label_map), "model": model,
        "seed": config.seed, "train_size": size, "training": config.model_dump(exclude={"seed"}),
    }, data_dir=where)
    evaluate = RunSpec("evaluate", registry.version("evaluate"), {
        "model_run": train.id, "role": kind, "source": lang, "target": pair.lrl, "dataset": target.dataset,
        "label_map": dict(target.label_map), "model": model, "seed": config.seed, "train_size": size,
        "volume": None, "split": "test", "perturbations": ["clean", *(get_perturbation(k).name for k in perturbations)],
        "test_size": test_limit, "bootstrap": 1000, "decoding": DEFAULT_DECODING, "rate": rate,
    }, deps=(train.id,), data_dir=where)
    return train, evaluate


_RESULT_COLUMNS = ("perturbation", "precision", "recall", "f1", "f1_lo", "f1_hi", "drop", "tokens_edited",
                   "entities_edited")


def _row(pair: Pair, kind: str, evaluate: RunSpec, trained: dict[str, Any], result: dict[str, Any],
         names: dict[str, str]) -> dict[str, Any]:
    """One output row: the pair, the model, its scores (perturbations named as requested), overlap."""
    p = evaluate.params
    scores = {k: result.get(k) for k in _RESULT_COLUMNS}
    scores["perturbation"] = names.get(scores["perturbation"], scores["perturbation"])
    overlap = {k: v for k, v in result.items() if k not in _RESULT_COLUMNS and k != "label_map"}
    return {"pair": pair.name, "relation": pair.relation, "kind": kind, "source": p["source"], "target": p["target"],
            "model": p["model"], "seed": p["seed"], "train_size": trained["train_sentences"], **scores,
            "label_map": result["label_map"], **overlap}
