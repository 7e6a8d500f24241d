"""Read, validate and write the token-per-line NER file formats met in practice.

One sentence is a block of token lines ended by a blank line; each line holds a token and its
IOB2 tag. The formats differ only in the fields of a line, so they are rows of one table
(:data:`FORMATS`) read by one parser:

============  ============================  ==================================================
name          line                          where it is used
============  ============================  ==================================================
conll         ``Obama<TAB>B-PER``           CoNLL-2003 style 2-column files
conll-space   ``Obama B-PER``               MasakhaNER 2.0 (Adelani et al. 2022), CoNLL-2002 es
conll2002     ``Obama NNP B-PER``           CoNLL-2002 Dutch: token, POS, tag
conll2003     ``Obama NNP B-NP B-PER``      CoNLL-2003: token, POS, chunk, tag
indexed       ``0<TAB>Obama<TAB>B-PER``     WikiANN as distributed by Babelscape/wikineural
rahimi        ``en:Obama<TAB>B-PER``        WikiANN splits of Rahimi et al. (2019), XTREME PAN-X
============  ============================  ==================================================

Files may be gzip-compressed (``.gz``); the format is detected from the first sentence unless
forced. The POS and chunk columns of the CoNLL-2002/2003 layouts are read past (written as
``_``), and their ``-DOCSTART-`` lines (document boundaries, each followed by a blank line)
are skipped in any layout. CoNLL-2003's own tags are IOB1: read them with ``repair=True``.
Every defect stops reading with one line naming ``file:line``: a line with the wrong number
of fields, an unknown tag (listing the valid ones), ``I-X`` not continuing an ``X``
chunk, an empty token, an empty sentence, an empty file. With ``repair=True`` the two defects
that have one safe reading are fixed and counted instead: an IOB1 chunk start ``I-X`` becomes
``B-X``, and a line holding a tag but no token is dropped.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "toy.conll"
>>> _ = write_conll([Sentence(("Obama", "spoke"), ("B-PER", "O"), "en")], path)
>>> read_conll(path)[0].tags
('B-PER', 'O')
"""

from __future__ import annotations

import gc
import gzip
import re
from collections.abc import Callable, Iterable, Iterator, Sequence, Set
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from xner.data.corpus import Sentence
from xner.data.labels import OUTSIDE, REPAIR_HINT, check_tag
from xner.errors import XnerError, one_of
from xner.io import atomic_write

__all__ = [
    "DOCSTART",
    "FORMATS",
    "LineFormat",
    "ReadReport",
    "SentenceBuilder",
    "detect_format",
    "parse_conll",
    "read_conll",
    "read_text",
    "write_conll",
]


@dataclass(frozen=True, slots=True)
class LineFormat:
    """The layout of one token line.

    Attributes:
        name: the format's name (``format=`` argument).
        sep: the field separator.
        indexed: a first field holds the token's position in its sentence (written 0-based).
        lang_prefix: the token field is ``lang:token`` (Rahimi et al. 2019).
        example: one line of the format.
        between: columns between token and tag that xner reads past (CoNLL-2003: POS, chunk).
    """

    name: str
    sep: str
    indexed: bool
    lang_prefix: bool
    example: str
    between: tuple[str, ...] = ()

    @property
    def fields(self) -> tuple[str, ...]:
        """Field names of a line, e.g. ``("index", "token", "tag")``."""
        token = "lang:token" if self.lang_prefix else "token"
        return ("index",) * self.indexed + (token, *self.between, "tag")

    @property
    def token_field(self) -> int:
        """Position of the token among a line's fields."""
        return int(self.indexed)


FORMATS: dict[str, LineFormat] = {
    fmt.name: fmt
    for fmt in (
        LineFormat("conll", "\t", indexed=False, lang_prefix=False, example="Obama\tB-PER"),
        LineFormat("conll-space", " ", indexed=False, lang_prefix=False, example="Obama B-PER"),
        LineFormat("conll2002", " ", indexed=False, lang_prefix=False, example="Obama NNP B-PER", between=("pos",)),
        LineFormat("conll2003", " ", indexed=False, lang_prefix=False, example="Obama NNP B-NP B-PER",
                   between=("pos", "chunk")),
        LineFormat("indexed", "\t", indexed=True, lang_prefix=False, example="0\tObama\tB-PER"),
        LineFormat("rahimi", "\t", indexed=False, lang_prefix=True, example="en:Obama\tB-PER"),
    )
}
"""Every supported line format by name."""

_SEP_NAMES = {"\t": "a tab", " ": "a space"}
DOCSTART = "-DOCSTART-"
"""How CoNLL-2002/2003 files mark a document boundary (a line of its own, then a blank line)."""
MAX_TOKEN_CHARS = 1000
"""A longer token is no word (a lost sentence boundary, a pasted document or binary data)."""
_QUOTE_CHARS = 80


def quote(text: str, limit: int = _QUOTE_CHARS) -> str:
    """``repr`` of a line or token for an error message, cut to ``limit`` characters.

    >>> quote("x" * 100, 5)
    "'xxxxx'... (100 characters)"
    """
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text):,} characters)"

_LANG_PREFIX = re.compile(r"[a-z]+(?:-[a-z]+)*:.")  # Wikipedia codes: en, sco, zh-min-nan


@dataclass(frozen=True, slots=True)
class ReadReport:
    """What reading one source produced.

    Attributes:
        source: the file path or dataset id read.
        format: the line format used (a :data:`FORMATS` name, or ``"hf"`` for a HF dataset).
        sentences: the sentences, in file order.
        repairs: how many defects ``repair=True`` fixed (0 when reading strictly).
    """

    source: str
    format: str
    sentences: list[Sentence]
    repairs: int = 0


def _read_lines(path: Path) -> list[str]:
    """The lines of a text file, trailing blank lines dropped; one-line errors for bad files."""
    try:
        data = path.read_bytes()
        text = (gzip.decompress(data) if path.suffix == ".gz" else data).decode("utf-8-sig")
    except FileNotFoundError:
        raise XnerError(f"{path}: no such file") from None
    except UnicodeDecodeError as err:
        line = err.object[: err.start].count(b"\n") + 1
        raise XnerError(f"{path}:{line}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except IsADirectoryError:
        raise XnerError(f"{path}: is a folder, not a file") from None
    except (OSError, EOFError) as err:  # unreadable or a corrupt .gz
        raise XnerError(f"{path}: cannot read: {err}") from None
    text = text.rstrip()
    if not text:
        raise XnerError(f"{path}:1: empty file (no sentences)")
    return text.split("\n")


def detect_format(lines: Sequence[str], source: str = "<lines>") -> str:
    """Name the line format of a file from its first line (Rahimi: its first sentence).

    Args:
        lines: the file's lines.
        source: the file name, for the error message.

    Returns:
        A :data:`FORMATS` name.

    Raises:
        XnerError: the first line fits no format.

    >>> detect_format(["0\\tObama\\tB-PER"]), detect_format(["Obama B-PER"])
    ('indexed', 'conll-space')
    """
    start = next(i for i, line in enumerate(lines) if line.strip())
    sentence = [line.rstrip() for line in lines[start:]]
    sentence = sentence[: sentence.index("")] if "" in sentence else sentence
    first, tabs = sentence[0], sentence[0].count("\t")
    if tabs == 2 and first.split("\t", 1)[0].isdigit():
        return "indexed"
    if tabs == 1:
        return "rahimi" if all(_LANG_PREFIX.match(line) for line in sentence) else "conll"
    if tabs == 0 and " " in first.strip():
        return {2: "conll-space", 3: "conll2002", 4: "conll2003"}.get(len(first.strip().split(" ")), "conll-space")
    valid = "; ".join(f"{fmt.name} ({fmt.example!r})" for fmt in FORMATS.values())
    raise XnerError(
        f"{source}:{start + 1}: cannot tell the line format from {quote(first)}; "
        f"expected one of: {valid}"
    )


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: building 10^5 small lists triggers it for nothing."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _get_format(name: str) -> LineFormat:
    if name not in FORMATS:
        raise one_of("format", name, FORMATS)
    return FORMATS[name]


def _split_line(line: str, fmt: LineFormat) -> tuple[str | None, str, str, str | None]:
    """Fields of one non-blank line as ``(index, token, tag, lang)``; ``token == ""`` if missing."""
    parts = line.split(fmt.sep)
    width = len(fmt.fields)
    if len(parts) != width:
        if len(parts) > 1 and not "".join(parts[:-1]).strip():
            return None, "", parts[-1], None  # only separators before the tag
        raise XnerError(
            f"expected {width} fields ({', '.join(fmt.fields)}) separated by "
            f"{_SEP_NAMES[fmt.sep]}, got {len(parts)}: {quote(line)}"
        )
    index = parts[0] if fmt.indexed else None
    token, tag = parts[fmt.token_field], parts[-1]
    lang = None
    if fmt.lang_prefix:
        lang, colon, token = token.partition(":")
        if not colon or not lang:
            raise XnerError(f"expected lang:token, got {quote(parts[fmt.token_field])}")
    return index, token, tag, lang


class SentenceBuilder:
    """Collects the tokens of one sentence, checking each as it comes: the one place where
    tag validity, IOB2 transitions, empty tokens and their repairs are decided.

    ``add`` raises :class:`XnerError` without a location (the caller knows the file and line,
    or dataset row); ``take`` returns the finished sentence and starts the next one;
    ``repairs`` counts the fixes made so far.
    """

    def __init__(self, valid: Set[str] | None, repair: bool) -> None:
        self.valid, self.repair = valid, repair
        self.tokens: list[str] = []
        self.tags: list[str] = []
        self.lang: str | None = None
        self.index: int | None = None
        self.repairs = 0

    def add(self, index: str | None, token: str, tag: str, lang: str | None) -> None:
        if index is not None:
            self._check_index(index)
        if lang is not None:
            if self.lang is not None and lang != self.lang:
                raise XnerError(f"language prefix {lang!r} differs from {self.lang!r} before it")
            self.lang = lang
        prev = self.tags[-1] if self.tags else OUTSIDE
        fixed = check_tag(prev, tag, self.valid, self.repair)
        if "\0" in token:
            raise XnerError(f"token {quote(token)} contains a NUL byte (binary data?)")
        if len(token) > MAX_TOKEN_CHARS:
            raise XnerError(f"token {quote(token, 20)} is longer than {MAX_TOKEN_CHARS:,} characters: no word "
                            "(a missing line break?)")
        if not token.strip():
            if not self.repair:
                raise XnerError(f"empty token before the tag; {REPAIR_HINT} drops it")
            self.repairs += 1
            return
        self.repairs += fixed != tag
        self.tokens.append(token)
        self.tags.append(fixed)

    def _check_index(self, index: str) -> None:
        if not index.isdigit():
            raise XnerError(f"index {index!r} is not a number")
        if self.index is not None and int(index) != self.index + 1:
            raise XnerError(
                f"index {index} does not follow {self.index} (missing blank line between sentences?)"
            )
        self.index = int(index)

    def take(self, lang: str | None) -> Sentence:
        sentence = Sentence(tuple(self.tokens), tuple(self.tags), self.lang or lang)
        self.tokens, self.tags, self.lang, self.index = [], [], None, None
        return sentence


def _fast_parse(
    lines: list[str], fmt: LineFormat, valid: Set[str] | None, lang: str | None
) -> list[Sentence] | None:
    """Parse a clean file with whole-file checks; ``None`` if any check fails.

    Real files are clean, and checking them line by line in Python dominates reading time.
    This path checks field counts, blank lines, tags and tag transitions in bulk (each distinct
    tag and tag pair is judged once by :func:`check_tag`) and builds sentences by slicing. On
    any doubt it gives up, and :class:`SentenceBuilder` reads the file line by line, naming the
    defect or repairing it; tests check that both paths agree.
    """
    if max(map(len, lines), default=0) > MAX_TOKEN_CHARS or "\0" in "".join(lines):
        return None  # a token too long or with a NUL byte: the line-by-line reader names it
    width = len(fmt.fields)
    rows = [line.rstrip().split(fmt.sep) for line in lines]
    blank = [i for i, row in enumerate(rows) if len(row) != width]
    if any(rows[i] != [""] for i in blank) or (blank and blank[0] == 0):
        return None
    if any(b - a == 1 for a, b in zip(blank, blank[1:])):
        return None
    tags = [row[-1] for row in rows]  # blank rows give "": a sentence boundary
    for prev, tag in set(zip(["", *tags], tags)):
        if tag and not _clean_transition(prev or OUTSIDE, tag, valid):
            return None
    sentences = []
    for start, end in zip([0, *(i + 1 for i in blank)], [*blank, len(rows)]):
        sentence = _fast_sentence(list(zip(*rows[start:end])), fmt, lang)
        if sentence is None:
            return None
        sentences.append(sentence)
    return sentences


def _clean_transition(prev: str, tag: str, valid: Set[str] | None) -> bool:
    try:
        return check_tag(prev, tag, valid, repair=False) == tag
    except XnerError:
        return False


def _fast_sentence(
    columns: list[tuple[str, ...]], fmt: LineFormat, lang: str | None
) -> Sentence | None:
    """One clean sentence from its columns, or ``None`` when a field needs a closer look."""
    tokens, tags = columns[fmt.token_field], columns[-1]
    if fmt.indexed:
        first = columns[0][0]
        if not first.isdigit() or columns[0] != tuple(
            map(str, range(int(first), int(first) + len(tokens)))
        ):
            return None
    if fmt.lang_prefix:
        lang, colon, _ = tokens[0].partition(":")
        prefix = lang + colon
        if not (lang and colon and all(t.startswith(prefix) for t in tokens)):
            return None
        tokens = tuple(t[len(prefix) :] for t in tokens)
    if not all(map(str.strip, tokens)):
        return None
    return Sentence(tokens, tags, lang)


def _without_docstarts(lines: list[str]) -> tuple[list[str], list[int]]:
    """The lines without CoNLL ``-DOCSTART-`` lines and the blank line after each, with the
    (1-based) number each kept line has in the file, for error messages."""
    if not any(line.startswith(DOCSTART) for line in lines):
        return lines, list(range(1, len(lines) + 1))
    kept, numbers = [], []
    after_docstart = False
    for number, line in enumerate(lines, 1):
        if line.startswith(DOCSTART) or (after_docstart and not line.strip()):
            after_docstart = line.startswith(DOCSTART)
            continue
        after_docstart = False
        kept.append(line)
        numbers.append(number)
    return kept, numbers


def parse_conll(
    path: str | Path,
    *,
    format: str = "auto",
    labels: Iterable[str] | None = None,
    repair: bool = False,
    lang: str | None = None,
) -> ReadReport:
    """Read and validate one token-per-line file, reporting its format and repairs.

    Args:
        path: the file (``.gz`` is decompressed).
        format: a :data:`FORMATS` name, or ``"auto"`` to detect it from the first sentence.
        labels: the allowed tags (e.g. ``dataset_labels("wikiann")``); ``None`` accepts any
            well-formed ``O``/``B-X``/``I-X`` tag.
        repair: fix IOB1 chunk starts and drop token-less lines instead of failing.
        lang: language of the sentences when the format carries none (all but ``rahimi``).

    Returns:
        A :class:`ReadReport`.

    Raises:
        XnerError: the first defect, as ``file:line: what is wrong``.
    """
    path = Path(path)
    lines, numbers = _without_docstarts(_read_lines(path))
    if not lines:
        raise XnerError(f"{path}:1: no sentences (only -DOCSTART- lines)")
    fmt = _get_format(detect_format(lines, str(path)) if format == "auto" else format)
    valid = frozenset(labels) if labels is not None else None
    with _gc_paused():
        sentences = _fast_parse(lines, fmt, valid, lang)
    if sentences is not None:
        return ReadReport(str(path), fmt.name, sentences)
    builder = SentenceBuilder(valid, repair)
    sentences = []
    for lineno, raw in zip(numbers, lines):
        line = raw.rstrip()
        try:
            if line:
                builder.add(*_split_line(line, fmt))
            elif builder.tokens:
                sentences.append(builder.take(lang))
            else:
                raise XnerError(
                    "empty sentence (a blank line at the start or after another blank line)"
                )
        except XnerError as err:
            raise XnerError(f"{path}:{lineno}: {err}") from None
    if builder.tokens:
        sentences.append(builder.take(lang))
    if not sentences:
        raise XnerError(f"{path}:1: no sentences (every line was dropped by repair)")
    return ReadReport(str(path), fmt.name, sentences, builder.repairs)


def read_conll(
    path: str | Path,
    *,
    format: str = "auto",
    labels: Iterable[str] | None = None,
    repair: bool = False,
    lang: str | None = None,
) -> list[Sentence]:
    """Read and validate one token-per-line file (see :func:`parse_conll` for the arguments).

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "toy.txt"
    >>> _ = path.write_text("Obama B-PER\\nspoke O\\n")
    >>> read_conll(path, lang="en")
    [Sentence(tokens=('Obama', 'spoke'), tags=('B-PER', 'O'), lang='en')]
    """
    return parse_conll(path, format=format, labels=labels, repair=repair, lang=lang).sentences


def _format_line(fmt: LineFormat, index: int, token: str, tag: str, lang: str | None) -> str:
    if not token.strip() or fmt.sep in token or "\n" in token:
        raise XnerError(f"token {token!r} cannot be written in format {fmt.name!r}")
    fields = [f"{lang}:{token}" if fmt.lang_prefix else token, *("_" for _ in fmt.between), tag]
    return fmt.sep.join([str(index), *fields] if fmt.indexed else fields)


def write_conll(sentences: Iterable[Sentence], path: str | Path, format: str = "conll") -> Path:
    """Write labelled sentences in one of :data:`FORMATS` (gzip for ``.gz``).

    Reading the written file gives the same sentences back, and a file read and written in its
    own format comes out byte-identical (a 0-based ``indexed`` file, every sentence followed by
    one blank line).

    Args:
        sentences: labelled sentences (``rahimi`` also needs their ``lang``).
        path: the file to write; parent folders are created.
        format: a :data:`FORMATS` name.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        XnerError: an unlabeled or empty sentence, a missing language for ``rahimi``, or a
            token the format cannot hold (e.g. a space in ``conll-space``).
    """
    fmt, path = _get_format(format), Path(path)
    blocks = []
    for number, sentence in enumerate(sentences, 1):
        if sentence.tags is None or not sentence.tokens:
            raise XnerError(f"sentence {number} is unlabeled or empty; only labelled ones are written")
        if fmt.lang_prefix and not sentence.lang:
            raise XnerError(f"sentence {number} has no language, which format 'rahimi' needs")
        try:
            blocks.extend(
                _format_line(fmt, i, token, tag, sentence.lang)
                for i, (token, tag) in enumerate(zip(sentence.tokens, sentence.tags))
            )
        except XnerError as err:
            raise XnerError(f"sentence {number}: {err}") from None
        blocks.append("")
    data = ("\n".join(blocks) + "\n").encode("utf-8")
    return atomic_write(path, gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)


def read_text(
    path: str | Path,
    lang: str | None = None,
    tokenize: Callable[[str], Sequence[str]] | None = None,
) -> list[Sentence]:
    """Read raw text, one sentence a line, as unlabeled sentences (blank lines are skipped).

    Args:
        path: a UTF-8 text file (``.gz`` is decompressed).
        lang: the language the sentences carry.
        tokenize: splits a line into tokens; default: on whitespace.

    Returns:
        Unlabeled sentences (``tags is None``), in file order.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "raw.txt"
    >>> _ = path.write_text("Habari ya leo\\n\\nAsante\\n")
    >>> [s.tokens for s in read_text(path, "sw")]
    [('Habari', 'ya', 'leo'), ('Asante',)]
    """
    split = tokenize or str.split
    tokenized = (tuple(t for t in split(line) if t.strip()) for line in _read_lines(Path(path)))
    return [Sentence(tokens, None, lang) for tokens in tokenized if tokens]
