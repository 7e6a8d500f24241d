"""The edit log of a perturbation: what it replaced, replayable and countable.

A perturbed test set is written with ``<file>.edits.jsonl`` beside it (one :class:`Edit` per
line, with the index of its sentence; :func:`xner.perturb.perturb_file` writes it). The data
layer reads that log back -- ``xner data stats`` says what a perturbation changed from the
output and its log alone (:func:`edit_summary`) -- so the record lives here, below both the
data statistics and the perturbations that make it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from xner.data.corpus import Sentence, entity_spans
from xner.errors import XnerError

__all__ = ["Edit", "apply_edits", "edit_counts", "edit_summary", "replay"]


@dataclass(frozen=True, slots=True)
class Edit:
    """One replacement made by a perturbation step.

    Edits are sequential patches: ``start`` indexes the sentence with all earlier edits
    of the list applied, so for a single (non-``+``) kind it is the position of
    ``new_tokens`` in the output. ``old_*`` were replaced by ``new_*`` (lengths may
    differ when a mention is swapped for a longer or shorter one).
    """

    kind: str
    start: int
    old_tokens: tuple[str, ...]
    new_tokens: tuple[str, ...]
    old_tags: tuple[str, ...]
    new_tags: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types (tuples as lists), one line of an ``*.edits.jsonl`` file."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> "Edit":
        """Inverse of :meth:`to_json`; other keys of the record (``sentence``) are ignored."""
        sequences = (tuple(record[k]) for k in ("old_tokens", "new_tokens", "old_tags", "new_tags"))
        return cls(record["kind"], record["start"], *sequences)


def replay(sentence: Sentence, edits: Iterable[Edit]) -> tuple[Sentence, list[bool]]:
    """Apply edits in order; also mark which output tokens some edit wrote."""
    tokens, tags = list(sentence.tokens), list(sentence.tags or ())
    touched = [False] * len(tokens)
    for e in edits:
        end = e.start + len(e.old_tokens)
        if tuple(tokens[e.start : end]) != e.old_tokens or tuple(tags[e.start : end]) != e.old_tags:
            raise XnerError(f"edit at token {e.start} does not match the sentence: {e.to_json()}")
        tokens[e.start : end] = e.new_tokens
        tags[e.start : end] = e.new_tags
        touched[e.start : end] = [True] * len(e.new_tokens)
    return Sentence(tuple(tokens), tuple(tags), sentence.lang), touched


def edit_counts(edited: Sentence, touched: Sequence[bool]) -> Counter:
    """Tokens some edit wrote, mentions containing one, and whether the sentence changed."""
    return Counter(
        sentences_edited=int(any(touched)),
        tokens_edited=sum(touched),
        entities_edited=sum(any(touched[a:b]) for _, a, b in entity_spans(edited.tags)),
    )


def edit_summary(edited: Sequence[Sentence], edits_path: str | Path) -> dict[str, int]:
    """What a perturbation changed, from its output and its ``*.edits.jsonl`` alone.

    Args:
        edited: the perturbed sentences, in file order.
        edits_path: the edit records :func:`perturb_file` wrote beside them.
    """
    by_sentence: dict[int, list[Edit]] = {}
    with open(edits_path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                record = json.loads(line)
                by_sentence.setdefault(int(record["sentence"]), []).append(Edit.from_json(record))
            except (ValueError, KeyError, TypeError) as err:
                raise XnerError(f"{edits_path}:{number}: not an edit record ({err})") from None
    totals: Counter = Counter(sentences_edited=0, tokens_edited=0, entities_edited=0)
    for index, edits in by_sentence.items():
        if index >= len(edited):
            raise XnerError(f"{edits_path}: edit of sentence {index} but the file has {len(edited)} sentences")
        sentence = edited[index]
        length = len(sentence) - sum(len(e.new_tokens) - len(e.old_tokens) for e in edits)
        touched = [False] * length
        for e in edits:
            touched[e.start : e.start + len(e.old_tokens)] = [True] * len(e.new_tokens)
        totals.update(edit_counts(sentence, touched))
    return dict(totals)


def apply_edits(sentence: Sentence, edits: Iterable[Edit]) -> Sentence:
    """Replay edit records on the original sentence; raises if an edit does not fit.

    >>> s = Sentence(("a", "b"), ("O", "O"))
    >>> apply_edits(s, [Edit("x", 1, ("b",), ("c", "d"), ("O",), ("O", "O"))]).tokens
    ('a', 'c', 'd')
    """
    return replay(sentence, edits)[0]
