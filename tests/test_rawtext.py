"""xner.data.rawtext: NFC, paragraphs, sentence splitting and MasakhaNER-style word tokens."""

from __future__ import annotations

import unicodedata

import pytest

from xner.data.rawtext import normalize, sentences_from_text, split_sentences, tokenize

# (sentence, expected tokens): MasakhaNER keeps elisions whole and splits hyphens and punctuation
TOKEN_CASES = [
    ("n'ime ụlọ akwụkwọ", ["n'ime", "ụlọ", "akwụkwọ"]),
    ("ng'obulumbaganyi bw'ekitujju.", ["ng'obulumbaganyi", "bw'ekitujju", "."]),
    ("kweCovid-19 ngo-2021", ["kweCovid", "-", "19", "ngo", "-", "2021"]),
    ('Ààrẹ Onítaksí: "Bẹ́ẹ̀ ni!"', ["Ààrẹ", "Onítaksí", ":", '"', "Bẹ́ẹ̀", "ni", "!", '"']),
    ("(PDP) 3,000 naira", ["(", "PDP", ")", "3,000", "naira"]),
    ("   ", []),
]


@pytest.mark.parametrize(("sentence", "expected"), TOKEN_CASES)
def test_tokenize(sentence, expected):
    assert tokenize(sentence) == expected


def test_combining_diacritics_stay_in_their_word():
    decomposed = unicodedata.normalize("NFD", "Ọ̀túnba Táíwò")
    assert tokenize(normalize(decomposed)) == [unicodedata.normalize("NFC", "Ọ̀túnba"), "Táíwò"]


def test_normalize_is_nfc_without_control_characters():
    assert normalize("a\u0301\x00b\tc\n") == "\u00e1b\tc\n"


def test_split_sentences_keeps_abbreviations_and_drops_blanks():
    assert split_sentences("Dr. Ade spoke. He left!  ", "yor") == ["Dr. Ade spoke.", "He left!"]


def test_sentences_from_text_one_paragraph_a_line():
    text = "Habari za leo? Mvua ilinyesha.\n\nRais alisema\n"
    assert sentences_from_text(text, "swa") == [
        ["Habari", "za", "leo", "?"], ["Mvua", "ilinyesha", "."], ["Rais", "alisema"]]


def test_unknown_language_uses_default_rules():
    assert sentences_from_text("A b. C d.", "zzz") == [["A", "b", "."], ["C", "d", "."]]
