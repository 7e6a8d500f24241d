"""xner.data.formats: each line format, gzip, exact round trips, and one clear error per defect."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xner.data import formats
from xner.data.corpus import Sentence
from xner.data.formats import FORMATS, detect_format, parse_conll, read_conll, read_text, write_conll
from xner.data.labels import iob2_tags
from xner.errors import XnerError

WIKIANN = iob2_tags(["PER", "ORG", "LOC"])

# (format, file text, expected sentences)
READ_CASES = [
    ("conll", "Ada\tB-PER\nspoke\tO\n\nOslo\tB-LOC\n", [
        Sentence(("Ada", "spoke"), ("B-PER", "O"), "xx"), Sentence(("Oslo",), ("B-LOC",), "xx")]),
    ("conll", "New York\tB-LOC\n", [Sentence(("New York",), ("B-LOC",), "xx")]),
    ("conll-space", "Ada B-PER\nLovelace I-PER\n", [
        Sentence(("Ada", "Lovelace"), ("B-PER", "I-PER"), "xx")]),
    ("conll-space", "Ada B-PER\r\nspoke O  \r\n\r\n", [
        Sentence(("Ada", "spoke"), ("B-PER", "O"), "xx")]),
    ("indexed", "0\tAda\tB-PER\n1\tspoke\tO\n\n0\tOslo\tB-LOC\n\n", [
        Sentence(("Ada", "spoke"), ("B-PER", "O"), "xx"), Sentence(("Oslo",), ("B-LOC",), "xx")]),
    ("rahimi", "en:Ada\tB-PER\nen:a:b\tO\n\nfr:Lima\tB-LOC\n", [
        Sentence(("Ada", "a:b"), ("B-PER", "O"), "en"), Sentence(("Lima",), ("B-LOC",), "fr")]),
]


@pytest.mark.parametrize(("fmt", "text", "expected"), READ_CASES)
def test_reads_each_format(write_lines, fmt, text, expected):
    path = write_lines(text)
    report = parse_conll(path, lang="xx")
    assert report.format == fmt
    assert report.sentences == expected
    assert read_conll(path, format=fmt, lang="xx") == expected


@pytest.mark.parametrize(("fmt", "text", "expected"), READ_CASES)
def test_reads_gzip(write_lines, fmt, text, expected):
    assert read_conll(write_lines(text, "data.txt.gz"), lang="xx") == expected


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("name", ["data.txt", "data.txt.gz"])
def test_write_read_write_is_exact(write_corpus, make_corpus, tmp_path, fmt, name):
    sentences = make_corpus(25, lang="de", types=("PER", "ORG", "LOC", "DATE"), seed=3)
    path = write_corpus(sentences, name, format=fmt)
    again = read_conll(path, lang="de")
    assert again == sentences
    copy = write_conll(again, tmp_path / ("copy-" + name), format=fmt)
    assert copy.read_bytes() == path.read_bytes()


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("0\tAda\tB-PER\n", "indexed"),
        ("Ada\tB-PER\n", "conll"),
        ("Ada B-PER\n", "conll-space"),
        ("en:Ada\tB-PER\nen:spoke\tO\n", "rahimi"),
        ("en:Ada\tB-PER\nspoke\tO\n", "conll"),  # one unprefixed token: not Rahimi
        ("\n\nAda B-PER\n", "conll-space"),  # detection skips leading blank lines
        ("Ada NNP B-PER\n", "conll2002"),
        ("Ada NNP B-NP B-PER\n", "conll2003"),
    ],
)
def test_detect_format(text, fmt):
    assert detect_format(text.split("\n")) == fmt


CONLL2003 = """-DOCSTART- -X- -X- O

EU NNP B-NP I-ORG
rejects VBZ B-VP O
German JJ B-NP I-MISC
call NN I-NP O

Peter NNP B-NP I-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- -X- O

BRUSSELS NNP B-NP I-LOC
"""


def test_conll2003_files_read_past_pos_chunk_and_docstart(write_lines):
    """The CoNLL-2003 distribution: 4 space-separated columns, IOB1 tags, -DOCSTART- lines."""
    path = write_lines(CONLL2003, "eng.train")
    report = parse_conll(path, repair=True, lang="en")
    assert report.format == "conll2003" and report.repairs == 4  # each IOB1 chunk start
    assert [s.tokens for s in report.sentences] == [("EU", "rejects", "German", "call"), ("Peter", "Blackburn"),
                                                    ("BRUSSELS",)]
    assert report.sentences[0].tags == ("B-ORG", "O", "B-MISC", "O")
    with pytest.raises(XnerError, match=r"eng.train:3: .*I-ORG"):  # line numbers of the file itself
        parse_conll(path, lang="en")
    assert read_conll(write_lines("De Art O\nKamer N B-ORG\n", "ned.train"))[0].tags == ("O", "B-ORG")
    with pytest.raises(XnerError, match=r"only.txt:1: no sentences \(only -DOCSTART- lines\)"):
        parse_conll(write_lines("-DOCSTART- -X- O\n\n", "only.txt"))


def test_original_file_bytes_survive_a_round_trip(write_lines, tmp_path):
    text = "0\tAnton\tB-PER\n1\tvon\tI-PER\n2\t.\tO\n\n0\t''\tO\n1\tOslo\tB-LOC\n\n"
    sentences = read_conll(write_lines(text, "train.conllu"))
    assert write_conll(sentences, tmp_path / "out.conllu", "indexed").read_text() == text


# (file text, read keyword arguments, line of the error, message fragment)
BAD_INPUT = {
    "too many fields": ("Ada B-PER\nspoke O x\n", {}, 2, "expected 2 fields (token, tag) separated by a space, got 3"),
    "missing tag": ("Ada\tB-PER\nspoke\n", {}, 2, "expected 2 fields (token, tag) separated by a tab, got 1"),
    "indexed short line": ("0\tAda\tB-PER\n1\tO\n", {}, 2, "expected 3 fields (index, token, tag)"),
    "unknown tag": ("Ada B-PER\nMonday B-DATE\n", {"labels": WIKIANN}, 2,
                    "unknown tag 'B-DATE'; valid: B-LOC, B-ORG, B-PER, I-LOC, I-ORG, I-PER, O"),
    "malformed tag": ("Ada PER\n", {}, 1, "malformed tag 'PER'; expected O, B-<TYPE> or I-<TYPE>"),
    "I- after O": ("the O\nBank I-ORG\n", {}, 2, "I-ORG follows O"),
    "I- after another type": ("Ada B-PER\nBank I-ORG\n", {}, 2, "I-ORG follows B-PER"),
    "I- opening a sentence": ("a O\n\nBank I-ORG\n", {}, 3, "I-ORG follows O"),
    "empty file": ("", {}, 1, "empty file (no sentences)"),
    "blank-only file": ("\n \n\t\n", {}, 1, "empty file (no sentences)"),
    "empty sentence": ("a O\n\n\nb O\n", {}, 3, "empty sentence"),
    "leading blank line": ("\na O\n", {}, 1, "empty sentence"),
    "empty token": ("a O\n  O\n", {}, 2, "empty token"),
    "empty token (tab)": ("a\tO\n\tO\n", {}, 2, "empty token"),
    "index not a number": ("x\tAda\tO\n", {"format": "indexed"}, 1, "index 'x' is not a number"),
    "index jump": ("0\ta\tO\n1\tb\tO\n0\tc\tO\n", {}, 3, "index 0 does not follow 1"),
    "mixed Rahimi languages": ("en:a\tO\nfr:b\tO\n", {}, 2, "language prefix 'fr' differs from 'en'"),
    "Rahimi without prefix": ("Ada\tB-PER\n", {"format": "rahimi"}, 1, "expected lang:token, got 'Ada'"),
    "undetectable format": ("Ada\n", {}, 1, "cannot tell the line format from 'Ada'"),
}


@pytest.mark.parametrize(("text", "kwargs", "line", "fragment"), BAD_INPUT.values(), ids=BAD_INPUT)
def test_bad_input_names_file_and_line(write_lines, text, kwargs, line, fragment):
    path = write_lines(text)
    with pytest.raises(XnerError) as caught:
        read_conll(path, **kwargs)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: ")
    assert fragment in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("content", "name", "fragment"),
    [
        (b"Ada \xff B-PER\n", "data.txt", "not UTF-8 text"),
        (b"not gzip at all", "data.txt.gz", "cannot read"),
    ],
)
def test_unreadable_files(tmp_path, content, name, fragment):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(XnerError, match=fragment):
        read_conll(path)


def test_missing_file_and_unknown_format(tmp_path, write_lines):
    with pytest.raises(XnerError, match="no such file"):
        read_conll(tmp_path / "absent.conll")
    with pytest.raises(XnerError, match="unknown format 'xml'; valid: conll, conll-space"):
        read_conll(write_lines("a O\n"), format="xml")


@pytest.mark.parametrize(
    ("text", "tags", "repairs"),
    [
        ("the O\nBank I-ORG\nUnion I-ORG\n", ("O", "B-ORG", "I-ORG"), 1),
        ("Ada B-PER\nBank I-ORG\n", ("B-PER", "B-ORG"), 1),
        ("Bank I-ORG\nOslo I-LOC\n", ("B-ORG", "B-LOC"), 2),
        ("Ada B-PER\nAda B-PER\n", ("B-PER", "B-PER"), 0),
    ],
)
def test_repair_converts_iob1_to_iob2(write_lines, text, tags, repairs):
    report = parse_conll(write_lines(text), repair=True)
    assert report.sentences[0].tags == tags
    assert report.repairs == repairs


def test_repair_drops_token_less_lines(write_lines):
    report = parse_conll(write_lines("a O\n  O\nOslo B-LOC\n"), repair=True)
    assert report.sentences == [Sentence(("a", "Oslo"), ("O", "B-LOC"))]
    assert report.repairs == 1


def test_repair_that_empties_the_file_is_an_error(write_lines):
    with pytest.raises(XnerError, match="no sentences"):
        read_conll(write_lines("\tO\n"), repair=True)


@pytest.mark.parametrize(
    ("sentence", "fmt", "fragment"),
    [
        (Sentence(("a",), None), "conll", "unlabeled or empty"),
        (Sentence((), ()), "conll", "unlabeled or empty"),
        (Sentence(("a",), ("O",)), "rahimi", "has no language"),
        (Sentence(("New York",), ("B-LOC",)), "conll-space", "cannot be written"),
        (Sentence(("a\tb",), ("O",)), "conll", "cannot be written"),
        (Sentence((" ",), ("O",)), "conll", "cannot be written"),
    ],
)
def test_write_refuses_what_cannot_round_trip(tmp_path, sentence, fmt, fragment):
    with pytest.raises(XnerError, match=fragment):
        write_conll([sentence], tmp_path / "out", format=fmt)


def test_read_text(write_lines):
    path = write_lines("Habari ya leo\n\n   \nAsante sana\n", "raw.txt.gz")
    assert read_text(path, "sw") == [
        Sentence(("Habari", "ya", "leo"), None, "sw"),
        Sentence(("Asante", "sana"), None, "sw"),
    ]
    chars = read_text(path, "sw", tokenize=lambda line: list(line.replace(" ", "")))
    assert chars[1].tokens == tuple("Asantesana")


def test_read_text_empty_file(write_lines):
    with pytest.raises(XnerError, match="empty file"):
        read_text(write_lines("\n\n"))


# Property: the bulk fast path and the line-by-line path agree on every input.
TOKENS = st.sampled_from(["Ada", "Oslo", "the", "", " ", "a b", "x\ty", "en:Ada", "0"])
TAGS = st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-DATE", "PER", ""])
ANY_LINE = st.one_of(
    st.tuples(TOKENS, TAGS).map("\t".join),
    st.tuples(TOKENS, TAGS).map(" ".join),
    st.tuples(st.sampled_from(["0", "1", "x"]), TOKENS, TAGS).map("\t".join),
    st.just(""),
)
WORD = st.tuples(st.sampled_from(["Ada", "Oslo", "a:b"]), st.sampled_from(["O", "B-PER", "I-PER"]))


@st.composite
def mostly_clean_files(draw) -> tuple[str, list[str]]:
    """A file in one format, then 0-2 of its lines replaced by arbitrary (often bad) lines."""
    fmt = FORMATS[draw(st.sampled_from(list(FORMATS)))]
    lines = []
    for words in draw(st.lists(st.lists(WORD, min_size=1, max_size=4), min_size=1, max_size=4)):
        for i, (token, tag) in enumerate(words):
            fields = [f"en:{token}" if fmt.lang_prefix else token, tag]
            lines.append(fmt.sep.join([str(i), *fields] if fmt.indexed else fields))
        lines.append("")
    for _ in range(draw(st.integers(0, 2))):
        lines[draw(st.integers(0, len(lines) - 1))] = draw(ANY_LINE)
    return fmt.name, lines


def _parse(path: Path, careful: bool, **kwargs) -> object:
    with mock.patch.object(formats, "_fast_parse", return_value=None) if careful else nullcontext():
        try:
            return parse_conll(path, **kwargs)
        except XnerError as err:
            return str(err)


@settings(max_examples=300, deadline=None)
@given(file=mostly_clean_files(), labels=st.sampled_from([None, WIKIANN]), lang=st.just("xx"))
def test_fast_path_agrees_with_line_by_line_path(tmp_path_factory, file, labels, lang):
    fmt, lines = file
    path = tmp_path_factory.mktemp("prop") / "data.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    for forced in (fmt, "auto"):
        kwargs = {"format": forced, "labels": labels, "lang": lang}
        assert _parse(path, careful=False, **kwargs) == _parse(path, careful=True, **kwargs)
