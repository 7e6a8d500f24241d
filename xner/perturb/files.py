"""Perturb a file or a dataset split and write the result with its edit log."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from xner.errors import XnerError
from xner.io import atomic_write
from xner.perturb.kinds import perturb_corpus
from xner.perturb.resources import build_resources

__all__ = ["perturb_file"]


_SPLIT_REF = re.compile(r"^(?P<lang>[A-Za-z][A-Za-z-]*):(?P<split>train|dev|test)$")
"""``LANG:SPLIT`` input references, e.g. ``de:test``."""


def _read_input(source: str, lang: str | None, dataset: str, data_dir: str | Path | None):
    """A file (any :mod:`xner.data.formats` format) or a ``LANG:SPLIT`` of ``dataset``."""
    from xner.data import read_split
    from xner.data.formats import parse_conll

    if Path(source).is_file():
        return parse_conll(source, lang=lang)
    if match := _SPLIT_REF.match(source):
        return read_split(match["lang"], match["split"], dataset=dataset, data_dir=data_dir)
    raise XnerError(f"{source}: no such file, and not LANG:SPLIT (e.g. de:test)")


def perturb_file(
    source: str,
    out: str | Path,
    kind: str,
    rate: float = 1.0,
    seed: int = 0,
    *,
    lang: str | None = None,
    dataset: str = "wikiann",
    data_dir: str | Path | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Perturb a file or split and write the result plus its edit records.

    Writes ``out`` in the input's line format and ``<out>.edits.jsonl`` (one edit per line,
    with the index of its sentence).

    Args:
        source: a token-per-line file or ``LANG:SPLIT`` of ``dataset`` (e.g. ``de:test``).
        out: the file to write.
        kind, rate, seed: as :func:`perturb_corpus`.
        lang: the input's language when the file does not say (needed for its resources).
        dataset, data_dir: where ``LANG:SPLIT`` and the training splits are read from.
        options: the other keywords of :func:`build_resources` (``train_lang``,
            ``names_from``, ``train_dataset``, ``names_dataset``, ``model``, ...).

    Returns:
        The :func:`perturb_corpus` summary plus ``input``, ``output`` and ``edits`` paths.
    """
    from xner.data import FORMATS, write_conll

    report = _read_input(source, lang, dataset, data_dir)
    target = lang or report.sentences[0].lang
    if not target:
        raise XnerError(f"{source}: the file does not say its language; pass --lang")
    resources = build_resources(target, dataset=dataset, data_dir=data_dir, **options)
    sentences, edits, summary = perturb_corpus(report.sentences, kind, rate, seed, resources)
    records = [json.dumps({"sentence": index, **edit.to_json()}, ensure_ascii=False) + "\n"
               for index, sentence_edits in enumerate(edits) for edit in sentence_edits]
    edits_path = Path(out).with_name(Path(out).name + ".edits.jsonl")
    atomic_write(edits_path, "".join(records))
    try:
        out = write_conll(sentences, out, format=report.format if report.format in FORMATS else "conll")
    except XnerError:
        edits_path.unlink()  # both files or neither
        raise
    return {**summary, "input": source, "output": str(out), "edits": str(edits_path)}
