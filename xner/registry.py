"""Versioned names of swappable pieces (spaCy style): ``mse.v1``, ``mask-entity.v1``.

A bare name (``mse``) means its latest version, so old configs that name a version keep
their meaning while new ones get the current behaviour.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from xner.errors import one_of

__all__ = ["resolve_name"]

_VERSIONED = re.compile(r"^(?P<base>.+)\.v(?P<version>\d+)$")


def resolve_name(kind: str, name: str, names: Iterable[str], *, list_versions: bool = False) -> str:
    """The registry key ``name`` means: itself if registered, else its highest ``.vN``.

    Args:
        kind: what the names are, for the error (``"loss"``).
        name: a bare or versioned name.
        names: the registry's keys, all versioned.
        list_versions: also list the versioned keys in the error, not only bare names.

    >>> resolve_name("loss", "mse", ["mse.v1", "mse.v2", "kl.v1"])
    'mse.v2'
    """
    names = list(names)
    if name in names:
        return name
    versions = [(int(m["version"]), key) for key in names if (m := _VERSIONED.match(key)) and m["base"] == name]
    if not versions:
        bare = {m["base"] for key in names if (m := _VERSIONED.match(key))}
        raise one_of(kind, name, bare | set(names) if list_versions else bare)
    return max(versions)[1]
