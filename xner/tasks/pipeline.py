"""Train a document model on a language and evaluate it, clean and perturbed: the steps behind
``xner train --task`` / ``xner evaluate --task`` and the study's run kinds for document tasks.

Evaluation rows are flat: accuracy with its bootstrap 95% CI, the maximum input
length (texts are truncated there) and how many sequences it cut, the overlap measure P4/P5
remove (share of test words seen in the model's training text) before and after, and the drop
from the clean accuracy; per-example predictions come separately so accuracy can be recomputed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from xner.data.news import Document, has_split, load_documents, news_categories
from xner.data.sampling import first, nested_subset, training_subset
from xner.errors import XnerError
from xner.models.tagger import TrainConfig
from xner.tasks import get_task
from xner.tasks.headline import DEFAULT_CHOICES, choice_items
from xner.models.document_model import DocumentModel, Example
from xner.tasks.topic import DROP, check_categories, map_categories

__all__ = ["DocumentData", "evaluate_document_model", "model_task", "train_document_model", "training_documents"]

CHOICE_SEED = 0
"""Seed of the headline distractors: fixed, so every model answers the same questions."""


@dataclass(frozen=True)
class DocumentData:
    """Where a language's documents come from and how they become examples of a task.

    Attributes:
        dataset: ``masakhanews`` or a folder laid out ``<lang>/{train,dev,test}.tsv``.
        data_dir: the local root (default ``$XNER_DATA_DIR``).
        category_map: topic categories renamed or dropped (``{"entertainment": "drop"}``), applied
            to every language's documents (topic only).
        choices: candidates per headline question.
    """

    dataset: str = "masakhanews"
    data_dir: str | Path | None = None
    category_map: Mapping[str, str] = field(default_factory=dict)
    choices: int = DEFAULT_CHOICES

    def documents(self, lang: str, split: str) -> list[Document]:
        return load_documents(lang, split, self.dataset, self.data_dir)

    def examples(self, task: str, lang: str, split: str) -> list[Example]:
        """A split as the task's examples: categorised documents (topic, map applied) or
        questions (headline, distractors drawn with :data:`CHOICE_SEED`)."""
        documents = self.documents(lang, split)
        if get_task(task).base == "topic":
            return map_categories(documents, self.category_map)
        return choice_items(documents, self.choices, CHOICE_SEED)

    def categories(self, lang: str) -> tuple[str, ...]:
        """A language's topic categories after the map (what its model predicts)."""
        mapped = (self.category_map.get(c, c) for c in news_categories(lang, self.dataset, self.data_dir))
        return tuple(dict.fromkeys(c for c in mapped if c != DROP))

    def vocabulary(self, lang: str) -> list[Document]:
        """Where P4/P5 take a target's words from: its train and dev splits (dev only where it
        has no train split; a native model's unseen words then come from dev)."""
        splits = ("train", "dev") if has_split(lang, "train", self.dataset, self.data_dir) else ("dev",)
        return [doc for split in splits for doc in self.documents(lang, split)]


def train_document_model(task: str, lang: str, *, data: DocumentData = DocumentData(), model: str = "embedded",
                         train_size: int | None = None, config: TrainConfig | None = None,
                         out: str | Path | None = None, compact: bool = False, overwrite: bool = False,
                         progress: bool = False) -> DocumentModel:
    """Train on ``train_size`` examples (a seeded nested subset) of ``lang``'s train split, early
    stopping on its dev split; save to ``out`` with the data provenance (``overwrite``: replace a
    model already there; the destination is checked before training)."""
    from xner.models.finetuned import check_model_destination

    if out is not None:
        check_model_destination(out, overwrite)
    config = config or TrainConfig()
    task = get_task(task).name
    train = training_subset(data.examples(task, lang, "train"), train_size, config.seed)
    labels = data.categories(lang) if get_task(task).base == "topic" else ()
    document_model = DocumentModel.create(model, task=task, labels=labels, seed=config.seed)
    document_model.fit(train, dev=data.examples(task, lang, "dev"), config=config, progress=progress)
    document_model.metadata.update(
        name=f"{lang}-{data.dataset}-{task}-{len(train)}-s{config.seed}", dataset=data.dataset,
        train_data={"lang": lang, "dataset": data.dataset, "category_map": dict(data.category_map),
                    "choices": data.choices, "data_dir": None if data.data_dir is None else str(data.data_dir),
                    "size": len(train), "seed": config.seed},
    )
    if out is not None:
        document_model.save(out, compact=compact, overwrite=overwrite)
    return document_model


def model_task(directory: str | Path):  # -> Task
    """The task a saved model was trained for (its ``xner.json``; models from before tasks, and
    unreadable metadata, which the NER loader then reports, count as NER).

    Raises:
        XnerError: not an xner model directory.
    """
    import json

    meta = Path(directory) / "xner.json"
    if not meta.is_file():
        raise XnerError(f"{directory}: not an xner model directory (no xner.json); train one with `xner train`")
    try:
        task = json.loads(meta.read_text()).get("task", "ner")
    except (ValueError, AttributeError, UnicodeDecodeError):
        task = "ner"  # unreadable: the loader verifies the folder's checksums and says what is wrong
    return get_task(task)


def training_documents(document_model: DocumentModel, data_dir=None) -> list[Example]:
    """The examples a model was trained on, rebuilt from its recorded provenance."""
    record = document_model.metadata["train_data"]
    data = DocumentData(record["dataset"], data_dir or record.get("data_dir"), record.get("category_map") or {},
                        record.get("choices", DEFAULT_CHOICES))
    return nested_subset(data.examples(document_model.task, record["lang"], "train"), record["size"], record["seed"])


def evaluate_document_model(document_model: DocumentModel, lang: str, *, data: DocumentData = DocumentData(),
                            split: str = "test", perturbations: Sequence[str] = (), seed: int = 0,
                            n_resamples: int = 1000, limit: int | None = None,
                            max_length: int | None = None) -> tuple[list[dict], list[dict]]:
    """Clean and perturbed accuracy of a model on ``lang``'s ``split``.

    Args:
        perturbations: document perturbation names (``nearest-unseen-word``, ``random-unseen-word``),
            relative to the text the model was trained on.
        limit: only the first ``limit`` examples.
        max_length: input subwords (default: what the model was trained with).

    Returns:
        ``(rows, predictions)``: one row per condition (``clean`` first) and one record per
        example and condition (``perturbation``, ``index``, ``gold``, ``predicted``).

    Raises:
        XnerError: test categories the model does not know (map them explicitly).
    """
    from xner.paths import cache_dir
    from xner.perturb.documents import document_resources, perturb_documents, word_overlap

    test = first(data.examples(document_model.task, lang, split), limit)
    if document_model.labels:
        check_categories(test, document_model.labels, f"{lang} {split}")
    max_length = max_length or document_model.metadata["trainings"][-1]["config"]["max_length"]
    source = training_documents(document_model, data.data_dir) if "train_data" in document_model.metadata else None
    conditions: list[tuple[str, list[Example], dict]] = [("clean", test, {})]
    if perturbations and source is None:
        raise XnerError("P4/P5 need the text the model was trained on, which it does not record; "
                        "train it with `xner train --task` (train_document_model)")
    if perturbations:
        from xner.perturb.resources import _vectors

        vocabulary = data.vocabulary(lang)
        resources = document_resources(
            vocabulary, source, load_vectors=lambda: _vectors(document_model.backbone),
            model_fingerprint=document_model.base_fingerprint, cache_dir=cache_dir() / "perturb",
            train_lang=document_model.metadata["train_data"]["lang"])
        for kind in perturbations:
            edited, summary = perturb_documents(test, kind, resources, seed)
            conditions.append((summary.pop("kind"), edited, summary))
    rows, predictions = [], []
    for name, examples, summary in conditions:
        scores = document_model.evaluate(examples, max_length, n_resamples=n_resamples, seed=seed)
        for index, record in enumerate(scores.pop("predictions")):
            predictions.append({"perturbation": name, "index": index, **record})
        rows.append({"target": lang, "split": split, "task": document_model.task, "perturbation": name, **scores,
                     "overlap": word_overlap(examples, source) if source else None, **summary})
    clean = rows[0]["accuracy"]
    for row in rows[1:]:
        row["drop"] = clean - row["accuracy"]
    for row in rows:
        row["overlap_clean"] = rows[0]["overlap"]
    return rows, predictions
