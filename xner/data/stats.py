"""Corpus statistics per language and split, or per file: what ``xner data stats`` prints.

Counts are of the data as read: validated, and repaired where the dataset declares it, with
the number of repairs in the row. Entities are counted with the same chunker as the metric
(:func:`xner.data.corpus.entity_spans`, i.e. seqeval), so "entities" means what evaluation
scores. Rows are flat dicts with the same keys, in this order: ``dataset, lang, split,
sentences, tokens, mean_length``, one count per entity type (``PER``, ``ORG``...),
``entities`` (all types), ``repairs, format, source``.

>>> from xner.data.corpus import Sentence
>>> sentence_stats([Sentence(("Ada", "Lovelace", "wrote"), ("B-PER", "I-PER", "O"))])
{'sentences': 1, 'tokens': 3, 'mean_length': 3.0, 'PER': 1, 'entities': 1}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from xner.data.corpus import Sentence, entity_spans
from xner.data.edits import edit_summary
from xner.data.datasets import SPLITS, read_split, resolve_dataset
from xner.data.formats import ReadReport, parse_conll
from xner.data.labels import OUTSIDE

__all__ = [
    "data_stats",
    "file_stats",
    "sentence_stats",
    "split_stats",
    "summary_line",
    "table_row",
]

Row = dict[str, Any]


def sentence_stats(sentences: Sequence[Sentence], types: Iterable[str] = ()) -> Row:
    """Sentence, token and entity counts of a list of sentences.

    Args:
        sentences: labelled or unlabeled sentences.
        types: entity types to report even when absent (a dataset's declared types); types
            found in the data follow them, sorted.

    Returns:
        ``{"sentences", "tokens", "mean_length", <one key per type>, "entities"}``.
    """
    flat = [tag for s in sentences for tag in (*(s.tags or ()), OUTSIDE)]
    counts = Counter(etype for etype, _, _ in entity_spans(flat))
    tokens = sum(map(len, sentences))
    return {
        "sentences": len(sentences),
        "tokens": tokens,
        "mean_length": round(tokens / len(sentences), 2) if sentences else 0.0,
        **{t: counts[t] for t in dict.fromkeys([*types, *sorted(counts)])},
        "entities": sum(counts.values()),
    }


def _row(report: ReadReport, types: Iterable[str], **keys: Any) -> Row:
    return {
        **keys,
        **sentence_stats(report.sentences, types),
        "repairs": report.repairs,
        "format": report.format,
        "source": report.source,
    }


def split_stats(
    langs: Iterable[str],
    dataset: str = "wikiann",
    data_dir: str | Path | None = None,
    splits: Sequence[str] = SPLITS,
    repair: bool | None = None,
) -> list[Row]:
    """One statistics row per (language, split) of a dataset.

    Args:
        langs: language codes.
        dataset: a dataset name or folder (see :func:`~xner.data.datasets.load_split`).
        data_dir: the local root; default ``$XNER_DATA_DIR``.
        splits: which splits.
        repair: as :func:`~xner.data.datasets.load_split` (``None``: the dataset's default).

    Returns:
        Rows as described in the module docstring, the dataset's types always present.
    """
    types = resolve_dataset(dataset).types or ()
    return [
        _row(read_split(lang, split, dataset, data_dir, repair), types,
             dataset=dataset, lang=lang, split=split)
        for lang in langs
        for split in splits
    ]


def file_stats(
    path: str | Path,
    labels: Iterable[str] | None = None,
    repair: bool = False,
    format: str = "auto",
) -> Row:
    """The statistics row of one file, validating it on the way.

    Args:
        path: a token-per-line file (any :data:`~xner.data.formats.FORMATS`).
        labels: allowed tags; ``None`` accepts any well-formed IOB2 tag.
        repair: repair IOB1 chunk starts and token-less lines instead of failing.
        format: a format name or ``"auto"``.

    Returns:
        A row with ``dataset`` and ``split`` ``None`` and ``lang`` the sentences' language
        when they all share one (Rahimi files name it); for the output of ``xner perturb``
        (an ``<file>.edits.jsonl`` beside it), also ``sentences_edited``, ``tokens_edited``
        and ``entities_edited``.
    """
    report = parse_conll(path, format=format, labels=labels, repair=repair)
    langs = {s.lang for s in report.sentences}
    lang = langs.pop() if len(langs) == 1 else None
    row = _row(report, (), dataset=None, lang=lang, split=None)
    edits = Path(path).with_name(Path(path).name + ".edits.jsonl")
    if edits.is_file():  # the output of `xner perturb`: also say what it changed
        row |= edit_summary(report.sentences, edits)
    return row


def _same_keys(rows: list[Row]) -> list[Row]:
    """Give every row every entity-type column (0 where absent), in first-seen order."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    tail = ["entities", "repairs", "format", "source"]
    order = [k for k in keys if k not in tail] + tail
    return [{k: row.get(k, 0) for k in order} for row in rows]


def data_stats(
    targets: Iterable[str],
    dataset: str = "wikiann",
    data_dir: str | Path | None = None,
    splits: Sequence[str] = SPLITS,
    repair: bool | None = None,
) -> list[Row]:
    """Rows for a mix of language codes (one per split) and file paths (one each).

    A target that is an existing file is read as a file (tags checked for IOB2 form only);
    anything else is a language of ``dataset``. All rows get the same keys.

    Args:
        targets: language codes and/or file paths.
        dataset, data_dir, splits, repair: as :func:`split_stats` (files: ``repair`` as given,
            ``None`` meaning strict).
    """
    rows: list[Row] = []
    for target in targets:
        if Path(target).is_file():
            rows.append(file_stats(target, repair=bool(repair)))
        else:
            rows.extend(split_stats([target], dataset, data_dir, splits, repair))
    return _same_keys(rows)


def table_row(row: Row) -> Row:
    """A row trimmed for a terminal table: files named in the first column, no provenance.

    >>> table_row({"dataset": None, "lang": None, "split": None, "sentences": 2,
    ...            "format": "conll", "source": "a.conll"})
    {'lang/file': 'a.conll', 'split': None, 'sentences': 2}
    """
    hidden = ("dataset", "lang", "format", "source")
    first = row["lang"] if row["split"] else row["source"]
    return {"lang/file": first, **{k: v for k, v in row.items() if k not in hidden}}


def summary_line(row: Row) -> str:
    """The line ``xner data validate`` prints for a file that passed.

    >>> summary_line({"source": "a.conll", "sentences": 2, "tokens": 9, "entities": 3,
    ...               "format": "conll", "repairs": 0})
    'OK a.conll: 2 sentences, 9 tokens, 3 entities (format conll, 0 repairs)'
    """
    return (
        f"OK {row['source']}: {row['sentences']} sentences, {row['tokens']} tokens, "
        f"{row['entities']} entities (format {row['format']}, {row['repairs']} repairs)"
    )
