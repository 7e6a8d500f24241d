"""The ``xner`` command line: a thin typer layer over the public API.

Every command parses options, calls one library function and prints its result.
User errors (:class:`xner.errors.XnerError`) become one ``error: ...`` line and
exit status 2 instead of a traceback.
"""

from __future__ import annotations

import csv
import dataclasses
import enum
import functools
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from xner.errors import XnerError
from xner.languages import list_languages, study_pairs

app = typer.Typer(
    name="xner",
    help="Cross-lingual NER transfer to lower-resource languages.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Inspect and validate NER data.", no_args_is_help=True)
app.add_typer(data_app, name="data")

F = TypeVar("F", bound=Callable[..., object])


def user_errors(func: F) -> F:
    """Turn an XnerError raised by a command into one line on stderr and exit 2."""

    @functools.wraps(func)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return func(*args, **kwargs)
        except XnerError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


class OutputFormat(str, enum.Enum):
    """How a command prints its rows: a rich table, CSV or a JSON list of objects."""

    table = "table"
    csv = "csv"
    json = "json"


def print_rows(rows: Sequence[dict[str, Any]], fmt: OutputFormat, title: str = "") -> None:
    """Print flat dict rows (same keys in every row) in the chosen format."""
    if fmt is OutputFormat.json:
        typer.echo(json.dumps(list(rows), indent=2, ensure_ascii=False))
        return
    columns = list(rows[0]) if rows else []
    if fmt is OutputFormat.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return
    table = Table(title=title or None)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if row[c] is None else str(row[c]) for c in columns))
    Console().print(table)


@app.command("languages")
@user_errors
def languages_command(
    pairs: bool = typer.Option(False, "--pairs", help="List the study's 13 HRL->LRL pairs."),
    family: str | None = typer.Option(None, "--family", help="Only this language family."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="Output format."),
) -> None:
    """List the language registry (codes, family, script, train sizes) or the study pairs."""
    if pairs:
        rows = [pair.describe() for pair in study_pairs(family)]
        print_rows(rows, fmt, title="Reference study pairs (HRL -> LRL)")
    else:
        rows = [dataclasses.asdict(lang) for lang in list_languages(family)]
        print_rows(rows, fmt, title="Languages")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
