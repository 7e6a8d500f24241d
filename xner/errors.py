"""One error type for every user-facing failure.

Bad input (a malformed file, an unknown language or tag, a missing model, a bad
config) must end in one clear line that names the file/line or key and, where it
helps, lists the valid options. Library code raises :class:`XnerError`; the CLI
prints ``error: <message>`` and exits with status 2 instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["XnerError", "one_line", "one_of"]


class XnerError(ValueError):
    """A user-facing error whose message is a complete, single-line explanation."""


def one_of(kind: str, value: object, valid: Iterable[object]) -> XnerError:
    """Build the standard "unknown X" error that always lists the valid options.

    >>> str(one_of("perturbation", "foo", ["mask-entity", "swap-entity"]))
    "unknown perturbation 'foo'; valid: mask-entity, swap-entity"
    """
    options = ", ".join(sorted(str(v) for v in valid))
    return XnerError(f"unknown {kind} {value!r}; valid: {options}")


def one_line(error: BaseException) -> str:
    """``Type: first line of the message`` -- what status tables and wrapped errors show.

    >>> one_line(OSError("disk full\\nsee the log"))
    'OSError: disk full'
    """
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
