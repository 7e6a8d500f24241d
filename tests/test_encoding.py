"""Subword encoding: first-subword alignment, windows over long sentences, empty words, subsets, fingerprints.

The oracle is the tokenizer itself: the first subword of word ``w`` is the first position
whose ``word_ids()`` entry is ``w`` (Hugging Face ``run_ner.py``'s rule). The ``tiny``
tokenizer is character-level, so expected positions can also be written by hand.
"""

from __future__ import annotations

import numpy as np
import pytest

from xner.data.corpus import Sentence
from xner.models import load_backbone
from xner.models.encoding import EncodedCorpus, encode_corpus, window_bounds

ZWSP = "\u200b"  # a zero-width space: the tiny tokenizer maps it to no subword at all


@pytest.fixture(scope="module")
def tokenizer():
    return load_backbone("tiny").tokenizer


def sentence(*tokens: str) -> Sentence:
    return Sentence(tuple(tokens))


def oracle_starts(tokenizer, words: list[str]) -> list[int]:
    """First position of each word in ``word_ids()`` (every word must have a subword)."""
    word_ids = tokenizer(words, is_split_into_words=True).word_ids()
    return [word_ids.index(w) for w in range(len(words))]


def arrays(encoded: EncodedCorpus) -> dict[str, np.ndarray]:
    return {name: getattr(encoded, name) for name in ("input_ids", "offsets", "first_subword",
                                                       "word_offsets", "n_words", "sentence_rows")}


# ([CLS] is position 0; the tiny tokenizer gives one subword per character.)
@pytest.mark.parametrize(("tokens", "starts"), [
    (("ab", "c"), [1, 3]),
    (("Ọlá", "in", "Москва"), [1, 4, 6]),
    (("a.b", "c"), [1, 4]),  # punctuation splits a word into pieces; they share its word id
    (("東京", "x"), [1, 3]),  # Han is outside the vocabulary: one [UNK] per character
    (("x",), [1]),
    (("a", ZWSP, "b"), [1, 2, 2]),  # an empty word shares the next word's start...
    ((ZWSP, "a"), [1, 1]),
    ((ZWSP, ZWSP, "a"), [1, 1, 1]),
    (("a", ZWSP), [1]),  # ...and a trailing one has none (it is predicted O)
])
def test_first_subword_positions(tokenizer, tokens, starts):
    encoded = encode_corpus([sentence(*tokens)], tokenizer)
    assert encoded.word_starts(0).tolist() == starts
    assert encoded.n_words.tolist() == [len(tokens)]
    assert encoded.ids(0).tolist() == tokenizer(list(tokens), is_split_into_words=True)["input_ids"]


def test_alignment_agrees_with_word_ids_on_a_corpus(tokenizer, make_corpus):
    corpus = make_corpus(60, types=("PER", "ORG", "LOC", "DATE"), seed=3)
    encoded = encode_corpus(corpus, tokenizer)
    assert len(encoded) == 60 and encoded.windowed == 0
    for i, s in enumerate(corpus):
        assert encoded.word_starts(i).tolist() == oracle_starts(tokenizer, list(s.tokens))
        assert encoded.lengths[i] == len(encoded.ids(i))
        assert encoded.ids(i).tolist() == tokenizer(list(s.tokens), is_split_into_words=True)["input_ids"]


def test_encoding_in_chunks_equals_one_chunk(tokenizer, make_corpus, monkeypatch):
    corpus = make_corpus(25, seed=4)
    whole = encode_corpus(corpus, tokenizer)
    monkeypatch.setattr("xner.models.encoding._TOKENIZE_CHUNK", 7)
    for name, value in arrays(encode_corpus(corpus, tokenizer)).items():
        np.testing.assert_array_equal(value, arrays(whole)[name], err_msg=name)


@pytest.mark.parametrize(("max_length", "rows"), [
    (256, [("ab cd e", "ab cd e"), ("x y", "x y")]),  # both fit: one row each
    (6, [("ab cd", "ab"), ("cd e", "cd"), ("cd e", "e"), ("x y", "x y")]),
    (5, [("ab", "ab"), ("cd e", "cd"), ("cd e", "e"), ("x y", "x y")]),
    (3, [("ab", "ab"), ("cd", "cd"), ("e", "e"), ("x", "x"), ("y", "y")]),  # "ab" alone is cut: its start stays
])
def test_long_sentences_become_windows_owning_each_word_once(tokenizer, max_length, rows):
    """Rows as (window words, owned words): each window is tokenized as the tokenizer would with
    truncation, and its owned words start at their first characters."""
    corpus = [sentence("ab", "cd", "e"), sentence("x", "y")]
    encoded = encode_corpus(corpus, tokenizer, max_length=max_length)
    assert len(encoded) == len(rows) and encoded.lengths.max() <= max_length
    assert encoded.n_words.tolist() == [len(owned.split()) for _, owned in rows]
    assert [int(encoded.n_words[a:b].sum()) for a, b in zip(encoded.sentence_rows, encoded.sentence_rows[1:])] == [3, 2]
    for i, (words, owned) in enumerate(rows):
        assert encoded.ids(i).tolist() == tokenizer(words.split(), is_split_into_words=True, truncation=True,
                                                    max_length=max_length)["input_ids"]
        starts = tokenizer.convert_ids_to_tokens([int(encoded.ids(i)[p]) for p in encoded.word_starts(i)])
        assert starts == [w[0] for w in owned.split()]


def test_targets_split_into_rows_and_predictions_join_back(tokenizer):
    encoded = encode_corpus([sentence("ab", "cd", "e"), sentence("x", "y")], tokenizer, max_length=6)
    rows = encoded.to_rows([np.array([1, 2, 3]), np.array([4, 5])])
    assert [r.tolist() for r in rows] == [[1], [2], [3], [4, 5]]
    assert [s.tolist() for s in encoded.to_sentences(rows)] == [[1, 2, 3], [4, 5]]


@pytest.mark.parametrize(("counts", "budget", "bounds"), [
    ([1] * 6, 4, [(0, 4, 0, 2), (1, 5, 2, 4), (2, 6, 4, 6)]),
    ([3, 3, 3], 8, [(0, 2, 0, 1), (1, 3, 1, 2), (1, 3, 2, 3)]),  # context: whole words only
    ([9, 1, 1], 4, [(0, 1, 0, 1), (1, 3, 1, 3)]),  # a word longer than the budget stands alone
    ([0, 2, 0, 2], 4, [(0, 4, 0, 3), (0, 4, 3, 4)]),  # empty words cost nothing
])
def test_window_bounds(counts, budget, bounds):
    assert window_bounds(counts, budget) == bounds
    owned = [w for _, _, a, b in bounds for w in range(a, b)]
    assert owned == list(range(len(counts)))  # every word owned exactly once, in order


def test_a_600_word_sentence_fits_its_windows(tokenizer, make_corpus):
    words = [t for s in make_corpus(300, seed=6) for t in s.tokens][:600]
    encoded = encode_corpus([Sentence(tuple(words))], tokenizer, max_length=64)
    assert encoded.lengths.max() <= 64 and encoded.n_words.sum() == 600
    assert len(encoded.first_subword) == 600  # every word has a predicting position
    starts = [int(encoded.ids(r)[p]) for r in range(len(encoded)) for p in encoded.word_starts(r)]
    assert tokenizer.convert_ids_to_tokens(starts) == [w[0] for w in words]


def test_normalisation_is_applied_to_each_word(tokenizer):
    corpus = [sentence("ADA", "Lovelace")]
    lowered = encode_corpus(corpus, tokenizer, normalize=str.lower)
    assert lowered.fingerprint == encode_corpus([sentence("ada", "lovelace")], tokenizer).fingerprint
    assert lowered.fingerprint != encode_corpus(corpus, tokenizer).fingerprint


@pytest.mark.parametrize("indices", [[2, 0], [1], [0, 1, 2, 3], [3, 3, 1], []])
def test_subset_equals_encoding_the_subset(tokenizer, make_corpus, indices):
    corpus = make_corpus(3, seed=5) + [sentence("a", ZWSP, "b")]
    encoded = encode_corpus(corpus, tokenizer)
    direct = encode_corpus([corpus[i] for i in indices], tokenizer)
    subset = encoded.subset(np.array(indices, dtype=np.int64))
    assert len(subset) == len(indices)
    for name, value in arrays(direct).items():
        np.testing.assert_array_equal(arrays(subset)[name], value, err_msg=name)
    assert subset.fingerprint == direct.fingerprint


def test_empty_corpus(tokenizer):
    encoded = encode_corpus([], tokenizer)
    assert len(encoded) == 0 and encoded.n_sentences == 0 and encoded.lengths.tolist() == []


@pytest.mark.parametrize(("other", "max_length", "same"), [
    ([("Ada", "spoke"), ("in", "Oslo")], 256, True),  # the same content, encoded again
    ([("Ada", "spoke"), ("in", "Lima")], 256, False),  # one word differs
    ([("in", "Oslo"), ("Ada", "spoke")], 256, False),  # order matters: rows are positional
    ([("Ada", "spoke", "in", "Oslo")], 256, False),  # same ids, other sentence boundaries
    ([("Adaspoke",), ("in", "Oslo")], 256, False),  # same subwords, other word boundaries
    ([("Ada", "spoke"), ("in", "Oslo")], 5, False),  # split into windows
])
def test_fingerprint_is_stable_and_follows_content(tokenizer, other, max_length, same):
    base = encode_corpus([sentence("Ada", "spoke"), sentence("in", "Oslo")], tokenizer)
    encoded = encode_corpus([sentence(*t) for t in other], tokenizer, max_length=max_length)
    assert (encoded.fingerprint == base.fingerprint) is same
    assert len(base.fingerprint) == 32


@pytest.mark.slow
def test_embedded_model_alignment_with_its_character_map(embedded_cache):
    backbone = load_backbone("embedded")
    corpus = [sentence("Angela", "Merkel", "besuchte", "Paris."), sentence("Владимир", "Путин"),
              sentence("東京", "に", "住む"), sentence("Ọ̀gá", "ń", "lọ"), sentence("x", ZWSP, "ﬁne")]
    encoded = encode_corpus(corpus, backbone.tokenizer, normalize=backbone.normalize)
    for i, s in enumerate(corpus):
        words = backbone.normalize.words(list(s.tokens))
        assert encoded.ids(i).tolist() == backbone.tokenizer(words, is_split_into_words=True)["input_ids"]
        starts = encoded.word_starts(i).tolist()
        assert len(starts) == len(s.tokens) and starts == sorted(starts)
    assert encoded.windowed == 0
