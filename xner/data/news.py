"""Documents for the document-level tasks: MasakhaNEWS articles and Wikipedia sections.

The document tasks (:mod:`xner.tasks`) see a corpus as a list of :class:`Document`: a text,
the title it was published under (a news headline, a Wikipedia section title) and, where
there is one, its topic category. MasakhaNEWS (Adelani et al. 2023) ships one TSV per split
with a header ``category<TAB>headline<TAB>text<TAB>url``; quoted fields hold tabs and
newlines, so the file is read with the :mod:`csv` module, never line by line. Its folders are
laid out like the NER datasets: ``<root>/masakhanews/<iso3>/{train,dev,test}.tsv[.gz]`` plus
``labels.txt`` (the language's categories, one per line; they differ between languages).

>>> doc = Document("Super Eagles win", headline="Eagles win", category="sports", lang="pcm")
>>> doc.category
'sports'
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from pathlib import Path

from xner.data.datasets import LABELS_FILE, SPLITS, _language_codes, _listing, _split_file, data_root, missing_language
from xner.errors import XnerError

__all__ = ["NEWS_COLUMNS", "ChoiceItem", "Document", "find_document_split", "has_split", "language_folder", "load_documents", "news_categories", "read_news"]

NEWS_COLUMNS = ("category", "headline", "text", "url")
"""The header of a MasakhaNEWS TSV file, in order."""

@dataclass(frozen=True, slots=True)
class Document:
    """One document: its text, its title and its topic.

    Attributes:
        text: the body (a news article, a Wikipedia section).
        headline: the title it was published under; ``None`` if unknown.
        category: its topic label; ``None`` if unlabelled.
        lang: language code.
        source: where it was read (``file:line``), for messages and per-example tables.
    """

    text: str
    headline: str | None = None
    category: str | None = None
    lang: str | None = None
    source: str = ""


@dataclass(frozen=True, slots=True)
class ChoiceItem:
    """One multiple-choice question: a text and candidate titles, one of them its own.

    Attributes:
        text: the text whose title is asked for.
        candidates: the candidate titles, in the order the model sees them.
        answer: index of the right candidate.
        lang: language code.
        source: where the text was read, for per-example tables.
    """

    text: str
    candidates: tuple[str, ...]
    answer: int
    lang: str | None = None
    source: str = ""


def _open_text(path: Path) -> io.TextIOBase:
    opener = gzip.open if path.suffix == ".gz" else open
    return opener(path, "rt", encoding="utf-8", newline="")


def read_news(path: str | Path, lang: str | None = None) -> list[Document]:
    """Read a MasakhaNEWS TSV file (optionally gzipped).

    Args:
        path: the file; its first row must be the header :data:`NEWS_COLUMNS` (any order,
            ``url`` optional).
        lang: the language to record on every document.

    Raises:
        XnerError: a missing column, a row with the wrong number of fields or an empty text,
            naming the file and line.
    """
    path = Path(path)
    try:
        with _open_text(path) as handle:
            reader = csv.reader(handle, delimiter="\t", quotechar='"')
            header = next(reader, None)
            if header is None:
                raise XnerError(f"{path}: empty file; expected a header {'/'.join(NEWS_COLUMNS)}")
            missing = [c for c in NEWS_COLUMNS[:3] if c not in header]
            if missing:
                raise XnerError(f"{path}:1: header lacks column(s) {', '.join(missing)}; expected "
                                f"{'<TAB>'.join(NEWS_COLUMNS)}, got {'<TAB>'.join(header)}")
            column = {name: header.index(name) for name in NEWS_COLUMNS if name in header}
            documents = []
            for row in reader:
                line = reader.line_num
                if not any(field.strip() for field in row):
                    continue
                if len(row) != len(header):
                    raise XnerError(f"{path}:{line}: {len(row)} fields, the header has {len(header)} "
                                    "(an unclosed quote or a stray tab?)")
                text = row[column["text"]].strip()
                if not text:
                    raise XnerError(f"{path}:{line}: empty text")
                documents.append(Document(text, row[column["headline"]].strip() or None,
                                          row[column["category"]].strip() or None, lang, f"{path}:{line}"))
    except (OSError, csv.Error, UnicodeDecodeError) as err:
        raise XnerError(f"{path}: cannot read as a TSV file ({err})".replace("\n", " ")) from None
    return documents


def language_folder(lang: str, dataset: str = "masakhanews", data_dir: str | Path | None = None) -> Path:
    """The folder of one language of a document dataset: ``<root>/<dataset>/<lang>``, or
    ``<dataset>/<lang>`` when ``dataset`` is itself a folder.

    Raises:
        XnerError: no local root is set, or the dataset or language folder is missing (the
            message lists what is there).
    """
    folder = Path(dataset).expanduser()
    if not folder.is_dir():
        root = data_root(data_dir)
        if root is None:
            raise XnerError(f"dataset {dataset!r} is read from a local root: pass --data-dir or set "
                            f"XNER_DATA_DIR to a folder holding {dataset}/<lang>/{{train,dev,test}}.tsv")
        folder = root / dataset
        if not folder.is_dir():
            raise XnerError(f"no dataset folder {folder}; datasets there: {_listing(root)}")
    for code in _language_codes(lang):
        if (folder / code).is_dir():
            return folder / code
    raise missing_language(lang, folder)


def has_split(lang: str, split: str, dataset: str = "masakhanews", data_dir: str | Path | None = None) -> bool:
    """Whether a language of a document dataset has a file for ``split`` (MasakhaNEWS has no
    train split for six of its languages here)."""
    return any(p.name.split(".")[0] == split for p in language_folder(lang, dataset, data_dir).iterdir())


def load_documents(lang: str, split: str, dataset: str = "masakhanews",
                   data_dir: str | Path | None = None) -> list[Document]:
    """One split of a document dataset under the local data root (see :func:`language_folder`).

    Raises:
        XnerError: an unknown split, or a missing folder or file (the message lists what is there).
    """
    return read_news(find_document_split(lang, split, dataset, data_dir), lang)


def find_document_split(lang: str, split: str, dataset: str = "masakhanews",
                        data_dir: str | Path | None = None) -> Path:
    """The file of one split of a document dataset (see :func:`language_folder`).

    Raises:
        XnerError: an unknown split, or a missing folder or file (the message lists what is there).
    """
    if split not in SPLITS:
        raise XnerError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    return _split_file(language_folder(lang, dataset, data_dir), split)


def news_categories(lang: str, dataset: str = "masakhanews", data_dir: str | Path | None = None) -> tuple[str, ...]:
    """The categories of a language, from the ``labels.txt`` beside its splits.

    Raises:
        XnerError: the language has no ``labels.txt``.
    """
    labels = language_folder(lang, dataset, data_dir) / LABELS_FILE
    if not labels.is_file():
        raise XnerError(f"{labels}: missing; it lists the language's categories, one per line")
    return tuple(line.strip() for line in labels.read_text(encoding="utf-8").splitlines() if line.strip())
