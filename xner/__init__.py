"""xner: cross-lingual NER transfer to lower-resource languages.

The public API lives here; the CLI (:mod:`xner.cli`) is a thin layer over it.
"""

import importlib

from xner.data.corpus import Sentence, entity_spans
from xner.data import (
    build_pool,
    dataset_labels,
    load_split,
    nested_subset,
    read_conll,
    read_pool,
    read_text,
    sentences_from_text,
    unlabeled_pool,
    write_conll,
)
from xner.data.news import ChoiceItem, Document, load_documents, read_news
from xner.data.wiki import read_wiki_titles, read_wikiextractor
from xner.decoding import DECODINGS, DEFAULT_DECODING, decode
from xner.errors import XnerError
from xner.options import DistillationOptions, TrainingOptions
from xner.tasks import TASKS, get_task
from xner.metrics import bootstrap_f1, entity_overlap, entity_scores, pair_overlap, subword_overlap
from xner.perturb import PERTURBATIONS, list_perturbations, perturb, perturb_corpus
from xner.models import Backbone, embedded_model_dir, load_backbone
from xner.study import ResultStore, RunSpec, Study, load_study, run_study
from xner.languages import (
    STUDY_PAIRS,
    Language,
    StudyPair,
    families,
    get_language,
    list_languages,
    study_pairs,
)

_LAZY = {
    "Tagger": "xner.models.tagger",
    "TrainConfig": "xner.models.tagger",
    "DataSpec": "xner.pipeline",
    "train_model": "xner.pipeline",
    "evaluate_model": "xner.pipeline",
    "DistillConfig": "xner.distillation.student",
    "distill": "xner.distillation.student",
    "soft_labels": "xner.distillation.student",
    "volume_sweep": "xner.sweep",
    "robustness": "xner.robustness",
    "teacher_comparison": "xner.analysis",
    "volume_correlations": "xner.analysis",
    "beyond_the_split": "xner.beyond_split",
    "mixed_effects": "xner.analysis",
    "feature_correlations": "xner.analysis",
    "recommend": "xner.recommend",
    "robustness_table": "xner.analysis",
    "robustness_overlap": "xner.analysis",
    "write_report": "xner.report",
    "predict_file": "xner.predict",
    "DocumentModel": "xner.models.document_model",
    "DocumentData": "xner.tasks.pipeline",
    "train_document_model": "xner.tasks.pipeline",
    "evaluate_document_model": "xner.tasks.pipeline",
}
"""Exports whose modules import torch, statsmodels or matplotlib (seconds): loaded on first
use (PEP 562), so ``import xner`` and every CLI command stay fast."""


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'xner' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "Tagger",
    "TrainConfig",
    "TrainingOptions",
    "DistillationOptions",
    "DataSpec",
    "train_model",
    "evaluate_model",
    "predict_file",
    "DistillConfig",
    "distill",
    "soft_labels",
    "volume_sweep",
    "robustness",
    "Backbone",
    "embedded_model_dir",
    "load_backbone",
    "Sentence",
    "XnerError",
    "entity_spans",
    "__version__",
    "teacher_comparison",
    "volume_correlations",
    "beyond_the_split",
    "mixed_effects",
    "feature_correlations",
    "recommend",
    "robustness_table",
    "robustness_overlap",
    "write_report",
    "Language",
    "StudyPair",
    "STUDY_PAIRS",
    "get_language",
    "list_languages",
    "families",
    "study_pairs",
    "load_split",
    "dataset_labels",
    "read_conll",
    "write_conll",
    "read_text",
    "sentences_from_text",
    "build_pool",
    "read_pool",
    "nested_subset",
    "unlabeled_pool",
    "perturb",
    "perturb_corpus",
    "PERTURBATIONS",
    "list_perturbations",
    "entity_scores",
    "bootstrap_f1",
    "DECODINGS",
    "DEFAULT_DECODING",
    "decode",
    "entity_overlap",
    "pair_overlap",
    "subword_overlap",
    "load_study",
    "Study",
    "RunSpec",
    "ResultStore",
    "run_study",
    "TASKS",
    "get_task",
    "Document",
    "ChoiceItem",
    "read_news",
    "load_documents",
    "read_wiki_titles",
    "read_wikiextractor",
    "DocumentModel",
    "DocumentData",
    "train_document_model",
    "evaluate_document_model",
]
