"""A restricted sample of a study: the runs whose params match some ``key=value`` filters, with
every run they depend on.

Checking that a study reproduces -- on another machine, after an xner upgrade, for a reviewer
-- should not take the whole study's CPU-hours: ``xner study CONFIG --only target=de --only
seed=1 --store check.sqlite`` runs one curve of one seed from a fresh store, and its run ids
(and, xner being deterministic, its numbers) are those of the same runs in the full study.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from xner.errors import XnerError
from xner.study.runs import RunSpec, reachable

__all__ = ["parse_filters", "restrict_runs"]


def parse_filters(filters: Iterable[str]) -> dict[str, str]:
    """``["seed=1", "target=de"]`` -> ``{"seed": "1", "target": "de"}``; one line for a bad one."""
    parsed: dict[str, str] = {}
    for text in filters:
        key, sep, value = text.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise XnerError(f"--only {text!r}: expected KEY=VALUE, e.g. --only seed=1")
        parsed[key.strip()] = value.strip()
    return parsed


def _value(spec: RunSpec, key: str) -> str | None:
    if key == "kind":
        return spec.kind
    value = spec.params.get(key)
    return None if value is None else str(value)


def restrict_runs(specs: Sequence[RunSpec], only: Mapping[str, str]) -> list[RunSpec]:
    """The runs whose params hold every ``key: value`` of ``only`` (compared as text; ``kind``
    is the run kind), plus every run they depend on, in the study's order.

    Raises:
        XnerError: a key no run has (naming the keys there are), or filters no run matches.
    """
    if not only:
        return list(specs)
    keys = {"kind", *(key for spec in specs for key in spec.params)}
    for key in only:
        if key not in keys:
            raise XnerError(f"--only {key}=...: no run has the key {key!r}; keys: {', '.join(sorted(keys))}")
    by_id = {spec.id: spec for spec in specs}
    matching = [spec.id for spec in specs if all(_value(spec, key) == value for key, value in only.items())]
    if not matching:
        wanted = " ".join(f"{key}={value}" for key, value in only.items())
        raise XnerError(f"--only {wanted}: no run of the study matches")
    kept = set(reachable(matching, lambda run: [dep for dep in by_id[run].deps if dep in by_id]))
    return [spec for spec in specs if spec.id in kept]
