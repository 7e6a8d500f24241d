"""Find and load the splits of a named NER dataset: a local folder tree or the Hugging Face hub.

A dataset is a row of :data:`DATASETS` (its entity types, hub id and quirks), or any folder
laid out ``<lang>/{train,dev,test}[.ext]`` given by path. One generic reader serves all of
them; nothing here is specific to one dataset except the table.

Where the data comes from:

- a local root, ``data_dir=`` or the environment variable ``XNER_DATA_DIR``, holding
  ``<root>/<dataset>/<lang>/{train,dev,test}.<ext>`` (any of the :mod:`xner.data.formats`
  line formats, optionally ``.gz``). When a root is set, only it is used: a missing folder or
  file is an error naming the path and listing what is there, never a silent download;
- otherwise the hub: ``datasets.load_dataset("unimelb-nlp/wikiann", "de")`` or
  ``("masakhane/masakhaner2", "swa")``, whose ``ner_tags`` ClassLabel ids are turned into tag
  strings through the dataset's own features.

Languages are named by ISO 639-1 or 639-3 code (``"sw"`` and ``"swa"`` both find MasakhaNER's
``swa`` folder) through :func:`xner.languages.get_language`; unknown codes are used as given.

>>> dataset_labels("masakhaner2")
('O', 'B-PER', 'I-PER', 'B-ORG', 'I-ORG', 'B-LOC', 'I-LOC', 'B-DATE', 'I-DATE')
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from xner.data.corpus import Sentence
from xner.data.formats import ReadReport, SentenceBuilder, parse_conll
from xner.data.labels import (
    check_label_map,
    entity_types,
    iob2_tags,
    is_iob2_tag,
    map_tags,
)
from xner.errors import XnerError, one_of
from xner.languages import get_language

__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "HUB_SPLITS",
    "SPLITS",
    "DatasetInfo",
    "data_root",
    "dataset_labels",
    "find_split",
    "load_split",
    "parse_hf",
    "read_split",
    "resolve_dataset",
]

DATA_DIR_ENV = "XNER_DATA_DIR"
"""Environment variable naming the local data root."""

SPLITS = ("train", "dev", "test")
"""Split names, in the order tables list them."""

HUB_SPLITS = {"train": "train", "dev": "validation", "test": "test"}
"""xner split name -> Hugging Face split name."""

LABELS_FILE = "labels.txt"
"""In a user dataset folder: its tag set, one tag per line (the folder's label declaration)."""


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    """What xner knows about one dataset.

    Attributes:
        name: the dataset's name (``dataset=`` argument and folder name under the root).
        types: its entity types, in the order of its tag ids; ``None`` for a user folder
            without a ``labels.txt`` (then any well-formed IOB2 tag is accepted).
        hub_id: Hugging Face dataset id, ``None`` for a user folder.
        hub_code: which language code names a hub config: ``"code"`` (ISO 639-1 where one
            exists, as WikiANN) or ``"iso3"`` (as MasakhaNER).
        repair: the published data holds defects with one safe reading, so splits are read
            with ``repair=True`` unless the caller says otherwise (see ``repair_note``).
        repair_note: what those defects are, for the docs and ``xner data stats``.
        citation: where the data comes from.
        folder: the folder of a user dataset (``None`` for named ones).
    """

    name: str
    types: tuple[str, ...] | None
    hub_id: str | None = None
    hub_code: Literal["code", "iso3"] = "code"
    repair: bool = False
    repair_note: str = ""
    citation: str = ""
    folder: Path | None = None

    @property
    def labels(self) -> tuple[str, ...] | None:
        """The full IOB2 tag list (``O`` first), ``None`` when the dataset declares none."""
        return None if self.types is None else iob2_tags(self.types)


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            "wikiann",
            ("PER", "ORG", "LOC"),
            hub_id="unimelb-nlp/wikiann",
            hub_code="code",
            citation="Pan et al. 2017 (ACL); splits of Rahimi et al. 2019 (ACL), as XTREME PAN-X",
        ),
        DatasetInfo(
            "masakhaner2",
            ("PER", "ORG", "LOC", "DATE"),
            hub_id="masakhane/masakhaner2",
            hub_code="iso3",
            repair=True,
            repair_note=(
                "the published files open a few entities with I- (IOB1; e.g. yor/train.txt line "
                "56179) and xho/train.txt has two lines with a tag but no token; read as seqeval "
                "does: I- opening an entity becomes B-, token-less lines are dropped"
            ),
            citation="Adelani et al. 2022 (EMNLP), MasakhaNER 2.0",
        ),
    )
}
"""The named datasets."""


def data_root(data_dir: str | Path | None = None) -> Path | None:
    """The local data root: ``data_dir``, else ``$XNER_DATA_DIR``, else ``None`` (use the hub).

    Raises:
        XnerError: the root is set but is not a folder.
    """
    origin = "--data-dir"
    if data_dir is None or str(data_dir) == "":
        data_dir, origin = os.environ.get(DATA_DIR_ENV) or None, DATA_DIR_ENV
    if data_dir is None:
        return None
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise XnerError(f"data dir {str(root)!r} (from {origin}) is not a folder")
    return root


def missing_language(lang: str, folder: Path) -> XnerError:
    """The error for a language ``folder`` (a dataset folder) lacks, naming the datasets beside
    it that have the language: every command defaults to ``--dataset wikiann``, so a MasakhaNER
    language given without ``--dataset`` otherwise fails with no pointer to the right folder."""
    codes = _language_codes(lang)
    others = sorted(sibling.name for sibling in folder.parent.iterdir()
                    if sibling.is_dir() and sibling != folder and any((sibling / c).is_dir() for c in codes))
    hint = f"; {lang!r} is in {', '.join(others)} (choose with --dataset)" if others else ""
    return XnerError(f"no language folder {lang!r} in {folder}; available: {_listing(folder)}{hint}")


def _listing(folder: Path) -> str:
    names = sorted(p.name for p in folder.iterdir() if p.is_dir())
    return ", ".join(names) if names else "(none)"


def _user_dataset(folder: Path) -> DatasetInfo:
    labels_file = folder / LABELS_FILE
    types = None
    if labels_file.is_file():
        tags = labels_file.read_text(encoding="utf-8").split()
        for tag in tags:
            if not is_iob2_tag(tag):
                raise XnerError(f"{labels_file}: malformed tag {tag!r}; expected O, B-X or I-X")
        types = entity_types(tags)
    return DatasetInfo(str(folder), types, folder=folder)


def resolve_dataset(dataset: str) -> DatasetInfo:
    """Look a dataset up by name, or describe a user folder (``labels.txt`` gives its tags).

    Raises:
        XnerError: neither a known name nor a folder; lists the names.

    >>> resolve_dataset("wikiann").hub_id
    'unimelb-nlp/wikiann'
    """
    if dataset in DATASETS:
        return DATASETS[dataset]
    folder = Path(dataset).expanduser()
    if folder.is_dir():
        return _user_dataset(folder)
    raise XnerError(
        f"{one_of('dataset', dataset, DATASETS)}, or a folder laid out <lang>/train|dev|test"
    )


def dataset_labels(dataset: str) -> tuple[str, ...]:
    """The full IOB2 tag list of a dataset, ``O`` first, in the order of its tag ids.

    Args:
        dataset: a :data:`DATASETS` name or a user folder with a ``labels.txt``.

    Raises:
        XnerError: unknown dataset, or a user folder that declares no labels.

    >>> dataset_labels("wikiann")
    ('O', 'B-PER', 'I-PER', 'B-ORG', 'I-ORG', 'B-LOC', 'I-LOC')
    """
    info = resolve_dataset(dataset)
    if info.labels is None:
        raise XnerError(
            f"dataset folder {dataset!r} declares no labels: add {LABELS_FILE} there "
            "with its tags, one per line (O, B-PER, I-PER, ...)"
        )
    return info.labels


def _language_codes(lang: str) -> list[str]:
    """The codes a language may be filed under: as given, then ISO 639-1 and 639-3."""
    try:
        language = get_language(lang)
    except XnerError:
        return [lang]
    return list(dict.fromkeys(c for c in (lang, language.iso1, language.iso3) if c))


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise one_of("split", split, SPLITS)


def _split_file(folder: Path, split: str) -> Path:
    """The one file of a language folder named ``split`` or ``split.<ext>``."""
    named = [p for p in folder.iterdir() if p.name.split(".")[0] == split]
    found = sorted(p for p in named if p.is_file())
    if not found and named:
        raise XnerError(f"{sorted(named)[0]}: is a folder, not a {split!r} file; move the file it holds up into {folder}")
    if len(found) != 1:
        files = ", ".join(sorted(p.name for p in folder.iterdir())) or "(none)"
        problem = "no" if not found else "more than one"
        raise XnerError(f"{problem} {split!r} file in {folder}; found: {files}")
    return found[0]


def find_split(
    lang: str, split: str = "train", dataset: str = "wikiann", data_dir: str | Path | None = None
) -> Path | None:
    """The local file of one split, or ``None`` when no local root is set (the hub is used).

    Args:
        lang: ISO 639-1 or 639-3 code (or the folder name of a user dataset).
        split: ``train``, ``dev`` or ``test``.
        dataset: a :data:`DATASETS` name or a folder path.
        data_dir: the local root; default ``$XNER_DATA_DIR``.

    Raises:
        XnerError: the root, dataset folder, language folder or split file is missing; the
            message names the path and lists what is there.
    """
    _check_split(split)
    info = resolve_dataset(dataset)
    folder = info.folder
    if folder is None:
        root = data_root(data_dir)
        if root is None:
            return None
        folder = root / info.name
        if not folder.is_dir():
            raise XnerError(f"no dataset folder {folder}; datasets there: {_listing(root)}")
    for code in _language_codes(lang):
        if (folder / code).is_dir():
            return _split_file(folder / code, split)
    raise missing_language(lang, folder)


def parse_hf(
    rows: Any,
    *,
    lang: str | None = None,
    labels: Sequence[str] | None = None,
    repair: bool = False,
    source: str = "dataset",
) -> ReadReport:
    """Sentences from a Hugging Face dataset split with the NER schema (``tokens``, ``ner_tags``).

    ``ner_tags`` may be ClassLabel ids (WikiANN, MasakhaNER on the hub: names are taken from
    the dataset's features, never assumed) or tag strings. Tags are checked as in files.

    Args:
        rows: a ``datasets.Dataset`` (one split).
        lang: the language the sentences carry.
        labels: the allowed tags; ``None`` accepts any well-formed IOB2 tag.
        repair: fix IOB1 chunk starts and drop empty tokens instead of failing.
        source: name used in error messages, e.g. ``unimelb-nlp/wikiann/de/train``.

    Returns:
        A :class:`~xner.data.formats.ReadReport` with format ``"hf"``.

    Raises:
        XnerError: the first defect (as in files: unknown tag, IOB2 violation, empty token or
            sentence, and here also an out-of-range tag id), as ``source row N: ...``.
    """
    names = getattr(rows.features["ner_tags"].feature, "names", None)
    builder = SentenceBuilder(frozenset(labels) if labels is not None else None, repair)
    sentences = []
    for number, (tokens, tags) in enumerate(zip(rows["tokens"], rows["ner_tags"])):
        try:
            if len(tokens) != len(tags):
                raise XnerError(f"{len(tokens)} tokens but {len(tags)} tags")
            for token, tag in zip(tokens, tags if names is None else _tag_names(tags, names)):
                builder.add(None, token, tag, None)
            if not builder.tokens:
                raise XnerError("empty sentence")
        except XnerError as err:
            raise XnerError(f"{source} row {number}: {err}") from None
        sentences.append(builder.take(lang))
    return ReadReport(source, "hf", sentences, builder.repairs)


def _tag_names(ids: Sequence[int], names: Sequence[str]) -> list[str]:
    """ClassLabel ids as tag names; an id outside the label list (e.g. -1) is an error."""
    if any(not 0 <= i < len(names) for i in ids):
        raise XnerError(f"tag ids {list(ids)} outside the ClassLabel's 0..{len(names) - 1}")
    return [names[i] for i in ids]


def _load_hub(info: DatasetInfo, lang: str, split: str, repair: bool) -> ReadReport:
    """One split from the hub (only reached when no local root is set)."""
    import datasets as hf  # heavy import, only on this path

    try:
        language = get_language(lang)
        config = language.iso3 if info.hub_code == "iso3" else language.code
    except XnerError:
        config = lang
    source = f"{info.hub_id}/{config}/{split}"
    try:
        rows = hf.load_dataset(info.hub_id, config, split=HUB_SPLITS[split])
    except Exception as err:  # network, unknown config, cache: all become one line
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise XnerError(
            f"no local data root (set {DATA_DIR_ENV} or --data-dir) and loading {source} "
            f"from the Hugging Face hub failed: {reason}"
        ) from None
    return parse_hf(rows, lang=lang, labels=info.labels, repair=repair, source=source)


def read_split(
    lang: str,
    split: str = "train",
    dataset: str = "wikiann",
    data_dir: str | Path | None = None,
    repair: bool | None = None,
) -> ReadReport:
    """Read one split with its report (format, repairs); :func:`load_split` returns sentences.

    Args: as :func:`load_split`.
    """
    info = resolve_dataset(dataset)
    repair = info.repair if repair is None else repair
    path = find_split(lang, split, dataset, data_dir)
    if path is None:
        return _load_hub(info, lang, split, repair)
    stat = path.stat()
    report = _parsed(str(path), stat.st_size, stat.st_mtime_ns, info.labels, repair, lang)
    return replace(report, sentences=list(report.sentences))  # the caller's own list


@functools.lru_cache(maxsize=8)
def _parsed(path: str, size: int, mtime_ns: int, labels: tuple[str, ...] | None, repair: bool,
            lang: str) -> ReadReport:
    """A split file parsed once per process while it is unchanged (size and modification time
    are part of the key): the runs of a study read the same splits many times (training,
    overlap, perturbation resources), at about half a second for a 20,000-sentence file."""
    return parse_conll(path, labels=labels, repair=repair, lang=lang)


def load_split(
    lang: str,
    split: str = "train",
    dataset: str = "wikiann",
    data_dir: str | Path | None = None,
    label_map: Mapping[str, str] | None = None,
    repair: bool | None = None,
) -> list[Sentence]:
    """Load one split of a dataset as labelled sentences carrying ``lang``.

    Args:
        lang: ISO 639-1 or 639-3 code, e.g. ``"de"`` or ``"swa"``.
        split: ``train``, ``dev`` or ``test``.
        dataset: ``wikiann``, ``masakhaner2``, or a folder laid out ``<lang>/<split>[.ext]``.
        data_dir: the local root; default ``$XNER_DATA_DIR``; neither set -> the hub.
        label_map: explicit entity-type map applied after validation, e.g. ``{"DATE": "O"}``
            to train MasakhaNER with WikiANN's tags (see :func:`~xner.data.labels.
            describe_label_map` to report it). Keys must be types the dataset declares.
        repair: read IOB1 chunk starts (and token-less lines) as repairable instead of
            errors; ``None`` = the dataset's declared default (:attr:`DatasetInfo.repair`).

    Returns:
        The sentences in file order.

    Raises:
        XnerError: missing data (naming the path and the languages there), or the first
            defect of the file as ``file:line: ...``.

    Example:
        >>> load_split("swa", "dev", "masakhaner2", label_map={"DATE": "O"})  # doctest: +SKIP
    """
    report = read_split(lang, split, dataset, data_dir, repair)
    if not label_map:
        return report.sentences
    info = resolve_dataset(dataset)
    types = info.types or entity_types(t for s in report.sentences for t in s.tags or ())
    label_map = check_label_map(label_map, types)
    return [replace(s, tags=map_tags(s.tags or (), label_map)) for s in report.sentences]
