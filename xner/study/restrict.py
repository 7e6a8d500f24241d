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


def _flat_params(params: Mapping[str, object], prefix: str = "") -> dict[str, str]:
    """A run's params as ``key: text``: nested settings under dotted keys
    (``distillation.student.train_layers``), an unset value as ``null`` -- the way a config
    writes them (a strong teacher's ``train_size: null`` is "every labelled sentence")."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            flat |= _flat_params(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = "null" if value is None else str(value)
    return flat


def restrict_runs(specs: Sequence[RunSpec], only: Mapping[str, str]) -> list[RunSpec]:
    """The runs whose params hold every ``key: value`` of ``only`` (compared as text; ``kind``
    is the run kind, a dotted key a nested setting, ``null`` an unset value), plus every run
    they depend on, in the study's order.

    Raises:
        XnerError: a key no run has (naming the keys there are), or filters no run matches.
    """
    if not only:
        return list(specs)
    params = {spec.id: {"kind": spec.kind, **_flat_params(spec.params)} for spec in specs}
    keys = {key for flat in params.values() for key in flat}
    for key in only:
        if key not in keys:
            raise XnerError(f"--only {key}=...: no run has the key {key!r}; keys: {', '.join(sorted(keys))}")
    by_id = {spec.id: spec for spec in specs}
    matching = [i for i, flat in params.items() if all(flat.get(key) == value for key, value in only.items())]
    if not matching:
        wanted = " ".join(f"{key}={value}" for key, value in only.items())
        raise XnerError(f"--only {wanted}: no run of the study matches")
    kept = set(reachable(matching, lambda run: [dep for dep in by_id[run].deps if dep in by_id]))
    return [spec for spec in specs if spec.id in kept]
