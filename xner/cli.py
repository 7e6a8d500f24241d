"""The ``xner`` command line: a thin typer layer over the public API.

Every command parses options, calls one library function and prints its result.
User errors (:class:`xner.errors.XnerError`) become one ``error: ...`` line and
exit status 2 instead of a traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

import typer

from xner.errors import XnerError

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


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
