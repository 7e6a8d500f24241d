"""Readers for Wikipedia section-title data: ready-made multiple-choice files and extracted dumps.

The reference study's second task (Manafi & Krishnaswamy 2024) gives a model a Wikipedia
section's text and asks for its title among four candidates. Two ways in:

- **WikiTitle files** as IndicGLUE's Wikipedia Section-title Prediction task distributes them
  (Kakwani et al. 2020): JSON (one list, or one object per line) of
  ``{"sectionText", "titleA", "titleB", "titleC", "titleD", "correctTitle": "titleB", "url"}``;
  read by :func:`read_wiki_titles` into :class:`~xner.data.news.ChoiceItem`.
- **Wikipedia dumps** extracted by WikiExtractor with ``--json --sections``: one article per
  line, ``{"id", "url", "title", "text"}``, whose ``text`` keeps section headings as lines.
  :func:`read_wikiextractor` splits every article into sections
  (:class:`~xner.data.news.Document` with the section title as ``headline``); the headline task
  then draws the distractor titles (:func:`xner.tasks.headline.choice_items`). Heading lines are
  recognised in the three forms WikiExtractor versions write: ``Section::::Title.``,
  ``<h2>Title</h2>`` (``--html``) and wikitext ``== Title ==``. The lead (text before the first
  heading) has no title and is skipped.

>>> split_sections("Intro.\\nSection::::History.\\nFounded in 1900.")
[('History', 'Founded in 1900.')]
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from xner.data.news import ChoiceItem, Document, _open_text
from xner.errors import XnerError

__all__ = ["read_wiki_titles", "read_wikiextractor", "split_sections"]

_TITLE_KEYS = ("titleA", "titleB", "titleC", "titleD")
_HEADING = re.compile(r"^(?:Section::::(?P<marked>.+?)\.?|<h[1-6]>(?P<html>.+?)</h[1-6]>|(?P<eq>={2,6})\s*(?P<wiki>.+?)\s*(?P=eq))\s*$")


def _records(path: Path) -> Iterator[tuple[int, object]]:
    """``(line, record)`` of a JSON file holding one list, or of a JSON-lines file."""
    try:
        with _open_text(path) as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as err:
        raise XnerError(f"{path}: cannot read ({err})") from None
    if text.lstrip().startswith("["):
        try:
            yield from ((1, record) for record in json.loads(text))
        except json.JSONDecodeError as err:
            raise XnerError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as err:
                raise XnerError(f"{path}:{number}: invalid JSON ({err.msg})") from None


def read_wiki_titles(path: str | Path, lang: str | None = None) -> list[ChoiceItem]:
    """Read a WikiTitle (IndicGLUE section-title) file into multiple-choice items.

    Raises:
        XnerError: a record that is not an object, lacks a key, or whose ``correctTitle`` is
            not one of ``titleA``..``titleD`` (file and line named).
    """
    path = Path(path)
    items = []
    for number, record in _records(path):
        where = f"{path}:{number}"
        if not isinstance(record, dict):
            raise XnerError(f"{where}: expected an object with sectionText, titleA-D and correctTitle")
        missing = [k for k in ("sectionText", "correctTitle", *_TITLE_KEYS) if k not in record]
        if missing:
            raise XnerError(f"{where}: missing key(s) {', '.join(missing)}")
        if record["correctTitle"] not in _TITLE_KEYS:
            raise XnerError(f"{where}: correctTitle {record['correctTitle']!r} is not one of {', '.join(_TITLE_KEYS)}")
        candidates = tuple(str(record[k]).strip() for k in _TITLE_KEYS)
        items.append(ChoiceItem(str(record["sectionText"]).strip(), candidates,
                                _TITLE_KEYS.index(record["correctTitle"]), lang, where))
    return items


def split_sections(text: str) -> list[tuple[str, str]]:
    """``(title, text)`` of every titled, non-empty section of an extracted article."""
    sections: list[tuple[str, str]] = []
    title, lines = None, []
    for line in text.splitlines() + ["Section::::end"]:
        match = _HEADING.match(line.strip())
        if match is None:
            lines.append(line)
            continue
        body = "\n".join(lines).strip()
        if title and body:
            sections.append((title, body))
        title = next(g for g in (match["marked"], match["html"], match["wiki"]) if g).strip()
        lines = []
    return sections


def read_wikiextractor(path: str | Path, lang: str | None = None) -> list[Document]:
    """Sections of every article of a WikiExtractor JSON-lines file, as documents titled by
    their section title (the article title is kept in ``source``).

    Raises:
        XnerError: a line that is not a JSON object with a ``text`` field (file and line named).
    """
    path = Path(path)
    documents = []
    for number, record in _records(path):
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise XnerError(f"{path}:{number}: expected a WikiExtractor JSON object with a 'text' field")
        article = record.get("title", "")
        for title, body in split_sections(record["text"]):
            documents.append(Document(body, title, None, lang, f"{path}:{number}:{article}"))
    return documents
