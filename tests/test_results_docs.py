"""docs/results/README.md quotes numbers only from committed result tables, and quotes them right.

Every number with a decimal point in the findings is a link to the table it comes from:
``[72.0](sweeps/nl-de.csv?target=de&volume=8000&seed=1#f1)`` -- the CSV (relative to
docs/results/), row filters, and the column; ``#mean(f1)`` averages the selected rows; filter values may be percent-encoded.
So a rerun that changes a table makes this test fail until the prose is updated.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pandas as pd

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
LINK = re.compile(r"\[(?P<text>[-+]?[\d,]*\d(?:\.\d+)?)\]\((?P<path>[^)?#\s]+\.csv)(?:\?(?P<query>[^)#]*))?#(?P<column>\w+(?:\(\w+\))?)\)")
DECIMAL = re.compile(r"(?<![\w.])[-+]?\d+\.\d+")
AGGREGATE = re.compile(r"^(?P<how>mean|min|max)\((?P<column>\w+)\)$")


class Unresolved(Exception):
    """A link that does not point at a value."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise Unresolved(message)


def _matches(cell, wanted: str) -> bool:
    try:
        return float(cell) == float(wanted)
    except (TypeError, ValueError):
        return str(cell) == wanted


def quoted_value(root: Path, path: str, query: str | None, column: str) -> float:
    """The value a link points at; raises :class:`Unresolved` saying why when it cannot."""
    table = root / path
    _require(table.is_file(), f"{path}: no such table")
    rows = pd.read_csv(table)
    for condition in filter(None, (query or "").split("&")):
        key, _, wanted = condition.partition("=")
        wanted = unquote(wanted)  # values with brackets are percent-encoded in a link
        _require(key in rows.columns, f"{path}: no column {key!r}")
        rows = rows[[_matches(cell, wanted) for cell in rows[key]]]
    aggregate = AGGREGATE.match(column)
    name = aggregate["column"] if aggregate else column
    _require(name in rows.columns, f"{path}: no column {name!r}")
    _require(len(rows), f"{path}?{query}: no row matches")
    if aggregate:
        return float(getattr(rows[name].astype(float), aggregate["how"])())
    _require(len(rows) == 1, f"{path}?{query}: {len(rows)} rows match; add filters or use mean({name})")
    return float(rows[name].iloc[0])


def check_findings(text: str, root: Path) -> list[str]:
    """Problems of a findings page: wrong quotes, broken links, unlinked decimals."""
    problems = []
    for link in LINK.finditer(text):
        quoted = link["text"].replace(",", "")
        digits = len(quoted.partition(".")[2])
        try:
            value = quoted_value(root, link["path"], link["query"], link["column"])
        except Unresolved as err:
            problems.append(f"{link[0]}: {err}")
            continue
        if abs(value - float(quoted)) > 0.5 * 10**-digits + 1e-9:
            problems.append(f"{link[0]}: the table says {value:.{digits + 2}f}")
    unlinked = DECIMAL.findall(LINK.sub("", text))
    problems += [f"{number}: a decimal number without a link to its table" for number in unlinked]
    return problems


def test_the_checker_catches_wrong_quotes_broken_links_and_unlinked_numbers(tmp_path):
    pd.DataFrame({"target": ["de", "de", "nl"], "volume": [0, 500, 0], "f1": [70.79, 68.43, 65.0]}).to_csv(
        tmp_path / "t.csv", index=False)
    good = ("F1 [70.8](t.csv?target=de&volume=0#f1), on average [69.6](t.csv?target=de#mean(f1)) over 2,000 "
            "sentences, [68.4](t.csv?target=d%65&volume=500#f1) percent-encoded")
    assert check_findings(good, tmp_path) == []
    problems = check_findings(
        "[70.9](t.csv?target=de&volume=0#f1) [1.0](t.csv?target=de#f1) [1.0](x.csv#f1) then 3.14 unlinked", tmp_path)
    assert problems == [
        "[70.9](t.csv?target=de&volume=0#f1): the table says 70.790",
        "[1.0](t.csv?target=de#f1): t.csv?target=de: 2 rows match; add filters or use mean(f1)",
        "[1.0](x.csv#f1): x.csv: no such table",
        "3.14: a decimal number without a link to its table",
    ]


def test_findings_quote_the_committed_tables():
    problems = check_findings((RESULTS / "README.md").read_text(), RESULTS)
    assert not problems, "\n".join(problems)
