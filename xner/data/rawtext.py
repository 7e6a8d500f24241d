"""Raw text to tokenized sentences: the one path every raw-text consumer shares.

Unlabeled pools (``xner data sentences``) and tagging raw text (``xner predict``) both see raw
text only through :func:`sentences_from_text`, so a model meets raw text cut into sentences
and words the way its pools were. The text is Unicode-normalised to NFC (MasakhaNER and
MasakhaNEWS mix precomposed and combining diacritics: Yoruba ``ẹ́`` has both spellings), each
line is a paragraph, sentences are split with pysbd and words cut at Unicode default word
boundaries (UAX #29) with the ``regex`` package.

The choice is measured (``benchmarks/sentence_split.py``, table in the README): on MasakhaNER
2.0 test sentences of the eight languages MasakhaNEWS shares, UAX #29 matched MasakhaNER's
own tokens best (token F1 99.3 on sentences found verbatim in MasakhaNEWS, 99.1 on
detokenized ones; it keeps elisions such as Igbo ``n'ime`` whole and splits hyphens, as the
annotators did), and pysbd had the best mean and worst-language sentence-boundary F1.

>>> sentences_from_text("Habari za leo? Mvua ilinyesha Nairobi.", "swa")
[['Habari', 'za', 'leo', '?'], ['Mvua', 'ilinyesha', 'Nairobi', '.']]
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import regex

from xner.errors import XnerError

__all__ = ["normalize", "sentences_from_text", "split_sentences", "tokenize"]

_WORD_BOUNDARY = regex.compile(r"(?wV1)\b")
"""A zero-width match at every UAX #29 default word boundary (``w`` flag, version-1 split)."""


def normalize(text: str) -> str:
    """NFC-normalise text and drop its control characters (tabs and newlines are kept).

    >>> normalize("e\\u0323\\u0301") == "\\u1eb9\\u0301"
    True
    """
    text = unicodedata.normalize("NFC", text)
    return "".join(ch for ch in text if ch in "\t\n" or unicodedata.category(ch) != "Cc")


@lru_cache(maxsize=None)
def _segmenter(lang: str):  # noqa: ANN202 - pysbd.Segmenter, imported lazily
    """pysbd's rules for the language when it has them (Amharic, Arabic...), else English's."""
    import pysbd
    from pysbd.languages import LANGUAGE_CODES

    from xner.languages import get_language

    try:
        code = get_language(lang).code
    except XnerError:
        code = lang
    return pysbd.Segmenter(language=code if code in LANGUAGE_CODES else "en", clean=False)


def split_sentences(paragraph: str, lang: str) -> list[str]:
    """The sentences of one paragraph (pysbd), stripped, empty ones dropped.

    >>> split_sentences("Ọ dé. Ó lọ!", "yor")
    ['Ọ dé.', 'Ó lọ!']
    """
    return [s.strip() for s in _segmenter(lang).segment(paragraph) if s.strip()]


def tokenize(sentence: str) -> list[str]:
    """Words and punctuation of a sentence, cut at Unicode default word boundaries.

    >>> tokenize("n'ime ụlọ, COVID-19.")
    ["n'ime", 'ụlọ', ',', 'COVID', '-', '19', '.']
    """
    return [piece for piece in _WORD_BOUNDARY.split(sentence) if piece.strip()]


def sentences_from_text(text: str, lang: str) -> list[list[str]]:
    """Tokenized sentences of raw text: NFC, one paragraph a line, pysbd, UAX #29 words.

    Args:
        text: raw text; each line is a paragraph (a sentence never spans two lines).
        lang: the text's language code (ISO 639-1 or 639-3), picks pysbd's rules.

    Returns:
        One token list per sentence, in text order; blank lines give nothing.
    """
    return [
        tokens
        for line in normalize(text).split("\n")
        if line.strip()
        for sentence in split_sentences(line, lang)
        if (tokens := tokenize(sentence))
    ]
