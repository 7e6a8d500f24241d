"""Native vs transfer robustness (the reference study's experiment) for HRL -> LRL pairs.

For each pair, a *native* model (trained on LRL labels) and a *transfer* model
(trained on HRL labels, applied zero-shot) are evaluated on the LRL test set,
clean and perturbed; the entity overlap of each model's training data with the
LRL test set is reported beside its scores (Manafi & Krishnaswamy 2024: transfer
depends largely on entity-chunk overlap, and transfer models are more robust).
The ``unseen-*`` perturbations are relative to each model's own training
language L1 (the LRL for native models, the HRL for transfer models).

A model is trained once per (language, dataset, size, seed, options) and saved
under ``models_dir``; pairs sharing a language reuse it, and a rerun reuses
every model already on disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from xner.data.datasets import find_split
from xner.errors import XnerError
from xner.languages import STUDY_PAIRS, get_language
from xner.models.tagger import Tagger, TrainConfig
from xner.pipeline import DataSpec, evaluate_model, train_model, training_sentences

__all__ = ["Pair", "available_pairs", "parse_pairs", "robustness"]

log = logging.getLogger("xner.robustness")

#: Pairs of the same relation kinds as the reference study, from the data in ../shared/data.
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
) -> tuple[list[dict], list[str]]:
    """Train (or reuse) native and transfer models for each pair and evaluate them.

    Returns:
        ``(rows, missing)``: tidy rows (pair, relation, kind native|transfer,
        source, target, perturbation, precision, recall, f1, f1_lo, f1_hi, drop,
        entity overlap measures) and the pairs skipped for lack of data.
    """
    from xner.metrics import entity_overlap

    config = config or TrainConfig()
    ready, missing = available_pairs(pairs, data_dir)
    rows: list[dict] = []
    for pair in ready:
        target_data = pair.data("lrl", data_dir)
        test = target_data.split(pair.lrl, "test")[:test_limit]
        for kind, source, side in (("native", pair.lrl, "lrl"), ("transfer", pair.hrl, "hrl")):
            source_data = pair.data(side, data_dir)
            tagger = _trained(source, source_data, model, train_size, config, Path(models_dir))
            overlap = entity_overlap(training_sentences(tagger, data_dir), test)
            results = evaluate_model(tagger, pair.lrl, data=target_data, perturbations=perturbations,
                                     train_lang=source, train_dataset=source_data.dataset, rate=rate,
                                     seed=config.seed, limit=test_limit)
            for result in results:
                row = {"pair": pair.name, "relation": pair.relation, "kind": kind, "source": source,
                       "target": pair.lrl, "model": model, "seed": config.seed,
                       "train_size": tagger.metadata["trainings"][-1]["train_sentences"],
                       **{k: result.get(k) for k in ("perturbation", "precision", "recall", "f1", "f1_lo",
                                                       "f1_hi", "drop", "tokens_edited", "entities_edited")},
                       "label_map": result["label_map"], **overlap}
                rows.append(row)
                if on_row is not None:
                    on_row(row)
    return rows, missing


def _trained(lang: str, data: DataSpec, model: str, train_size, config: TrainConfig, models_dir: Path) -> Tagger:
    """Load the model for these settings if it was trained before, else train and save it."""
    key = json.dumps([lang, data.dataset, dict(data.label_map), model, train_size, asdict(config)], sort_keys=True)
    directory = models_dir / f"{lang}-{data.dataset}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    if (directory / "xner.json").is_file():
        return Tagger.load(directory)
    available = len(data.split(lang, "train"))
    size = available if train_size is None else min(train_size, available)  # as the reference study
    log.info("training %s (%s, %d of %d train sentences)", lang, data.dataset, size, available)
    return train_model(lang, data=data, model=model, train_size=size, config=config, out=directory)
