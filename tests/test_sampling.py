"""xner.data.sampling: nested seeded subsets and unlabeled pools."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xner.data.corpus import Sentence
from xner.data.sampling import nested_subset, unlabeled_pool
from xner.errors import XnerError

CORPUS = [Sentence((f"w{i}",), ("O",), "xx") for i in range(600)]


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(0, 300),
    sizes=st.tuples(st.integers(0, 300), st.integers(0, 300)).map(sorted),
    seed=st.integers(0, 2**32 - 1),
)
def test_smaller_subset_is_a_prefix_of_larger(n, sizes, seed):
    small, large = sizes
    if large > n:
        return
    assert nested_subset(CORPUS[:n], large, seed)[:small] == nested_subset(CORPUS[:n], small, seed)


def test_deterministic_and_seed_dependent():
    assert nested_subset(CORPUS, 100, seed=7) == nested_subset(CORPUS, 100, seed=7)
    assert nested_subset(CORPUS, 100, seed=7) != nested_subset(CORPUS, 100, seed=8)
    assert len(set(nested_subset(CORPUS, 500, seed=0))) == 500  # no repeats


@pytest.mark.parametrize("size", [None, -1])
def test_all_is_a_permutation(size):
    everything = nested_subset(CORPUS, size, seed=3)
    assert sorted(everything, key=lambda s: int(s.tokens[0][1:])) == CORPUS
    assert everything[:100] == nested_subset(CORPUS, 100, seed=3)


@pytest.mark.parametrize(
    ("size", "message"),
    [
        (601, "asked for 601 sentences but only 600 are available"),
        (-2, "subset size must be >= 0, or -1 / None for all; got -2"),
    ],
)
def test_bad_sizes(size, message):
    with pytest.raises(XnerError, match=message):
        nested_subset(CORPUS, size, seed=0)


def test_pool_from_sentences_drops_labels_and_nests(make_corpus):
    corpus = make_corpus(50, "sw")
    small, large = unlabeled_pool(corpus, 10, seed=1), unlabeled_pool(corpus, 30, seed=1)
    assert all(s.tags is None and s.lang == "sw" for s in large)
    assert large[:10] == small
    assert [s.tokens for s in small] == [s.tokens for s in nested_subset(corpus, 10, seed=1)]


def test_pool_from_text_file(write_lines):
    path = write_lines("".join(f"sentence number {i}\n" for i in range(20)), "raw.txt.gz")
    pool = unlabeled_pool(path, 5, seed=2, lang="yo")
    assert len(pool) == 5 and {s.lang for s in pool} == {"yo"}
    assert pool == unlabeled_pool(str(path), 8, seed=2, lang="yo")[:5]
    upper = unlabeled_pool(path, 5, seed=2, lang="yo", tokenize=lambda line: line.upper().split())
    assert [s.tokens for s in upper] == [tuple(t.upper() for t in s.tokens) for s in pool]
    with pytest.raises(XnerError, match="asked for 21 sentences but only 20 are available"):
        unlabeled_pool(path, 21, seed=2)
