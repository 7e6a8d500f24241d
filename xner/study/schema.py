"""The params schema: how a run's params are laid out, versioned, and what its id hashes.

A run's params are fully resolved: every option is written out, swappable pieces under
their versioned names (``kl.v1``, ``uniform.v1``, ``mask-entity.v1``). When xner gains an
option or a naming rule, :data:`PARAMS_SCHEMA` goes up and :data:`CHANGES` says what the
older layout meant, so that

- a store written by an older schema is upgraded when a study session opens it (:func:`upgrade`): its
  specs are rewritten in today's layout and keep their ids, so done runs stay done;
- an id hashes the params in the *first* schema's spelling where that spelling means the same
  thing (:func:`identity`): an option added later is left out of the hash only while it holds
  the value every earlier run had (a fixed value, not today's default), and a ``.v1`` name is
  hashed bare, as schema 1 wrote it. Changing a default therefore changes the params of new
  runs and so their ids: a new run can never reuse an old run's result.

Schema 1: training options without ``batching``; distillation ``loss`` and ``weighting`` as
bare names. Schema 2: ``batching`` written out, versioned loss and weighting names. Schema 3:
evaluations state the perturbation ``rate`` (before: always 1). Schema 4: the training option
``checkpoint`` written out (before: always ``best``). Schema 5: distill runs name their
unlabeled ``pool`` (before: always the target's train split, ``["train"]``). Schema 6: the training
option ``dropout`` written out (before: always ``None``, the pretrained model's own).

>>> old = {"distillation": {"loss": "kl", "weighting": "uniform", "student": {"epochs": 2}}}
>>> upgrade("distill", old, 1)["distillation"]  # doctest: +NORMALIZE_WHITESPACE
{'loss': 'kl.v1', 'weighting': 'uniform.v1',
 'student': {'epochs': 2, 'batching': 'length', 'checkpoint': 'best', 'dropout': None}}
>>> identity("distill", upgrade("distill", old, 1)) == old
True
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["CHANGES", "PARAMS_SCHEMA", "identity", "upgrade"]

PARAMS_SCHEMA = 6
"""The layout new run specs are written in (stored in every result store)."""

CHANGES: Mapping[int, Mapping[str, Mapping[tuple[str, ...], Any]]] = {
    2: {
        "added": {("train", "training", "batching"): "length", ("distill", "distillation", "student", "batching"): "length"},
        "versioned": {("distill", "distillation", "loss"): "v1", ("distill", "distillation", "weighting"): "v1"},
    },
    3: {"added": {("evaluate", "rate"): 1.0}, "versioned": {}},
    4: {
        "added": {("train", "training", "checkpoint"): "best", ("distill", "distillation", "student", "checkpoint"): "best"},
        "versioned": {},
    },
    5: {"added": {("distill", "pool"): ["train"]}, "versioned": {}},
    6: {
        "added": {("train", "training", "dropout"): None, ("distill", "distillation", "student", "dropout"): None},
        "versioned": {},
    },
}
"""Per schema: options it added ((run kind, path in params) -> the value runs of older schemas
had) and names it versioned ((run kind, path) -> the version a bare name of older schemas meant)."""


def _parent(params: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    """The dict holding ``path``'s last key, if params have that section."""
    node: Any = params
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def _paths(kind: str, changes: Mapping[tuple[str, ...], Any]) -> list[tuple[tuple[str, ...], Any]]:
    return [(key[1:], value) for key, value in changes.items() if key[0] == kind]


def upgrade(kind: str, params: Mapping[str, Any], schema: int) -> dict[str, Any]:
    """Params of a ``kind`` run written by ``schema`` in today's layout (same meaning, same
    :func:`identity`)."""
    params = copy.deepcopy(dict(params))
    for version in range(schema + 1, PARAMS_SCHEMA + 1):
        for path, value in _paths(kind, CHANGES[version]["added"]):
            if (parent := _parent(params, path)) is not None and path[-1] not in parent:
                parent[path[-1]] = value
        for path, tag in _paths(kind, CHANGES[version]["versioned"]):
            parent = _parent(params, path)
            if parent is not None and isinstance(parent.get(path[-1]), str) and "." not in parent[path[-1]]:
                parent[path[-1]] = f"{parent[path[-1]]}.{tag}"
    return params


def identity(kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """What the id of a ``kind`` run hashes: params in the first schema's spelling where it
    means the same."""
    params = copy.deepcopy(dict(params))
    for version in sorted(CHANGES, reverse=True):
        for path, value in _paths(kind, CHANGES[version]["added"]):
            if (parent := _parent(params, path)) is not None and parent.get(path[-1], value) == value:
                parent.pop(path[-1], None)
        for path, tag in _paths(kind, CHANGES[version]["versioned"]):
            parent = _parent(params, path)
            if parent is not None and isinstance(parent.get(path[-1]), str) and parent[path[-1]].endswith(f".{tag}"):
                parent[path[-1]] = parent[path[-1]].removesuffix(f".{tag}")
    return params
