"""Unlabeled pools: the target's train split, raw-text pool files, or both, in a stated order.

A student's volume axis runs over one pool per target. The default pool is the target's
labelled train split with the labels dropped (Wu et al. 2020); a pool file written by
``xner data sentences`` (one tokenized sentence a line) extends it past the labelled data.
Sources are concatenated in the order given -- ``["train", "news.txt"]`` is the train split
then the file -- and a volume takes them in that order (:func:`draw`): every sentence of a
source before any of the next, each source in its own seeded permutation. So a volume within
the first source draws what a study on that source alone draws (:func:`xner.data.sampling.nested_subset`),
and a larger one is that source's whole sample plus the start of the next: a raw-text pool
after the train split continues the train split's volume curve, point for point.

A pool is identified by the content hash of its sentences (:func:`pool_digest`): runs
record it, and a study hashes each file's digest into its run ids, so that editing a pool
file makes new runs instead of silently reusing old ones.

>>> from xner.data.corpus import Sentence
>>> pool = read_pool(["train"], "sw", train=lambda: [Sentence(("Nairobi",), ("B-LOC",), "sw")])
>>> pool[0].tags is None, len(pool_digest(pool))
(True, 16)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from xner.data.corpus import Sentence
from xner.data.formats import read_text
from xner.data.sampling import nested_subset
from xner.errors import XnerError

__all__ = ["TRAIN", "check_sources", "draw", "file_pool", "name_sources", "pool_digest", "read_pool", "read_pool_parts"]

TRAIN = "train"
"""The source name of the target's train split (labels dropped)."""


def pool_digest(sentences: Sequence[Sentence]) -> str:
    """First 16 hex digits of the sha256 of the sentences' tokens (one sentence a line)."""
    digest = hashlib.sha256()
    for sentence in sentences:
        digest.update(" ".join(sentence.tokens).encode("utf-8") + b"\n")
    return digest.hexdigest()[:16]


def check_sources(sources: Sequence[str]) -> list[str]:
    """The sources of one pool, each ``train`` or a file name, none twice.

    Raises:
        XnerError: an empty list or a repeated source.
    """
    if not sources:
        raise XnerError(f"a pool needs at least one source ({TRAIN!r} or a pool file)")
    repeated = sorted({s for s in sources if list(sources).count(s) > 1})
    if repeated:
        raise XnerError(f"pool source(s) listed twice: {', '.join(repeated)}")
    return list(sources)


def name_sources(
    sources: Sequence[str | Path], digest: Callable[[str], str] | None = None
) -> tuple[list[str], dict[str, str]]:
    """A pool as a run's params name it -- :data:`TRAIN`, and each file by its content digest,
    so that moving a file keeps run ids and editing it does not -- and the files by digest.

    Args:
        sources: :data:`TRAIN` and/or pool file paths, in order.
        digest: a file's digest (default: read it with :func:`file_pool`; a study caches it).
    """
    digest = digest or (lambda path: file_pool(path)[1])
    names, files = [], {}
    for source in check_sources([str(s) for s in sources]):
        names.append(source if source == TRAIN else digest(source))
        if source != TRAIN:
            files[names[-1]] = source
    return names, files


def file_pool(path: str | Path, lang: str | None = None) -> tuple[list[Sentence], str]:
    """A pool file's sentences (:func:`~xner.data.formats.read_text`) and their digest."""
    sentences = read_text(path, lang)
    return sentences, pool_digest(sentences)


def read_pool(
    sources: Sequence[str | Path],
    lang: str | None,
    train: Callable[[], Sequence[Sentence]],
    files: Mapping[str, str] | None = None,
) -> list[Sentence]:
    """The concatenated, unlabeled sentences of a pool's sources, in order (see
    :func:`read_pool_parts`, which this flattens: what a pool's size and digest are taken of)."""
    return [sentence for part in read_pool_parts(sources, lang, train, files) for sentence in part]


def read_pool_parts(
    sources: Sequence[str | Path],
    lang: str | None,
    train: Callable[[], Sequence[Sentence]],
    files: Mapping[str, str] | None = None,
) -> list[list[Sentence]]:
    """The unlabeled sentences of each of a pool's sources, in order.

    Args:
        sources: :data:`TRAIN`, pool file paths, or digests that ``files`` maps to paths
            (a study's run names its files by digest; the file must still have it).
        lang: the language file sentences carry.
        train: loads the target's train split (called only if :data:`TRAIN` is a source).
        files: paths by digest.

    Returns:
        One list of unlabeled sentences per source.

    Raises:
        XnerError: an unreadable pool file, or one whose content changed since its digest
            was taken.
    """
    files = files or {}
    parts = []
    for source in check_sources([str(s) for s in sources]):
        if source == TRAIN:
            parts.append([s.unlabeled() for s in train()])
            continue
        sentences, digest = file_pool(files.get(source, source), lang)
        if source in files and digest != source:
            raise XnerError(f"{files[source]}: pool file changed since the study was planned "
                            f"(digest {digest}, planned {source}); run the study again to plan its new runs")
        parts.append([s.unlabeled() for s in sentences])
    return parts


def draw(parts: Sequence[Sequence[Sentence]], size: int, seed: int, lang: str | None = None) -> list[Sentence]:
    """``size`` sentences of a pool's sources taken in order: all of a source (in its seeded
    permutation, :func:`~xner.data.sampling.nested_subset`) before any of the next.

    Nested across sizes for one seed, and equal to ``nested_subset(parts[0], size, seed)``
    while ``size`` fits in the first source.

    >>> from xner.data.corpus import Sentence
    >>> parts = [[Sentence((w,)) for w in "abc"], [Sentence((w,)) for w in "xyz"]]
    >>> sorted(s.tokens[0] for s in draw(parts, 4, seed=0))[:3]
    ['a', 'b', 'c']

    Raises:
        XnerError: ``size`` exceeds the pool's sentences (of language ``lang``, the message says).
    """
    available = sum(len(part) for part in parts)
    if size > available:
        raise XnerError(f"volume {size} > {available} unlabeled {f'{lang} ' if lang else ''}sentences available")
    drawn: list[Sentence] = []
    for part in parts:
        take = min(size - len(drawn), len(part))
        if take <= 0:
            break
        drawn += nested_subset(part, take, seed)
    return drawn
