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
from xner.data.datasets import SPLITS, dataset_labels
from xner.data.stats import data_stats, file_stats, summary_line, table_row

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


@data_app.command("stats")
@user_errors
def data_stats_command(
    targets: list[str] = typer.Argument(..., help="Language codes (ISO 639-1/3) or files."),
    dataset: str = typer.Option("wikiann", "--dataset", help="wikiann, masakhaner2 or a folder."),
    data_dir: str | None = typer.Option(
        None, "--data-dir", help="Local data root (default $XNER_DATA_DIR; unset: the HF hub)."
    ),
    splits: list[str] = typer.Option(list(SPLITS), "--split", help="Split(s) to count."),
    repair: bool | None = typer.Option(
        None, "--repair/--strict", help="Repair IOB1 starts (default: as the dataset declares)."
    ),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="Output format."),
) -> None:
    """Sentences, tokens, entities per type and mean length, per language and split (or file)."""
    rows = data_stats(targets, dataset=dataset, data_dir=data_dir, splits=splits, repair=repair)
    shown = [table_row(row) for row in rows] if fmt is OutputFormat.table else rows
    print_rows(shown, fmt, title=f"{dataset} statistics")


@data_app.command("validate")
def data_validate_command(
    files: list[str] = typer.Argument(..., help="Token-per-line files (.gz allowed)."),
    repair: bool = typer.Option(False, "--repair", help="Convert IOB1 to IOB2 instead of failing."),
    labels: str | None = typer.Option(
        None, "--labels", help="Check tags against this dataset's label set (default: any IOB2)."
    ),
    line_format: str = typer.Option("auto", "--line-format", help="Force a line format."),
) -> None:
    """Check files: print OK with counts per file, or its first error; exit 2 on any error."""
    failed = False
    for path in files:
        try:
            label_set = dataset_labels(labels) if labels else None
            row = file_stats(path, labels=label_set, repair=repair, format=line_format)
            typer.echo(summary_line(row))
        except XnerError as err:
            typer.echo(f"error: {err}", err=True)
            failed = True
    if failed:
        raise typer.Exit(2)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
