"""Tag files with a trained model: CoNLL or raw text in, CoNLL, JSON lines or entity spans out.

The input is read and tagged in chunks of sentences, so a file of any size streams through in
constant memory, and written in input order with the input's own tokens. Raw text is cut into
sentences and words by :func:`xner.data.rawtext.sentences_from_text`, exactly as unlabeled
pools are, so a model meets raw text the way it met its training pools. Tags are IOB2 over the
model's own label set (argmax, repaired to valid IOB2: :func:`xner.decoding.decode`'s default).

Example:
    >>> predict_file("models/de", ["news.txt"], "news.conll", lang="de")  # doctest: +SKIP
    {'sentences': 1204, 'tokens': 25311, 'entities': 1873, 'precision': 'bf16', ...}
"""

from __future__ import annotations

import gzip
import json
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from xner.data.corpus import Sentence, entity_spans
from xner.data.formats import DOCSTART, FORMATS, detect_format
from xner.data.rawfiles import content_suffix
from xner.decoding import decode
from xner.errors import XnerError, one_of
from xner.io import atomic_file

__all__ = ["INPUT_FORMATS", "OUTPUT_FORMATS", "Tagged", "predict_file", "read_input"]

_CONLL_SUFFIXES = (".conll", ".conllu", ".conll02", ".conll03", ".iob", ".iob2", ".bio")
INPUT_FORMATS = ("auto", "conll", "text")
"""``conll``: a token per line (any :data:`xner.data.FORMATS` layout, or the token alone), blank
lines between sentences, tags ignored; ``text``: raw text, a paragraph per line; ``auto``: CoNLL
when the first lines look like token lines (a token, or a token and a tag)."""

OUTPUT_FORMATS = ("conll", "jsonl", "spans")
"""``conll``: ``token<TAB>tag[<TAB>probability]``, a blank line after each sentence; ``jsonl``:
one object per sentence with ``tokens`` and ``tags``; ``spans``: one object per sentence with
``tokens`` and its entities as ``spans`` (token offsets, end exclusive)."""

_CHUNK = 4096  # sentences tagged together: enough for length bucketing, small enough to stream
_SNIFF_LINES = 20


@dataclass(frozen=True)
class Tagged:
    """One tagged sentence and where it came from.

    Attributes:
        source: the input file.
        line: the line the sentence starts on (1-based).
        tokens: the input's tokens.
        tags: IOB2 tags, one per token.
        scores: the probability of each token's tag (``None`` unless asked for).
    """

    source: str
    line: int
    tokens: tuple[str, ...]
    tags: list[str]
    scores: np.ndarray | None = None

    def render(self, fmt: str) -> str:
        """The sentence in an output format (a CoNLL block or one JSON line), newline-terminated."""
        scores = None if self.scores is None else [round(float(p), 4) for p in self.scores]
        if fmt == "conll":
            columns = [self.tokens, self.tags] + ([[f"{p:.4f}" for p in scores]] if scores else [])
            return "".join("\t".join(row) + "\n" for row in zip(*columns)) + "\n"
        record: dict = {"source": self.source, "line": self.line, "tokens": list(self.tokens)}
        if fmt == "jsonl":
            record["tags"] = self.tags
            if scores:
                record["probabilities"] = scores
        else:
            record["spans"] = [self._span(etype, start, end, scores) for etype, start, end in entity_spans(self.tags)]
        return json.dumps(record, ensure_ascii=False) + "\n"

    def _span(self, etype: str, start: int, end: int, scores: list[float] | None) -> dict:
        span = {"type": etype, "start": start, "end": end, "text": " ".join(self.tokens[start:end])}
        if scores:
            span["probability"] = round(float(np.mean(scores[start:end])), 4)  # mean over its tokens
        return span


def predict_file(
    model,
    inputs: Sequence[str | Path],
    out: str | Path | None = None,
    *,
    format: str = "conll",
    input_format: str = "auto",
    lang: str | None = None,
    precision: str = "auto",
    probabilities: bool = False,
    max_length: int = 256,
    progress: bool = False,
    chunk_size: int = _CHUNK,
) -> dict:
    """Tag every sentence of the input files and write them, in order, to ``out``.

    Args:
        model: a :class:`~xner.models.tagger.Tagger` or the folder one was saved in (full or
            compact).
        inputs: files (``.gz`` allowed), read one after the other.
        out: the file to write; ``None``: standard output.
        format: an :data:`OUTPUT_FORMATS` name.
        input_format: an :data:`INPUT_FORMATS` name (one for every input).
        lang: language of raw text (picks the sentence splitter's rules); default the
            model's training language.
        precision: ``auto`` (by the hardware: bf16 where the CPU computes it natively),
            ``fp32``, ``bf16`` or ``int8`` (see
            :func:`xner.models.device.inference_precision`).
        probabilities: also write each token's tag probability.
        progress: a progress bar (sentences) on standard error.
        chunk_size: sentences tagged at a time.

    Returns:
        A summary: ``sentences``, ``tokens``, ``entities``, ``precision``, ``seconds``,
        ``sentences_per_s``.

    Raises:
        XnerError: a missing or corrupt model, an unreadable input, a malformed line
            (``file:line``), or an unknown format or precision.
    """
    from xner.models.device import inference_precision
    from xner.models.tagger import Tagger

    if format not in OUTPUT_FORMATS:
        raise one_of("output format", format, OUTPUT_FORMATS)
    if input_format not in INPUT_FORMATS:
        raise one_of("input format", input_format, INPUT_FORMATS)
    if not inputs:
        raise XnerError("no input files given")
    tagger = model if isinstance(model, Tagger) else Tagger.load(model)
    precision = inference_precision(tagger.device, precision)
    lang = lang or (tagger.metadata.get("languages") or ["en"])[0]
    counts = {"sentences": 0, "tokens": 0, "entities": 0}
    started = time.perf_counter()
    with _output(out) as handle, _bar(progress) as bar:
        for path in inputs:
            for chunk in _chunks(read_input(path, input_format, lang), chunk_size):
                sentences = [Sentence(tokens, None, lang) for _, tokens in chunk]
                probs = tagger.predict_proba(sentences, max_length, precision=precision, cache=False)
                for (line, tokens), p in zip(chunk, probs):
                    tagged = Tagged(str(path), line, tokens, decode(p, tagger.labels),
                                    p.max(axis=1) if probabilities else None)
                    handle.write(tagged.render(format))
                    counts["tokens"] += len(tokens)
                    counts["entities"] += sum(tag.startswith("B-") for tag in tagged.tags)
                counts["sentences"] += len(chunk)
                bar.update(len(chunk))
    seconds = time.perf_counter() - started
    return {**counts, "precision": precision, "seconds": seconds,
            "sentences_per_s": counts["sentences"] / seconds if seconds else 0.0}


def read_input(path: str | Path, input_format: str = "auto", lang: str = "en") -> Iterator[tuple[int, tuple[str, ...]]]:
    """The sentences of one input file as ``(line, tokens)``, streamed.

    Raises:
        XnerError: the file cannot be read, is empty, or (CoNLL) has a malformed line.
    """
    path = Path(path)
    kind = _sniff(path) if input_format == "auto" else input_format
    lines = _lines(path)
    sentences = _conll_sentences(path, lines) if kind == "conll" else _text_sentences(lines, lang)
    empty = True
    for sentence in sentences:
        empty = False
        yield sentence
    if empty:
        raise XnerError(f"{path}:1: no sentences (empty file)")


def _sniff(path: Path) -> str:
    """``conll`` when the file's name says so (``.conll``, ``.iob``...) or its first non-blank
    lines all look like token lines, else ``text``: a CoNLL file in a layout xner does not read
    gets a layout error, not tagged as prose."""
    if content_suffix(path) in _CONLL_SUFFIXES:
        return "conll"
    head = [line for line in _head(path) if line.strip()]
    token_lines = all(len(line.split()) == 1 or _is_token_line(line) for line in head)
    return "conll" if head and token_lines else "text"


def _is_token_line(line: str) -> bool:
    """``token<sep>tag`` (any CoNLL layout): at most four fields, the last an IOB tag; or a
    ``-DOCSTART-`` line."""
    fields = line.split()
    last = fields[-1]
    return line.startswith(DOCSTART) or (len(fields) <= 4 and (last == "O" or last[:2] in ("B-", "I-", "E-", "S-")))


def _head(path: Path) -> list[str]:
    lines = []
    for _, line in _lines(path):
        lines.append(line)
        if len(lines) >= _SNIFF_LINES:
            break
    return lines


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(number, line)`` of a UTF-8 text file (``.gz`` decompressed), newline stripped."""
    try:
        raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    except FileNotFoundError:
        raise XnerError(f"{path}: no such file") from None
    except OSError as err:  # a directory, no permission
        raise XnerError(f"{path}: cannot read: {err.strerror or err}") from None
    with raw:
        number = 0
        try:
            for number, data in enumerate(raw, 1):
                yield number, data.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r\n")
        except UnicodeDecodeError as err:
            raise XnerError(f"{path}:{number}: not UTF-8 text ({err.reason} at byte {err.start} of the line)") from None
        except (OSError, EOFError) as err:  # a corrupt .gz
            raise XnerError(f"{path}: cannot read: {err}") from None


def _conll_sentences(path: Path, lines: Iterable[tuple[int, str]]) -> Iterator[tuple[int, tuple[str, ...]]]:
    """Blank-line separated blocks of token lines; the token field of each line, tags ignored."""
    layout = None
    tokens: list[str] = []
    start = 0
    for number, line in lines:
        line = line.rstrip()
        if line.startswith(DOCSTART):  # a document boundary, not a token
            continue
        if not line:
            if tokens:
                yield start, tuple(tokens)
                tokens = []
            continue
        if layout is None:
            layout = _layout(path, number, line)
        tokens.append(_token(path, number, line, layout))
        start = start if len(tokens) > 1 else number
    if tokens:
        yield start, tuple(tokens)


def _layout(path: Path, number: int, line: str) -> str:
    """The layout of a file's token lines, from its first: a :data:`FORMATS` name or ``token``."""
    if "\t" not in line and " " not in line.strip():
        return "token"
    try:
        return detect_format([line], str(path))
    except XnerError:
        raise XnerError(f"{path}:{number}: cannot tell the token-line layout from {line!r}; expected a token, "
                        f"or a token and a tag ({', '.join(f.example for f in FORMATS.values())!r} ...)") from None


def _token(path: Path, number: int, line: str, layout: str) -> str:
    if layout == "token":
        if len(line.split()) != 1:
            raise XnerError(f"{path}:{number}: expected one token a line (as on the file's first line), got {line!r}")
        return line.strip()
    fmt = FORMATS[layout]
    fields = line.split(fmt.sep)
    if len(fields) != len(fmt.fields) or not fields[fmt.token_field].strip():
        raise XnerError(f"{path}:{number}: expected {len(fmt.fields)} fields ({', '.join(fmt.fields)}) as on the "
                        f"file's first line, got {line!r}")
    token = fields[fmt.token_field]
    return token.partition(":")[2] if fmt.lang_prefix else token


def _text_sentences(lines: Iterable[tuple[int, str]], lang: str) -> Iterator[tuple[int, tuple[str, ...]]]:
    """Raw text, a paragraph per line, as tokenized sentences (the unlabeled pools' path)."""
    from xner.data.rawtext import sentences_from_text

    for number, line in lines:
        if line.strip():
            for tokens in sentences_from_text(line, lang):
                yield number, tuple(tokens)


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@contextmanager
def _output(out: str | Path | None) -> Iterator[TextIO]:
    if out is None:
        yield sys.stdout
        return
    with atomic_file(out) as handle:  # a killed run leaves no half-tagged file under the final name
        yield handle


@contextmanager
def _bar(enabled: bool):
    from tqdm.auto import tqdm

    with tqdm(unit=" sentences", desc="tagging", disable=not enabled, file=sys.stderr, leave=False) as bar:
        yield bar
