"""Label sets and label mappings: which IOB2 tags a dataset may hold and how sets are reconciled.

Datasets disagree on entity types (MasakhaNER 2.0 has DATE, WikiANN does not). xner never
reconciles them silently: a dataset declares its types, data holding any other tag is an
error, and a study that mixes datasets passes an explicit *label map* (entity type -> new type
or ``"O"``) whose effect :func:`describe_label_map` states in words for the report.

The IOB2 scheme (Tjong Kim Sang & Veenstra 1999; Ratinov & Roth 2009) as a transition rule:
``I-X`` may only follow ``B-X`` or ``I-X``. IOB1 data (``I-X`` opening a chunk) is repaired on
request by turning the opening ``I-X`` into ``B-X``, which is how seqeval reads such chunks.

>>> iob2_tags(["PER", "LOC"])
('O', 'B-PER', 'I-PER', 'B-LOC', 'I-LOC')
>>> map_tags(["B-DATE", "I-DATE", "B-PER"], {"DATE": "O"})
('O', 'O', 'B-PER')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set

from xner.errors import XnerError, one_of

__all__ = [
    "OUTSIDE",
    "apply_label_map",
    "check_label_map",
    "check_tag",
    "describe_label_map",
    "entity_types",
    "iob2_tags",
    "is_iob2_tag",
    "label_map_between",
    "map_tags",
    "shared_labels",
    "tag_type",
]

OUTSIDE = "O"
"""The tag of tokens outside every entity."""

PREFIXES = ("B-", "I-")
"""Chunk-begin and chunk-inside prefixes of IOB2, in the order tag lists use."""


def iob2_tags(types: Iterable[str]) -> tuple[str, ...]:
    """The full IOB2 tag list for entity types: ``O`` first, then ``B-``/``I-`` per type.

    The order matches the ClassLabel names of the Hugging Face NER datasets, so tag ids agree.

    >>> iob2_tags(["PER"])
    ('O', 'B-PER', 'I-PER')
    """
    return (OUTSIDE, *(prefix + etype for etype in types for prefix in PREFIXES))


def tag_type(tag: str) -> str | None:
    """The entity type of a tag, ``None`` for ``O``.

    >>> tag_type("I-ORG"), tag_type("O")
    ('ORG', None)
    """
    return None if tag == OUTSIDE else tag[2:]


def entity_types(tags: Iterable[str]) -> tuple[str, ...]:
    """Entity types of a tag collection, in order of first appearance.

    >>> entity_types(["O", "B-LOC", "I-LOC", "B-PER"])
    ('LOC', 'PER')
    """
    return tuple(dict.fromkeys(t for tag in tags if (t := tag_type(tag)) is not None))


def is_iob2_tag(tag: str) -> bool:
    """Whether a string is a well-formed IOB2 tag: ``O``, ``B-<TYPE>`` or ``I-<TYPE>``.

    >>> is_iob2_tag("B-PER"), is_iob2_tag("PER")
    (True, False)
    """
    return tag == OUTSIDE or (tag[:2] in PREFIXES and len(tag) > 2)


REPAIR_HINT = "repair=True (--repair in xner train, evaluate and data)"
"""Where a reader's repairs are switched on: the library argument and the commands that have it."""


def check_tag(prev: str, tag: str, valid: Set[str] | None, repair: bool) -> str:
    """Check one tag against the label set and the IOB2 transition rule; return it or its repair.

    Args:
        prev: the previous tag of the sentence (``"O"`` at the start).
        tag: the tag to check.
        valid: the declared tag set; ``None`` accepts any well-formed ``O``/``B-X``/``I-X``.
        repair: turn a chunk-opening ``I-X`` (IOB1) into ``B-X`` instead of failing.

    Returns:
        ``tag`` itself, or ``B-X`` when an ``I-X`` was repaired.

    Raises:
        XnerError: unknown tag (listing the valid ones) or ``I-X`` not continuing an ``X`` chunk.
            The message has no location: callers prefix ``file:line``.

    >>> check_tag("O", "I-PER", None, repair=True)
    'B-PER'
    """
    if valid is not None and tag not in valid:
        raise one_of("tag", tag, valid)
    if valid is None and not is_iob2_tag(tag):
        raise XnerError(f"malformed tag {tag!r}; expected O, B-<TYPE> or I-<TYPE>")
    if tag[:2] == "I-" and prev[2:] != tag[2:]:  # "O"[2:] == "" never equals a type
        if not repair:
            raise XnerError(
                f"{tag} follows {prev}: an entity must start with B-{tag[2:]} "
                f"(IOB2); {REPAIR_HINT} reads it as IOB1 and fixes it"
            )
        return "B-" + tag[2:]
    return tag


def check_label_map(label_map: Mapping[str, str], types: Sequence[str]) -> dict[str, str]:
    """Validate a label map (entity type -> new type or ``"O"``) against a dataset's types.

    Args:
        label_map: e.g. ``{"DATE": "O"}`` (drop DATE) or ``{"GPE": "LOC"}`` (rename).
        types: the entity types the data declares.

    Returns:
        The map as a plain dict.

    Raises:
        XnerError: a key is not one of ``types`` or a value is a full tag like ``B-LOC``.

    >>> check_label_map({"DATE": "O"}, ["PER", "DATE"])
    {'DATE': 'O'}
    """
    for source, target in label_map.items():
        if source not in types:
            raise one_of("entity type in label map", source, types)
        if target != OUTSIDE and (not target or target[:2] in PREFIXES):
            raise XnerError(
                f"label map {source!r} -> {target!r}: map a type to another type name "
                "(e.g. 'LOC') or to 'O', not to a tag"
            )
    return dict(label_map)


def _tag_table(label_map: Mapping[str, str]) -> dict[str, str]:
    """Expand a type map to a tag map: ``{"DATE": "O"}`` -> ``{"B-DATE": "O", "I-DATE": "O"}``."""
    return {
        prefix + source: OUTSIDE if target == OUTSIDE else prefix + target
        for source, target in label_map.items()
        for prefix in PREFIXES
    }


def map_tags(tags: Iterable[str], label_map: Mapping[str, str]) -> tuple[str, ...]:
    """Apply a label map to one tag sequence (tags of unmapped types are kept).

    >>> map_tags(["B-GPE", "I-GPE", "O"], {"GPE": "LOC"})
    ('B-LOC', 'I-LOC', 'O')
    """
    table = _tag_table(label_map)
    return tuple(table.get(tag, tag) for tag in tags)


def apply_label_map(labels: Sequence[str], label_map: Mapping[str, str]) -> tuple[str, ...]:
    """The tag list a dataset has after a label map: what a model trained on it predicts.

    >>> apply_label_map(iob2_tags(["PER", "DATE"]), {"DATE": "O"})
    ('O', 'B-PER', 'I-PER')
    """
    return iob2_tags(entity_types(map_tags(labels, label_map)))


def shared_labels(a: Sequence[str], b: Sequence[str]) -> tuple[str, ...]:
    """The IOB2 tags of the entity types two label sets have in common (in ``a``'s order).

    >>> shared_labels(iob2_tags(["PER", "ORG", "DATE"]), iob2_tags(["ORG", "PER"]))
    ('O', 'B-PER', 'I-PER', 'B-ORG', 'I-ORG')
    """
    other = set(entity_types(b))
    return iob2_tags(t for t in entity_types(a) if t in other)


def label_map_between(source: Sequence[str], target: Sequence[str]) -> dict[str, str]:
    """The label map that brings ``source`` data into ``target``'s label set: unknown types -> O.

    >>> label_map_between(iob2_tags(["PER", "DATE"]), iob2_tags(["PER", "LOC"]))
    {'DATE': 'O'}
    """
    keep = set(entity_types(target))
    return {t: OUTSIDE for t in entity_types(source) if t not in keep}


def describe_label_map(label_map: Mapping[str, str]) -> str:
    """One line stating what a label map does, for reports and evaluation output.

    >>> describe_label_map({"DATE": "O", "GPE": "LOC"})
    'B-/I-DATE -> O; B-/I-GPE -> B-/I-LOC'
    >>> describe_label_map({})
    'none (tags used as the dataset declares them)'
    """
    if not label_map:
        return "none (tags used as the dataset declares them)"
    return "; ".join(
        f"B-/I-{source} -> {OUTSIDE if target == OUTSIDE else 'B-/I-' + target}"
        for source, target in sorted(label_map.items())
    )
