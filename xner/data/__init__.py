"""The data layer: read, validate, sample and describe NER corpora, and turn raw text into pools.

Everything else in xner gets its sentences through these functions:

>>> from xner.data import load_split, nested_subset  # doctest: +SKIP
>>> train = nested_subset(load_split("de", "train"), 1000, seed=0)  # doctest: +SKIP
"""

from xner.data.datasets import DATASETS, dataset_labels, load_split, parse_hf, read_split
from xner.data.formats import FORMATS, read_conll, read_text, write_conll
from xner.data.labels import (
    apply_label_map,
    describe_label_map,
    label_map_between,
    shared_labels,
)
from xner.data.pools import pool_digest, read_pool
from xner.data.rawpool import build_pool, write_pool
from xner.data.rawtext import sentences_from_text
from xner.data.sampling import nested_subset, subset_indices, unlabeled_pool
from xner.data.stats import data_stats, sentence_stats

__all__ = [
    "DATASETS",
    "FORMATS",
    "apply_label_map",
    "build_pool",
    "data_stats",
    "dataset_labels",
    "describe_label_map",
    "label_map_between",
    "load_split",
    "nested_subset",
    "subset_indices",
    "parse_hf",
    "pool_digest",
    "read_conll",
    "read_split",
    "read_pool",
    "read_text",
    "sentences_from_text",
    "sentence_stats",
    "shared_labels",
    "unlabeled_pool",
    "write_conll",
    "write_pool",
]
