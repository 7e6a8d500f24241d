"""Length-bucketed batches: coverage, length homogeneity, the token bound, seeded order, padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xner.data.corpus import Sentence
from xner.models import load_backbone
from xner.errors import XnerError
from xner.models.batching import _BUCKET_BATCHES, epoch_batches, length_batches, pad_batch
from xner.models.tagger import TrainConfig
from xner.models.encoding import encode_corpus

lengths_strategy = st.lists(st.integers(1, 60), min_size=0, max_size=120).map(lambda x: np.array(x, np.int64))


def covered(batches: list[np.ndarray]) -> list[int]:
    return sorted(int(i) for batch in batches for i in batch)


def disjoint_ranges(batches: list[np.ndarray], lengths: np.ndarray) -> bool:
    """No two batches interleave in length (ranges may touch where lengths tie)."""
    ranges = sorted((lengths[b].min(), lengths[b].max()) for b in batches)
    return all(high <= next_low for (_, high), (next_low, _) in zip(ranges, ranges[1:]))


@settings(max_examples=60, deadline=None)
@given(lengths=lengths_strategy, batch_size=st.integers(1, 9), seed=st.integers(0, 3) | st.none())
def test_fixed_size_batches_cover_every_sentence_once(lengths, batch_size, seed):
    rng = None if seed is None else np.random.default_rng(seed)
    batches = length_batches(lengths, batch_size=batch_size, rng=rng)
    assert covered(batches) == list(range(len(lengths)))
    assert all(1 <= len(b) <= batch_size for b in batches)
    assert sum(len(b) < batch_size for b in batches) <= 1  # only one short (the last) batch
    assert disjoint_ranges(batches, lengths)  # one window: sorted, then cut


@settings(max_examples=60, deadline=None)
@given(lengths=lengths_strategy, batch_tokens=st.integers(1, 400))
def test_token_budget_is_respected(lengths, batch_tokens):
    batches = length_batches(lengths, batch_tokens=batch_tokens)
    assert covered(batches) == list(range(len(lengths)))
    for batch in batches:  # padded size within budget, unless one sentence alone exceeds it
        assert len(batch) == 1 or lengths[batch].max() * len(batch) <= batch_tokens
        assert len(set(lengths[batch].tolist())) == 1  # one length: no sentence is padded
    order = np.concatenate(batches) if batches else np.zeros(0, np.int64)
    np.testing.assert_array_equal(order, np.argsort(lengths, kind="stable"))  # prediction: sorted


@pytest.mark.parametrize(("lengths", "batch_tokens", "expected"), [
    ([3, 3, 3, 3], 6, [[0, 1], [2, 3]]),
    ([3, 3, 3, 3], 5, [[0], [1], [2], [3]]),
    ([5, 1, 2, 9], 10, [[1], [2], [0], [3]]),  # never mixed lengths, even where they would fit
    ([2, 3, 2, 2, 3], 100, [[0, 2, 3], [1, 4]]),
    ([12, 2], 10, [[1], [0]]),  # too long for the budget: alone, not dropped
    ([4, 4, 4], 100, [[0, 1, 2]]),
    ([], 10, []),
])
def test_token_budget_table(lengths, batch_tokens, expected):
    batches = length_batches(np.array(lengths, np.int64), batch_tokens=batch_tokens)
    assert [b.tolist() for b in batches] == expected


def test_training_batches_are_seeded_and_change_per_epoch():
    lengths = np.random.default_rng(0).integers(1, 50, size=200)
    first = length_batches(lengths, batch_size=8, rng=np.random.default_rng(1))
    again = length_batches(lengths, batch_size=8, rng=np.random.default_rng(1))
    other = length_batches(lengths, batch_size=8, rng=np.random.default_rng(2))
    assert [b.tolist() for b in first] == [b.tolist() for b in again]
    assert [b.tolist() for b in first] != [b.tolist() for b in other]
    rng = np.random.default_rng(1)
    epochs = [length_batches(lengths, batch_size=8, rng=rng) for _ in range(2)]
    assert [b.tolist() for b in epochs[0]] != [b.tolist() for b in epochs[1]]


def test_training_batches_are_homogeneous_within_each_window():
    batch_size = 2
    window = batch_size * _BUCKET_BATCHES
    lengths = np.random.default_rng(3).integers(1, 80, size=window * 2 + 30)
    rng = np.random.default_rng(0)
    batches = length_batches(lengths, batch_size=batch_size, rng=rng)
    assert covered(batches) == list(range(len(lengths)))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    random_spread = np.mean([np.ptp(lengths[b]) for b in np.array_split(rng.permutation(len(lengths)),
                                                                        len(batches))])
    assert spread < random_spread / 5  # far tighter than random batches
    assert sum(len(b) != batch_size for b in batches) <= 1


@pytest.mark.parametrize(("batch_size", "batch_tokens"), [(None, None), (4, 100)])
def test_exactly_one_batch_limit(batch_size, batch_tokens):
    with pytest.raises(ValueError, match="exactly one"):
        length_batches(np.array([1, 2]), batch_size=batch_size, batch_tokens=batch_tokens)


def test_pad_batch_pads_to_the_longest_member():
    tokenizer = load_backbone("tiny").tokenizer
    corpus = [Sentence(tuple(t)) for t in (("abc", "d"), ("x",), ("hello", "world"))]
    encoded = encode_corpus(corpus, tokenizer)
    indices = np.array([1, 0, 2])
    ids, mask = pad_batch(encoded, indices, pad_id=tokenizer.pad_token_id)
    assert ids.shape == mask.shape == (3, int(encoded.lengths.max()))
    assert ids.dtype == mask.dtype == torch.int64
    for row, i in enumerate(indices):
        n = int(encoded.lengths[i])
        assert ids[row, :n].tolist() == encoded.ids(i).tolist()
        assert (ids[row, n:] == tokenizer.pad_token_id).all()
        assert mask[row].tolist() == [1] * n + [0] * (ids.shape[1] - n)


def test_random_batches_are_seeded_fixed_size_and_ignore_length():
    lengths = np.repeat(np.arange(1, 41), 10)  # 400 sentences of 40 lengths
    batches = epoch_batches(lengths, 16, np.random.default_rng(0), "random")
    assert covered(batches) == list(range(400)) and [len(b) for b in batches] == [16] * 25
    assert not disjoint_ranges(batches, lengths)  # lengths mixed within batches, as a Trainer draws them
    again = epoch_batches(lengths, 16, np.random.default_rng(0), "random")
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
    bucketed = epoch_batches(lengths, 16, np.random.default_rng(0))
    assert np.mean([np.ptp(lengths[b]) for b in bucketed]) < np.mean([np.ptp(lengths[b]) for b in batches]) / 4


def test_an_unknown_batching_is_named_with_the_valid_ones():
    with pytest.raises(XnerError, match=r"^TrainConfig: batching: input should be 'length' or 'random', got 'sorted'$"):
        TrainConfig(batching="sorted")
