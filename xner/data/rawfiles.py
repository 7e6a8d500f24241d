"""Raw-text inputs as documents: plain text, folders, ``.gz``, JSONL and TSV/CSV with a header.

Users hold raw text in many shapes; :func:`read_documents` turns each into ``(where, text)``
documents, one line per paragraph, and rejects what is not text with one line naming the file:

- a folder: every file under it, in sorted path order (hidden files skipped);
- ``*.jsonl`` / ``*.json``: one JSON object a line; its ``text_fields`` are documents;
- ``*.tsv`` / ``*.csv``: a header row, then records (quoted fields may hold tabs and newlines,
  as in MasakhaNEWS: read with the csv module, not line by line); its ``text_fields`` are
  documents (MasakhaNEWS: ``headline`` and ``text``);
- WikiExtractor's output (files ``wiki_00``... without a suffix), recognised by content: its
  default form (articles between ``<doc id=... title=...>`` and ``</doc>``, each opening with
  its title line, which is dropped: a title is not a sentence) and its ``--json`` form (one
  JSON object a line, read as JSONL: its ``text`` field);
- anything else: plain UTF-8 text, one document or paragraph a line;
- each may be gzipped (``.gz``).

Read as plain text, WikiExtractor's files would put every ``<doc ...>`` tag or JSON line into
the pool as a "sentence" of tokens: hence the sniffing.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "news.jsonl"
>>> _ = path.write_text('{"text": "Habari za leo."}\\n')
>>> [text for where, text in read_documents(path)]
['Habari za leo.']
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from xner.errors import XnerError

__all__ = ["TEXT_FIELDS", "content_suffix", "read_documents"]

TEXT_FIELDS = ("headline", "text")
"""Fields of a JSONL or TSV record read as text by default (those a record has)."""

_DELIMITERS = {".tsv": "\t", ".csv": ","}
_WIKI_OPEN = r'<doc id="[^"]*"[^>]*>'
_WIKI_DOC = re.compile(_WIKI_OPEN + r"\n(?P<body>.*?)</doc>", re.S)


def content_suffix(path: Path) -> str:
    """The suffix that says what a file holds, under a ``.gz`` (``news.tsv.gz`` -> ``.tsv``;
    ``''`` for none, as WikiExtractor's ``wiki_00``)."""
    return Path(path.stem).suffix if path.suffix == ".gz" else path.suffix


def _decoded(path: Path) -> str:
    """A file's text: gunzipped, UTF-8 checked, NUL-free and non-empty, or a one-line error."""
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
    except (OSError, EOFError) as err:
        raise XnerError(f"{path}: cannot read: {err}") from None
    if b"\x00" in data:
        raise XnerError(f"{path}: binary file (NUL bytes), not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise XnerError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    if not text.strip():
        raise XnerError(f"{path}: empty file (no text)")
    return text


def _fields(record: dict, where: str, fields: Sequence[str]) -> Iterator[tuple[str, str]]:
    present = [name for name in fields if isinstance(record.get(name), str)]
    if not present:
        raise XnerError(f"{where}: no text field ({', '.join(fields)}) in record with keys {', '.join(map(str, record))}")
    for name in present:
        yield where, record[name]


def _jsonl(path: Path, text: str, fields: Sequence[str]) -> Iterator[tuple[str, str]]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise XnerError(f"{path}:{number}: not JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise XnerError(f"{path}:{number}: a JSONL line must be an object, got {type(record).__name__}")
        yield from _fields(record, f"{path}:{number}", fields)


def _table(path: Path, text: str, delimiter: str, fields: Sequence[str]) -> Iterator[tuple[str, str]]:
    csv.field_size_limit(1 << 30)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    if not any(name in (reader.fieldnames or ()) for name in fields):
        raise XnerError(f"{path}:1: no text column ({', '.join(fields)}) in header {reader.fieldnames}")
    for record in reader:
        yield from _fields({k: v for k, v in record.items() if v}, f"{path}:{reader.line_num}", fields)


def _wikiextractor(path: Path, text: str) -> Iterator[tuple[str, str]]:
    """Articles of WikiExtractor's default output, without their title lines."""
    found = 0
    for found, match in enumerate(_WIKI_DOC.finditer(text), 1):
        _title, _, body = match["body"].partition("\n")
        yield f"{path}:{text.count(chr(10), 0, match.start()) + 1}", body
    opened = text.count("<doc ")
    if found != opened:
        raise XnerError(f"{path}: {opened} <doc> tags but {found} complete articles (a truncated WikiExtractor file?)")


def _sniffed(text: str) -> str:
    """``wikiextractor``, ``jsonl`` or ``text``: the form of a file its name does not tell."""
    first = text.lstrip()[:4096].partition("\n")[0]
    if re.fullmatch(_WIKI_OPEN, first.strip()):
        return "wikiextractor"
    if first.startswith("{"):
        try:
            return "jsonl" if isinstance(json.loads(first), dict) else "text"
        except json.JSONDecodeError:
            return "text"
    return "text"


def read_documents(path: str | Path, text_fields: Sequence[str] = TEXT_FIELDS) -> Iterator[tuple[str, str]]:
    """``(where, text)`` of every document under ``path`` (see the module docstring).

    Args:
        path: a file or a folder.
        text_fields: record fields read as text in JSONL and TSV/CSV inputs.

    Raises:
        XnerError: a missing path, binary or non-UTF-8 or empty file, bad JSON, or records
            without a text field -- one line naming the file (and line).
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise XnerError(f"{path}: empty folder (no files)")
        for file in files:
            yield from read_documents(file, text_fields)
        return
    if not path.exists():
        raise XnerError(f"{path}: no such file or folder")
    text = _decoded(path)
    suffix = content_suffix(path)
    form = "jsonl" if suffix in (".jsonl", ".json") else "table" if suffix in _DELIMITERS else _sniffed(text)
    if form == "jsonl":
        yield from _jsonl(path, text, text_fields)
    elif form == "table":
        yield from _table(path, text, _DELIMITERS[suffix], text_fields)
    elif form == "wikiextractor":
        yield from _wikiextractor(path, text)
    else:
        yield str(path), text
