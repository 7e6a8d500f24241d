"""Static word vectors (mean of subword input embeddings) and vectorised nearest neighbours."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from xner.models.word_vectors import WordVectors, nearest_words, word_vectors

VOCAB = {"[UNK]": 0, "cat": 1, "##s": 2, "dog": 3, "##gy": 4}
TABLE = np.array([[9, 9], [1, 0], [0, 1], [2, 2], [4, 0]], dtype=np.float32)


@pytest.fixture(scope="module")
def tokenizer():
    backend = Tokenizer(models.WordPiece(VOCAB, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")


@pytest.mark.parametrize(
    ("word", "vector"),
    [
        ("cat", [1, 0]),
        ("cats", [0.5, 0.5]),  # mean of cat, ##s
        ("doggy", [3, 1]),  # mean of dog, ##gy
        ("zebra", [0, 0]),  # only [UNK]: no information, zero vector
        ("", [0, 0]),  # no pieces at all
    ],
)
def test_word_vector_is_the_mean_of_its_pieces(tokenizer, word, vector):
    assert word_vectors([word], tokenizer, TABLE).tolist() == [vector]


def test_word_vectors_keep_order_and_accept_torch_and_normalisation(tokenizer):
    words = ["dog", "zebra", "cats", "cat"]
    expected = word_vectors(words, tokenizer, TABLE)
    assert expected.shape == (4, 2) and expected.dtype == np.float32
    assert np.array_equal(word_vectors(words, tokenizer, torch.from_numpy(TABLE)), expected)
    assert np.array_equal(word_vectors(["CAT"], tokenizer, TABLE, normalize=str.lower), [[1, 0]])
    assert word_vectors([], tokenizer, TABLE).shape == (0, 2)


@pytest.mark.parametrize(
    ("queries", "candidates", "index"),
    [
        ([[1, 0], [0, 1]], [[0, 3], [5, 0.1]], [1, 0]),
        ([[0, 0]], [[1, 0]], [-1]),  # a zero query has no neighbour
        ([[1, 0]], [[0, 0], [-1, 0]], [1]),  # a zero candidate never wins, even over cos -1
        ([[1, 1]], [[1, 0], [0, 1]], [0]),  # ties go to the lower index
        ([[1, 0]], np.zeros((0, 2)), [-1]),  # no candidates
    ],
)
def test_nearest_words_table(queries, candidates, index):
    found, _ = nearest_words(np.array(queries, dtype=np.float32), np.array(candidates, dtype=np.float32))
    assert found.tolist() == index


def test_nearest_words_does_not_depend_on_chunking():
    rng = np.random.default_rng(0)
    queries, candidates = rng.normal(size=(50, 8)), rng.normal(size=(30, 8))
    whole = nearest_words(queries, candidates, chunk=1000)
    chunked = nearest_words(queries, candidates, chunk=7)
    assert np.array_equal(whole[0], chunked[0]) and np.allclose(whole[1], chunked[1])
    brute = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ (
        candidates / np.linalg.norm(candidates, axis=1, keepdims=True)
    ).T
    assert np.array_equal(whole[0], brute.argmax(axis=1))


def test_fingerprint_follows_the_matrix(tokenizer):
    same = WordVectors(tokenizer, TABLE.copy()).fingerprint
    assert WordVectors(tokenizer, TABLE).fingerprint == same
    assert WordVectors(tokenizer, TABLE * 2).fingerprint != same
    assert WordVectors(tokenizer, TABLE, fingerprint="given").fingerprint == "given"


def test_from_backbone_reads_input_embeddings_without_touching_the_global_seed():
    from xner.models.backbone import load_backbone

    backbone = load_backbone("tiny")
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    vectors = WordVectors.from_backbone(backbone)
    assert torch.equal(torch.rand(1), expected_next)
    assert vectors.embeddings.shape == (len(backbone.tokenizer), backbone.config.hidden_size)
    assert vectors.fingerprint == backbone.fingerprint
    assert vectors(["Lagos", "Lagos"]).shape == (2, backbone.config.hidden_size)
