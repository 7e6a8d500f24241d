"""Checks of a study's data and models before its first run, all problems in one message.

A missing data folder, a language the data root lacks or a model name that does not resolve
would otherwise surface run by run, minutes into the study (a hub id that is not cached
costs each train run 25-30 s of retries offline). :func:`preflight` finds them all at once
from the planned runs: the split files each of xner's run kinds reads, and every model name.

>>> preflight(load_study("configs/quick.yaml"), specs)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from xner.data.datasets import find_split
from xner.data.news import find_document_split
from xner.errors import XnerError
from xner.models.backbone import ALIASES, BUILTIN_NAMES, load_backbone
from xner.study.runs import RunSpec
from xner.study.spec import Study

__all__ = ["preflight"]


def preflight(study: Study, specs: Sequence[RunSpec]) -> None:
    """Check that every split the runs read exists (with a local data root) and every model they
    name resolves (variants included: both are read off the runs).

    Raises:
        XnerError: one line listing every problem found.
    """
    problems: list[str] = []
    if study.data_dir is not None and not Path(study.data_dir).is_dir():
        problems.append(f"data_dir {study.data_dir}: no such folder")
    else:
        problems += _data_problems(_splits(specs), study.data_dir)
    models = dict.fromkeys(spec.params["model"] for spec in specs if isinstance(spec.params.get("model"), str))
    problems += [problem for model in models if (problem := _model_problem(model))]
    if problems:
        raise XnerError(f"{len(problems)} problem(s) found before the first run: {'; '.join(problems)}")


def _splits(specs: Iterable[RunSpec]) -> Iterator[tuple[str, str, str, bool]]:
    """``(dataset, language, split, documents)`` of every split xner's run kinds read
    (``documents``: a document task's split, found as :mod:`xner.data.news` finds it)."""
    for spec in specs:
        p = spec.params
        documents = "task" in p
        if spec.kind == "train":
            yield from ((p["dataset"], p["lang"], split, documents) for split in ("train", "dev"))
        elif spec.kind == "evaluate":
            yield p["dataset"], p["target"], p["split"], documents
        elif spec.kind == "distill" and p.get("volume"):
            yield p["dataset"], p["target"], "train", documents  # the unlabeled pool


def _data_problems(splits: Iterable[tuple[str, str, str, bool]], data_dir: Path | None) -> list[str]:
    problems: dict[str, None] = {}  # ordered, each once (a missing folder fails every split)
    for dataset, lang, split, documents in dict.fromkeys(splits):
        try:
            if documents:
                find_document_split(lang, split, dataset, data_dir)
            else:
                find_split(lang, split, dataset, data_dir)  # None: no local root, the hub serves it
        except XnerError as err:
            problems[str(err)] = None
    return list(problems)


def _model_problem(name: str) -> str | None:
    """Why a model name does not resolve, or ``None``; a hub id is looked up in the local
    cache first, and reached for at most once."""
    if name in BUILTIN_NAMES or Path(name).expanduser().is_dir():
        return None
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(ALIASES.get(name, name), "config.json"), str):
        return None
    try:
        load_backbone(name)
    except XnerError as err:
        return str(err)
    return None
