"""Raw text to an unlabeled pool: split, filter, deduplicate, and keep the test sets out.

``xner data sentences`` is a thin layer over :func:`build_pool`. The steps, each counted:

1. read documents (:mod:`xner.data.rawfiles`), split and tokenize them
   (:func:`xner.data.rawtext.sentences_from_text`: NFC, pysbd, UAX #29 words);
2. drop sentences shorter than ``min_tokens`` or longer than ``max_tokens`` tokens
   (fragments such as bylines, and run-ons where splitting failed);
3. drop *leaked* sentences: those that occur in the excluded labelled sentences (the
   target's dev and test splits), exactly after normalisation or as near-duplicates --
   a student must never have seen, even unlabeled, the sentences it is scored on;
4. drop sentences of the labelled sentences the pool will be concatenated with (the
   target's train split, when a study's pool is ``[train, file]``), exactly or nearly:
   the combined pool must not hold a sentence twice;
5. drop exact and near-duplicates within the pool, keeping the first occurrence.

Near-duplicates are 5-gram Jaccard >= a threshold (:class:`xner.data.neardup.NearDuplicates`):
0.5 against the test sets, 0.8 within the pool. ``benchmarks/near_duplicates.py`` measured
why: on MasakhaNEWS xho and sna, news sentences at Jaccard 0.5-0.7 to a MasakhaNER test
sentence are that sentence inside a longer one (a missed split at a closing quote) or with
a number changed; leaking one costs a biased score, dropping a look-alike costs one
unlabeled sentence of thousands. Within the pool, 0.8 removes reprints with a changed word
or quote style, not sentences that merely share a template.
The pool is written one sentence a line, tokens separated by spaces, which
:func:`xner.data.formats.read_text` reads back token for token.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from xner.data.corpus import Sentence
from xner.data.neardup import NearDuplicates
from xner.data.rawfiles import TEXT_FIELDS, read_documents
from xner.data.rawtext import sentences_from_text
from xner.errors import XnerError
from xner.io import atomic_write

__all__ = ["PoolCounts", "build_pool", "check_output", "write_pool"]


@dataclass
class PoolCounts:
    """How many documents and sentences each step saw and removed (in step order)."""

    documents: int = 0
    sentences: int = 0
    too_short: int = 0
    too_long: int = 0
    leaked_exact: int = 0
    leaked_near: int = 0
    overlap_exact: int = 0
    overlap_near: int = 0
    duplicates_exact: int = 0
    duplicates_near: int = 0
    kept: int = 0
    files: list[str] = field(default_factory=list)

    def rows(self) -> list[dict[str, object]]:
        """``{"step", "count"}`` rows in step order, for printing."""
        return [{"step": name, "count": value} for name, value in vars(self).items() if name != "files"]


def build_pool(
    inputs: Sequence[str | Path],
    lang: str,
    *,
    exclude: Iterable[Sentence] = (),
    overlap: Iterable[Sentence] = (),
    min_tokens: int = 3,
    max_tokens: int = 100,
    near_leak: float = 0.5,
    near_dup: float = 0.8,
    text_fields: Sequence[str] = TEXT_FIELDS,
) -> tuple[list[list[str]], PoolCounts]:
    """Tokenized, filtered, deduplicated sentences of raw-text inputs, and their counts.

    Args:
        inputs: files or folders (see :func:`~xner.data.rawfiles.read_documents`).
        lang: the text's language (sentence-splitting rules).
        exclude: labelled sentences the pool must not contain (the target's dev and test).
        overlap: sentences the pool is used together with (the train split): removed as
            duplicates (``near_dup``), counted apart from the pool's own duplicates.
        min_tokens, max_tokens: the length filter, in tokens.
        near_leak: 5-gram Jaccard from which a sentence counts as an excluded one (1.0:
            exact matches only).
        near_dup: 5-gram Jaccard from which two pool sentences are duplicates.
        text_fields: record fields read as text in JSONL and TSV inputs.

    Returns:
        The kept sentences in input order, and the counts of every step.

    Raises:
        XnerError: bad input (naming the file), bad filter values, or nothing left.
    """
    if not 1 <= min_tokens <= max_tokens:
        raise XnerError(f"length filter: need 1 <= min_tokens <= max_tokens, got {min_tokens} and {max_tokens}")
    for name, value in (("near_leak", near_leak), ("near_dup", near_dup)):
        if not 0 < value <= 1:
            raise XnerError(f"{name}: a Jaccard threshold in (0, 1], got {value}")
    counts = PoolCounts(files=[str(path) for path in inputs])
    leaks, known, seen = NearDuplicates(near_leak), NearDuplicates(near_dup), NearDuplicates(near_dup)
    for index, sentences in ((leaks, exclude), (known, overlap)):
        for sentence in sentences:
            index.add(sentence.tokens)
    kept = []
    for path in inputs:
        for _, text in read_documents(path, text_fields):
            counts.documents += 1
            for tokens in sentences_from_text(text, lang):
                counts.sentences += 1
                if step := _removed_by(tokens, (min_tokens, max_tokens), {"leaked": leaks, "overlap": known}, seen):
                    setattr(counts, step, getattr(counts, step) + 1)
                else:
                    kept.append(tokens)
    counts.kept = len(kept)
    if not kept:
        raise XnerError(f"{', '.join(counts.files)}: no sentence left after filtering ({counts.sentences} split)")
    return kept, counts


def _removed_by(
    tokens: list[str], lengths: tuple[int, int], indexes: dict[str, NearDuplicates], seen: NearDuplicates
) -> str | None:
    """The step that removes a sentence (a :class:`PoolCounts` field), or ``None`` to keep it."""
    if len(tokens) < lengths[0]:
        return "too_short"
    if len(tokens) > lengths[1]:
        return "too_long"
    for name, index in indexes.items():
        if index.exact(tokens):
            return f"{name}_exact"
        if index.match(tokens):
            return f"{name}_near"
    if seen.exact(tokens):
        return "duplicates_exact"
    return None if seen.add(tokens) else "duplicates_near"


def check_output(out: str | Path, inputs: Sequence[str | Path]) -> None:
    """Refuse a pool file that is one of the inputs or lies in an input folder: the next run of
    the same command would read the previous pool back as raw text (and the tokenized copies
    of its sentences would pass as duplicates of nothing).

    Raises:
        XnerError: naming the output and the input that holds it.
    """
    target = Path(out).resolve()
    for source in inputs:
        folder = Path(source).resolve()
        if target == folder or folder in target.parents:
            raise XnerError(f"--out {out}: inside the input {source}; a rerun would read the pool back as raw "
                            "text: write it elsewhere")


def write_pool(path: str | Path, sentences: Iterable[Sequence[str]]) -> Path:
    """Write a pool one sentence a line, tokens separated by single spaces (UTF-8), atomically:
    a killed run must not leave a truncated pool that a study would then draw from (its
    content hash would simply name the truncated text)."""
    return atomic_write(path, "".join(" ".join(tokens) + "\n" for tokens in sentences))
