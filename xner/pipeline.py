"""The steps a user (or a study run) takes: train a model on a language, evaluate it.

These join the data layer, the models and the metrics; the CLI commands ``xner
train`` and ``xner evaluate`` and the study's run kinds are thin layers over them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from xner.data import dataset_labels, load_split
from xner.data.sampling import first, nested_subset, training_subset
from xner.decoding import DEFAULT_DECODING
from xner.errors import XnerError
from xner.data.labels import OUTSIDE, apply_label_map, entity_types
from xner.evaluation import evaluate_perturbed
from xner.models.tagger import Tagger, TrainConfig, check_model_destination

__all__ = ["DataSpec", "evaluate_model", "teacher_weighting", "train_model", "training_sentences"]


@dataclass(frozen=True)
class DataSpec:
    """Where a language's data comes from, how its labels are mapped, and whether IOB1 chunk
    starts are repaired (``None``: as the dataset declares)."""

    dataset: str = "wikiann"
    data_dir: str | Path | None = None
    label_map: Mapping[str, str] = field(default_factory=dict)
    repair: bool | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        """The tag set after the label map: what a model trained on this data predicts."""
        return apply_label_map(dataset_labels(self.dataset), self.label_map)

    def split(self, lang: str, split: str) -> list:
        return load_split(lang, split, dataset=self.dataset, data_dir=self.data_dir,
                          label_map=dict(self.label_map) or None, repair=self.repair)


def train_model(
    lang: str,
    *,
    data: DataSpec = DataSpec(),
    model: str = "embedded",
    train_size: int | None = None,
    config: TrainConfig | None = None,
    out: str | Path | None = None,
    compact: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> Tagger:
    """Train a tagger on ``train_size`` sentences (a seeded nested subset) of ``lang``'s train split.

    Early stopping uses the language's dev split. With ``out``, the model is saved
    there with its data provenance (``compact``: only the trained weights, see
    :meth:`Tagger.save`); ``out`` is checked before training, and a model already there
    is replaced only with ``overwrite``.
    """
    config = config or TrainConfig()
    if out is not None:
        check_model_destination(out, overwrite)
    train = training_subset(data.split(lang, "train"), train_size, config.seed)
    dev = data.split(lang, "dev")
    tagger = Tagger.create(model, labels=data.labels, seed=config.seed)
    tagger.fit(train, dev=dev, config=config, progress=progress)
    tagger.metadata.update(
        name=f"{lang}-{data.dataset}-{len(train)}-s{config.seed}", dataset=data.dataset,
        label_map=dict(data.label_map),
        train_data={"lang": lang, "dataset": data.dataset, "label_map": dict(data.label_map),
                    "data_dir": None if data.data_dir is None else str(data.data_dir),
                    "size": len(train), "seed": config.seed,
                    **({} if data.repair is None else {"repair": data.repair})},
    )
    if out is not None:
        tagger.save(out, compact=compact, overwrite=overwrite)
    return tagger


def evaluate_model(
    tagger: Tagger,
    lang: str,
    *,
    data: DataSpec = DataSpec(),
    split: str = "test",
    perturbations: Sequence[str] = (),
    train_lang: str | None = None,
    train_dataset: str | None = None,
    rate: float = 1.0,
    seed: int = 0,
    n_resamples: int = 1000,
    limit: int | None = None,
    precision: str | None = None,
    decoding: str = DEFAULT_DECODING,
) -> list[dict]:
    """Rows of clean (and perturbed) scores of a model on ``lang``'s ``split``.

    Args:
        train_lang: the model's training language L1 (for the ``unseen-*``
            perturbations); default: the one recorded in the model.
        limit: evaluate on the first ``limit`` sentences only.
        precision: inference precision (``fp32``, ``bf16``, ``int8``, ``auto``; ``None``:
            the model's default, ``auto``).
        decoding: how word distributions become tags for ``f1``; every decoding is
            scored as ``f1_<name>`` (:mod:`xner.decoding`).
    """
    from xner.perturb import build_resources

    _check_map_targets(data.label_map, tagger.labels)
    test = first(data.split(lang, split), limit)
    resources = None
    if perturbations:
        recorded = tagger.metadata.get("languages") or [None]
        resources = build_resources(
            lang, train_lang=train_lang or recorded[0], dataset=data.dataset,
            train_dataset=train_dataset or tagger.metadata.get("dataset") or data.dataset,
            data_dir=data.data_dir, model=tagger.base_name,
            train_sentences=training_sentences(tagger, data.data_dir),
        )
    rows = evaluate_perturbed(tagger, test, perturbations, resources, data_labels=data.labels,
                              decoding=decoding, rate=rate, seed=seed, n_resamples=n_resamples, precision=precision)
    return [{"target": lang, "split": split, **row} for row in rows]


def _check_map_targets(label_map: Mapping[str, str], model_labels: Sequence[str]) -> None:
    """Refuse a label map that renames data types into a type the model does not predict:
    its entities could then only be missed, exactly as if mapped to O -- almost surely a typo
    (``--label-map GPE=LCO``), which would otherwise pass silently."""
    types = entity_types(model_labels)
    for source, target in label_map.items():
        if target != OUTSIDE and target not in types:
            raise XnerError(f"label map {source}={target}: the model has no type {target!r} (its types: "
                            f"{', '.join(types)}); map {source} to one of them or to O")


def training_sentences(tagger: Tagger, data_dir=None) -> list | None:
    """The labelled sentences a model was trained on, rebuilt from its recorded provenance
    (``None`` when it has none, e.g. a student trained on soft labels)."""
    record = tagger.metadata.get("train_data")
    if not record:
        return None
    data = DataSpec(record["dataset"], data_dir or record.get("data_dir"), record.get("label_map") or {},
                    record.get("repair"))
    return nested_subset(data.split(record["lang"], "train"), record["size"], record["seed"])


def teacher_weighting(name: str, teachers: Sequence[Tagger], data_dir=None):
    """A teacher weighting by name; ``langid`` learns from each teacher's own training data."""
    from xner.distillation.weighting import resolve_weighting, teacher_language

    if name.split(".")[0] != "langid":
        return resolve_weighting(name)
    sources = {teacher_language(t): training_sentences(t, data_dir) for t in teachers}
    missing = [lang for lang, sentences in sources.items() if not sentences]
    if missing:
        raise XnerError(f"langid weighting: teacher(s) {missing} record no training data to learn languages from")
    return resolve_weighting(name, sources=sources)
