"""Frozen-layer features and the split model: the correctness proof of the fast path.

- the cached features are the model's own intermediate hidden states (``output_hidden_states``);
- the top K layers run on them give the full model's logits (``TopLayers``);
- the content-addressed cache computes each distinct sentence once, is hit by later calls
  (and by a new process), rebuilds corrupt shards, misses when the backbone or layer count
  changes, and subset views read the same rows as a direct computation.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from xner.models import load_backbone
from xner.models.batching import pad_batch
from xner.models.encoding import encode_corpus
from xner.models.features import frozen_features
from xner.models.split import TopLayers, bottom_layers, freeze_bottom, num_layers

pytestmark = pytest.mark.usefixtures("one_thread")

LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
FP16 = {"atol": 5e-3, "rtol": 5e-3}  # fp16 storage of values of order 1


@pytest.fixture(scope="module")
def backbone():
    return load_backbone("tiny")


@pytest.fixture
def model(backbone):
    network = backbone.token_classification_model(LABELS)
    return network.eval()


@pytest.fixture
def encoded(backbone, make_corpus):
    return encode_corpus(make_corpus(30, types=("PER", "LOC"), seed=7), backbone.tokenizer)


@pytest.fixture
def computes(monkeypatch):
    """Counts the forward passes that fill a cache entry."""
    import xner.models.features as features

    calls = []
    compute = features._compute

    def counting(model, encoded, *args):
        calls.append(len(encoded))  # sentences computed
        return compute(model, encoded, *args)

    monkeypatch.setattr(features, "_compute", counting)
    return calls


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XNER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "features"


def features_of(model, encoded, n_frozen=1, fingerprint="tiny-fp", **kwargs):
    return frozen_features(model, encoded, n_frozen, fingerprint, pad_id=0, **kwargs)


def rows(features, i):
    return np.asarray(features.rows(i), dtype=np.float32)


def new_process(monkeypatch):
    """Forget the stores this process has opened, as a fresh worker process would."""
    monkeypatch.setattr("xner.models.features._STORES", {})


# --- the features are the model's hidden states ------------------------------------------------

@pytest.mark.parametrize("n_frozen", [0, 1, 2])
def test_features_are_the_models_intermediate_hidden_states(model, encoded, n_frozen):
    features = features_of(model, encoded, n_frozen)
    assert all(shard.dtype == np.float16 and shard.shape[1] == 32 for shard in features.shards)
    with torch.inference_mode():
        for i in range(len(encoded)):
            ids = torch.from_numpy(encoded.ids(i).astype(np.int64))[None]
            states = model.base_model(input_ids=ids, output_hidden_states=True).hidden_states
            np.testing.assert_allclose(rows(features, i), states[n_frozen][0].numpy(), **FP16)


# --- TopLayers: the top K layers on the bottom's output give the full model's logits ------------

def padded_logits(model, encoded, n_frozen, bottom_hidden=None):
    indices = np.arange(len(encoded))
    ids, mask = pad_batch(encoded, indices, pad_id=0)
    with torch.inference_mode():
        full = model(input_ids=ids, attention_mask=mask).logits
        if bottom_hidden is None:
            with bottom_layers(model, n_frozen) as bottom:
                bottom_hidden = bottom(input_ids=ids, attention_mask=mask).last_hidden_state
        top = TopLayers(model, num_layers(model) - n_frozen).eval()(bottom_hidden, mask)
    real = mask.bool()
    return full[real].numpy(), top[real].numpy()


@pytest.mark.parametrize("n_frozen", [0, 1, 2])
def test_top_layers_on_bottom_states_equal_the_full_model(model, encoded, n_frozen):
    full, top = padded_logits(model, encoded, n_frozen)  # one padded batch of uneven lengths
    assert encoded.lengths.min() < encoded.lengths.max()
    np.testing.assert_allclose(top, full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n_frozen", [0, 1])
def test_top_layers_on_cached_features_equal_the_full_model(model, encoded, n_frozen):
    hidden, _ = features_of(model, encoded, n_frozen).batch(np.arange(len(encoded)))
    full, top = padded_logits(model, encoded, n_frozen, bottom_hidden=hidden)
    np.testing.assert_allclose(top, full, atol=2e-2, rtol=1e-2)
    assert (top.argmax(-1) == full.argmax(-1)).mean() > 0.97


def test_bottom_layers_restores_the_encoder(model):
    layers = model.base_model.encoder.layer
    with pytest.raises(RuntimeError):
        with bottom_layers(model, 1) as bottom:
            assert len(bottom.encoder.layer) == 1
            raise RuntimeError("boom")
    assert model.base_model.encoder.layer is layers and num_layers(model) == 2


@pytest.mark.parametrize(("n_frozen", "freeze_embeddings", "embeddings", "layers"), [
    (0, False, True, [True, True]),
    (0, True, False, [True, True]),
    (1, False, False, [False, True]),  # frozen layers imply frozen embeddings
    (2, True, False, [False, False]),
])
def test_freeze_bottom(model, n_frozen, freeze_embeddings, embeddings, layers):
    freeze_bottom(model, n_frozen, freeze_embeddings)
    base = model.base_model
    assert all(p.requires_grad is embeddings for p in base.embeddings.parameters())
    assert [all(p.requires_grad for p in layer.parameters()) for layer in base.encoder.layer] == layers
    assert all(p.requires_grad for p in model.classifier.parameters())


# --- the cache --------------------------------------------------------------------------------

def shard_files(cache):
    return sorted(p.name for p in cache.rglob("*") if p.is_file())


def test_each_distinct_sentence_is_computed_once(model, encoded, computes, cache, monkeypatch):
    distinct = len({encoded.ids(i).tobytes() for i in range(len(encoded))})
    first = features_of(model, encoded)
    assert computes == [distinct]
    second = features_of(model, encoded)
    new_process(monkeypatch)
    third = features_of(model, encoded)  # another process reads the shards from disk
    assert computes == [distinct]
    for later in (second, third):
        assert all(isinstance(shard, np.memmap) for shard in later.shards)
        for i in range(len(encoded)):
            np.testing.assert_array_equal(rows(later, i), rows(first, i))
    names = shard_files(cache)
    assert len(names) == 2 and {n.rsplit(".", 1)[1] for n in names} == {"npy", "json"}  # no temporary files


def test_only_new_sentences_are_computed(model, backbone, make_corpus, computes):
    corpus = make_corpus(30, types=("PER", "LOC"), seed=7)
    more = corpus[10:] + make_corpus(12, types=("PER", "LOC"), seed=99)  # 20 seen before
    first = features_of(model, encode_corpus(corpus, backbone.tokenizer))
    both = features_of(model, encode_corpus(more, backbone.tokenizer))
    seen = {s.tokens for s in corpus}
    assert computes[1] == len({s.tokens for s in more} - seen)
    for i in range(20):  # the shared sentences read the first call's rows
        np.testing.assert_array_equal(rows(both, i), rows(first, i + 10))


def _flip_a_value(shard):
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0xFF
    shard.write_bytes(bytes(data))


def _manifest(text):
    return lambda shard: shard.with_suffix(".json").write_text(text)


def _edit_manifest(**changes):
    def edit(shard):
        manifest = json.loads(shard.with_suffix(".json").read_text())
        shard.with_suffix(".json").write_text(json.dumps({**manifest, **changes}))
    return edit


@pytest.mark.parametrize("corrupt", [
    _flip_a_value,
    lambda shard: shard.write_bytes(shard.read_bytes()[:-64]),
    lambda shard: shard.unlink(),
    lambda shard: shard.write_bytes(b""),
    lambda shard: shard.with_suffix(".json").unlink(),
    _manifest("{not json"),
    _manifest("{}"),
    _manifest("[]"),
    _manifest("null"),
    _edit_manifest(checksum="0" * 32),
    _edit_manifest(version=0),
], ids=["flipped value", "truncated data", "no data", "empty data", "no manifest", "manifest not json",
        "manifest empty", "manifest a list", "manifest null", "wrong checksum", "old format"])
def test_corrupt_shard_is_detected_and_recomputed(model, encoded, computes, cache, monkeypatch, corrupt):
    good = features_of(model, encoded)
    expected = [rows(good, i) for i in range(len(encoded))]
    [shard] = [p for p in cache.rglob("shard-*.npy")]
    del good  # release the memory map before damaging its file
    corrupt(shard)
    new_process(monkeypatch)
    rebuilt = features_of(model, encoded)
    assert len(computes) == 2 and computes[1] == computes[0]
    for i in range(len(encoded)):
        np.testing.assert_array_equal(rows(rebuilt, i), expected[i])
    new_process(monkeypatch)
    features_of(model, encoded)
    assert len(computes) == 2  # the rebuilt shard is valid


@pytest.mark.parametrize(("change", "misses"), [
    ({"n_frozen": 2}, True),
    ({"fingerprint": "other-weights"}, True),
    ({"n_frozen": 1, "fingerprint": "tiny-fp"}, False),
])
def test_backbone_and_layer_count_are_part_of_the_key(model, encoded, computes, change, misses):
    features_of(model, encoded)
    features_of(model, encoded, **change)
    assert (len(computes) == 2) is misses


def test_truncation_changes_the_key(model, backbone, make_corpus, computes):
    corpus = make_corpus(30, types=("PER", "LOC"), seed=7)
    features_of(model, encode_corpus(corpus, backbone.tokenizer))
    short = encode_corpus(corpus, backbone.tokenizer, max_length=6)
    features = features_of(model, short)
    assert len(computes) == 2
    assert sum(len(rows(features, i)) for i in range(len(short))) == len(short.input_ids)


def test_subset_views_read_the_same_rows_as_a_direct_computation(model, encoded, computes):
    pool = features_of(model, encoded)
    indices = np.array([9, 2, 17, 2, 0])
    view = pool.subset(indices)
    direct = features_of(model, encoded.subset(indices))
    assert len(computes) == 1  # neither the view nor the subset's own lookup computes anything
    for i in range(len(indices)):
        np.testing.assert_array_equal(rows(view, i), rows(pool, int(indices[i])))
        np.testing.assert_array_equal(rows(view, i), rows(direct, i))
    view_batch, view_mask = view.batch(np.arange(len(indices)))
    direct_batch, direct_mask = direct.batch(np.arange(len(indices)))
    torch.testing.assert_close(view_mask, direct_mask, rtol=0, atol=0)
    torch.testing.assert_close(view_batch, direct_batch, rtol=0, atol=0)


def test_batch_pads_with_zeros(model, encoded):
    features = features_of(model, encoded)
    indices = np.array([int(encoded.lengths.argmax()), int(encoded.lengths.argmin())])
    hidden, mask = features.batch(indices)
    assert hidden.dtype == torch.float32 and hidden.shape == (2, encoded.lengths.max(), 32)
    assert mask.sum(dim=1).tolist() == encoded.lengths[indices].tolist()
    assert (hidden[1, int(encoded.lengths.min()) :] == 0).all()
    np.testing.assert_array_equal(hidden[0].numpy(), rows(features, int(indices[0])))


def test_a_failed_build_leaves_nothing_behind(model, encoded, cache, monkeypatch):
    def fail(*args):
        raise RuntimeError("out of memory")

    monkeypatch.setattr("xner.models.features._compute", fail)
    with pytest.raises(RuntimeError, match="out of memory"):
        features_of(model, encoded)
    assert shard_files(cache) == []


def test_only_the_shards_a_request_uses_are_verified(model, backbone, make_corpus, computes, cache, monkeypatch):
    """A process checksums the shards it reads rows from, not the whole cache: a corrupt shard
    of other sentences is left alone (and never used) until they are asked for."""
    other = encode_corpus(make_corpus(12, types=("PER", "LOC"), seed=99), backbone.tokenizer)
    wanted = encode_corpus(make_corpus(10, types=("PER", "LOC"), seed=98), backbone.tokenizer)
    features_of(model, other)
    [other_shard] = cache.rglob("shard-*.npy")
    for path in (other_shard.with_suffix(".json"), other_shard):  # listed first from now on
        path.rename(path.with_name("shard-0" + path.suffix))
    other_shard = other_shard.with_name("shard-0.npy")
    expected = [rows(features_of(model, wanted), i) for i in range(len(wanted))]
    _flip_a_value(other_shard)
    new_process(monkeypatch)
    checksummed = []
    import xner.models.features as features
    checksum = features._checksum
    monkeypatch.setattr(features, "_checksum", lambda path: checksummed.append(path) or checksum(path))
    again = features_of(model, wanted)
    assert len(computes) == 2
    assert other_shard.exists() and other_shard not in checksummed and len(checksummed) == 1
    for i in range(len(wanted)):
        np.testing.assert_array_equal(rows(again, i), expected[i])
    hidden, _ = again.batch(np.arange(len(wanted)))
    np.testing.assert_array_equal(hidden[0, : wanted.lengths[0]].numpy(), expected[0])
    features_of(model, other)
    assert len(computes) == 3 and computes[2] == len(other)  # the corrupt shard is rebuilt on use


def test_bf16_features_are_cached_apart_and_close_to_fp32(model, encoded, computes):
    """The bottom may run in bf16 (a run's mixed precision): other features, so another cache
    entry, and close to the fp32 ones."""
    exact = features_of(model, encoded)
    fast = features_of(model, encoded, precision="bf16")
    assert computes == [len(encoded), len(encoded)]
    features_of(model, encoded, precision="bf16")
    features_of(model, encoded)
    assert len(computes) == 2
    difference = [np.abs(rows(fast, i) - rows(exact, i)).max() for i in range(len(encoded))]
    assert 0 < max(difference) < 0.1


def test_int8_features_are_cached_apart_and_close_to_fp32(model, encoded, computes, tmp_path):
    """The bottom may run in int8 (ONNX Runtime): exported once, its features another cache
    entry, close to the fp32 ones."""
    pytest.importorskip("onnxruntime")
    exact = features_of(model, encoded)
    quantized = features_of(model, encoded, precision="int8")
    assert computes == [len(encoded), len(encoded)]
    assert len(list((tmp_path / "cache" / "onnx").glob("*.onnx"))) == 1
    features_of(model, encoded, precision="int8")
    assert len(computes) == 2
    difference = [np.abs(rows(quantized, i) - rows(exact, i)).max() for i in range(len(encoded))]
    assert 0 < max(difference) < 0.5


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_sentences_features_do_not_depend_on_what_it_was_computed_with(model, encoded, monkeypatch, tmp_path,
                                                                        precision):
    """Cached features are shared between runs, so which sentences first computed them together
    must not matter: each sentence alone, in a fresh cache, gives the very bits the whole corpus
    gives (a sentence padded to a longer neighbour's width would differ in the last bits)."""
    together = features_of(model, encoded, precision=precision)
    for i in range(len(encoded)):
        monkeypatch.setenv("XNER_CACHE", str(tmp_path / f"alone-{i}"))
        alone = features_of(model, encoded.subset(np.array([i])), precision=precision)
        np.testing.assert_array_equal(rows(alone, 0), rows(together, i))
