"""Tagger: learning, determinism, early stopping, probabilities, persistence, subsets, errors.

The task is synthetic and learnable by the 2-layer ``tiny`` model in a few epochs: entity
words of each type start with their own letter and stand between lowercase context words.
``easy_corpus`` and ``LABELS`` are shared with the distillation, sweep and CLI tests.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from xner.data.corpus import Sentence
from xner.data.labels import iob2_tags
from xner.errors import XnerError
from xner.decoding import repair_iob2
from xner.metrics import entity_scores
from xner.models.checksums import write_checksums
from xner.models.tagger import Tagger, TrainConfig

LABELS = iob2_tags(["PER", "ORG", "LOC"])

LATIN = {
    "O": ("the", "of", "in", "said", "and", "was", "near", "with"),
    "PER": ("Pablo", "Petra", "Pim", "Paz"),
    "ORG": ("Omni", "Orbis", "Oxfam", "Opec"),
    "LOC": ("Lima", "Lund", "Lagos", "Leeds"),
}
"""The synthetic language: each entity type has its own initial letter."""

FAST = {"lr": 2e-2, "batch_size": 8, "patience": None}
"""Training options that fit the tiny model to the synthetic task in 3 epochs."""


def easy_corpus(n: int, seed: int = 0, lang: str = "de", lexicon: dict = LATIN) -> list[Sentence]:
    """``n`` sentences of 1-3 (context words, one-word entity) groups drawn from ``lexicon``."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        tokens, tags = [], []
        for _ in range(rng.randint(1, 3)):
            context = rng.randint(1, 2)
            tokens += [rng.choice(lexicon["O"]) for _ in range(context)]
            tags += ["O"] * context
            etype = rng.choice(("PER", "ORG", "LOC"))
            tokens.append(rng.choice(lexicon[etype]))
            tags.append(f"B-{etype}")
        sentences.append(Sentence(tuple(tokens), tuple(tags), lang))
    return sentences


def train_tagger(train, dev=None, seed=0, **options) -> Tagger:
    tagger = Tagger.create("tiny", LABELS, seed=seed)
    tagger.fit(train, dev=dev, config=TrainConfig(**{"epochs": 3, "seed": seed, **FAST, **options}))
    return tagger


def assert_same_predictions(a: Tagger, b: Tagger, sentences) -> None:
    for x, y in zip(a.predict_proba(sentences), b.predict_proba(sentences)):
        np.testing.assert_array_equal(x, y)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XNER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def data():
    return {"train": easy_corpus(96, seed=1), "dev": easy_corpus(30, seed=2), "test": easy_corpus(40, seed=3)}


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """One tagger trained on the synthetic task (tests must not train it further)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XNER_CACHE", str(tmp_path_factory.mktemp("cache")))
        return train_tagger(data["train"], data["dev"])


# --- learning ----------------------------------------------------------------------------------

@pytest.mark.parametrize("train_layers", [None, 1, 0])
def test_learns_the_synthetic_task(data, train_layers):
    tagger = Tagger.create("tiny", LABELS, seed=0)
    untrained = tagger.evaluate(data["test"])["f1"]
    record = tagger.fit(data["train"], dev=data["dev"],
                        config=TrainConfig(epochs=3, train_layers=train_layers, **FAST))
    f1 = tagger.evaluate(data["test"])["f1"]
    assert untrained < 30 and f1 > 90, (untrained, f1)
    losses = [h["loss"] for h in record["history"]]
    assert losses == sorted(losses, reverse=True)
    assert tagger.n_frozen == (0 if train_layers is None else 2 - train_layers)
    assert record["train_sentences"] == 96 and len(record["history"]) == 3
    assert tagger.metadata["languages"] == ["de"] and tagger.metadata["trainings"] == [record]


@pytest.mark.parametrize("train_layers", [None, 1])
def test_same_seed_same_model_other_seed_other_model(data, train_layers):
    train = data["train"][:48]
    first, again, other = (train_tagger(train, data["dev"], seed=s, epochs=2, train_layers=train_layers)
                           for s in (0, 0, 1))
    assert_same_predictions(first, again, data["test"])
    assert first.evaluate(data["test"]) == again.evaluate(data["test"])
    losses = [[h["loss"] for h in t.metadata["trainings"][0]["history"]] for t in (first, again, other)]
    assert losses[0] == losses[1] != losses[2]
    assert first.fingerprint == again.fingerprint != other.fingerprint
    assert not all(np.array_equal(x, y) for x, y in zip(first.predict_proba(data["test"]),
                                                         other.predict_proba(data["test"])))


def test_random_batching_trains_other_batches_deterministically(data):
    train = data["train"][:48]
    length, random, again = (train_tagger(train, epochs=2, train_layers=1, batching=b) for b in ("length", "random", "random"))
    assert random.metadata["trainings"][0]["config"]["batching"] == "random"
    losses = [[h["loss"] for h in t.metadata["trainings"][0]["history"]] for t in (length, random, again)]
    assert losses[1] == losses[2] != losses[0] and random.fingerprint == again.fingerprint != length.fingerprint
    assert random.evaluate(data["test"])["f1"] > 80


def test_fast_path_predictions_match_the_full_model(trained, data):
    tagger = train_tagger(data["train"][:48], train_layers=1, epochs=2)
    fast = tagger.predict_proba(data["test"])
    tagger.n_frozen = 0  # the same weights, run end to end
    full = tagger.predict_proba(data["test"])
    for x, y in zip(fast, full):
        np.testing.assert_allclose(x, y, atol=1e-2)


def test_fast_path_reuses_the_feature_cache(data, monkeypatch):
    import xner.models.features as features

    # one precision for training and dev prediction (bf16 prediction features are other features)
    monkeypatch.setattr("xner.models.device._cpu_has_bf16", lambda: False)
    calls = []
    compute = features._compute
    monkeypatch.setattr(features, "_compute", lambda model, encoded, *a: calls.append(len(encoded))
                        or compute(model, encoded, *a))
    train_tagger(data["train"], data["dev"], train_layers=1, epochs=2)
    train, dev = ({s.tokens for s in data[split]} for split in ("train", "dev"))
    distinct = [len(train), len(dev - train)]
    assert calls == distinct  # each distinct sentence once
    train_tagger(data["train"], data["dev"], train_layers=1, epochs=2, seed=1)  # another run, same data
    train_tagger(data["train"][:40], data["dev"], train_layers=1, epochs=1, seed=2)  # a subset
    assert calls == distinct


# --- early stopping ------------------------------------------------------------------------------

class Snapshots:
    """A hook that keeps the classifier weights at every epoch end."""

    def __init__(self):
        self.weights = []

    def on_epoch_end(self, tagger, record):
        self.weights.append(tagger.model.classifier.weight.detach().clone())
        return False


@pytest.mark.parametrize(("dev_f1", "patience", "epochs_run", "best"), [
    ([10, 30, 20, 25, 5, 50], 2, 4, 2),
    ([10, 30, 20, 25, 5, 50], 1, 3, 2),
    ([10, 30, 20, 25, 5, 50], 3, 5, 2),
    ([10, 30, 20, 25, 5, 50], None, 6, 6),
    ([30, 30, 30, 30], 2, 3, 1),  # a tie is no improvement
    ([1, 2, 3, 4], 1, 4, 4),
])
def test_early_stopping_restores_the_best_epoch(data, monkeypatch, dev_f1, patience, epochs_run, best):
    tagger = Tagger.create("tiny", LABELS, seed=0)
    scores = iter(dev_f1)
    monkeypatch.setattr(tagger, "evaluate", lambda sentences, **_: {"f1": next(scores)})
    snapshots = Snapshots()
    record = tagger.fit(data["train"][:16], dev=data["dev"][:2], hooks=[snapshots],
                        config=TrainConfig(epochs=len(dev_f1), lr=1e-2, batch_size=8, patience=patience))
    assert [h["dev_f1"] for h in record["history"]] == dev_f1[:epochs_run]
    assert record["best_epoch"] == best and len(snapshots.weights) == epochs_run
    torch.testing.assert_close(tagger.model.classifier.weight, snapshots.weights[best - 1], rtol=0, atol=0)
    if best != epochs_run:
        assert not torch.equal(tagger.model.classifier.weight, snapshots.weights[-1])


@pytest.mark.parametrize(("dev_f1", "warned"), [([0, 0, 0], True), ([0, 12.5, 0], False)])
def test_a_model_that_never_finds_an_entity_on_dev_is_reported_as_collapsed(data, monkeypatch, caplog, dev_f1, warned):
    import logging

    caplog.set_level(logging.WARNING, logger="xner.train")
    tagger = Tagger.create("tiny", LABELS, seed=0)
    scores = iter(dev_f1)
    monkeypatch.setattr(tagger, "evaluate", lambda sentences, **_: {"f1": next(scores)})
    tagger.fit(data["train"][:16], dev=data["dev"][:2], config=TrainConfig(epochs=3, lr=1e-2, batch_size=8, patience=None))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == (["dev F1 0.00 after each of 3 epochs: the model finds no entity (training collapsed to O; "
                         "a lower learning rate may help)"] if warned else [])


def test_without_dev_the_last_epoch_is_kept(data):
    snapshots = Snapshots()
    tagger = Tagger.create("tiny", LABELS, seed=0)
    record = tagger.fit(data["train"][:16], hooks=[snapshots], config=TrainConfig(epochs=2, lr=1e-2, patience=1))
    assert record["best_epoch"] == 2 and "dev_f1" not in record["history"][-1]
    assert torch.equal(tagger.model.classifier.weight, snapshots.weights[-1])


@pytest.mark.parametrize(("policy", "averaged"), [("last", [5]), ("average", [3, 4, 5])])
def test_last_and_average_policies_train_every_epoch_and_keep_their_weights(data, monkeypatch, policy, averaged):
    tagger = Tagger.create("tiny", LABELS, seed=0)
    scores = iter([50, 10, 10, 10, 10])  # best at epoch 1: early stopping would stop at 3 and restore 1
    monkeypatch.setattr(tagger, "evaluate", lambda sentences, **_: {"f1": next(scores)})
    snapshots = Snapshots()
    record = tagger.fit(data["train"][:16], dev=data["dev"][:2], hooks=[snapshots],
                        config=TrainConfig(epochs=5, lr=1e-2, batch_size=8, patience=2, checkpoint=policy))
    assert len(record["history"]) == 5 and record["config"]["checkpoint"] == policy
    expected = torch.stack([snapshots.weights[e - 1] for e in averaged]).mean(0)
    torch.testing.assert_close(tagger.model.classifier.weight, expected, rtol=0, atol=1e-7)


def test_an_unknown_checkpoint_policy_lists_the_valid_ones():
    with pytest.raises(XnerError, match=r"^TrainConfig: checkpoint: input should be 'best', 'last' or 'average', got 'swa'$"):
        TrainConfig(checkpoint="swa")


# --- probabilities and decoding ------------------------------------------------------------------

def test_probabilities_are_distributions_per_word(trained, data):
    probs = trained.predict_proba(data["test"])
    assert len(probs) == len(data["test"])
    for p, s in zip(probs, data["test"]):
        assert p.dtype == np.float32 and p.shape == (len(s), len(LABELS))
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    soft = trained.predict_proba(data["test"], temperature=4.0)
    for p, q in zip(probs, soft):
        np.testing.assert_allclose(q.sum(axis=1), 1.0, atol=1e-5)
        assert (q.max(axis=1) <= p.max(axis=1) + 1e-6).all()  # flatter...
        assert (q.argmax(axis=1) == p.argmax(axis=1)).all()  # ...same ranking


@pytest.mark.parametrize(("train_layers", "precision"), [(None, "fp32"), (1, "fp32"), (1, "bf16")])
def test_a_sentences_probabilities_do_not_depend_on_its_batch(data, monkeypatch, tmp_path, train_layers, precision):
    """Teacher soft labels are cached per sentence and shared between runs and volumes: a
    sentence labelled alone (fresh caches) gets the very bits it gets among all the others."""
    tagger = train_tagger(data["train"], train_layers=train_layers)
    together = tagger.predict_proba(data["test"], precision=precision)
    for i, sentence in enumerate(data["test"]):
        monkeypatch.setenv("XNER_CACHE", str(tmp_path / f"alone-{i}"))
        np.testing.assert_array_equal(tagger.predict_proba([sentence], precision=precision)[0], together[i])


def long_sentence(sentences, n_tokens: int = 600) -> Sentence:
    """One sentence of the first ``n_tokens`` words of ``sentences`` joined (a run-on document)."""
    tokens = [t for s in sentences for t in s.tokens][:n_tokens]
    tags = [t for s in sentences for t in s.tags][:n_tokens]
    return Sentence(tuple(tokens), tuple(tags), "de")


def test_a_600_word_sentence_is_predicted_whole(trained):
    sentence = long_sentence(easy_corpus(200, seed=7))
    encoded = trained.encode([sentence])
    assert len(encoded) > 1 and encoded.windowed == 1 and encoded.lengths.max() <= 256
    assert encoded.n_words.sum() == 600 and len(encoded.first_subword) == 600
    predicted = trained.predict([sentence])[0]
    assert len(predicted) == 600
    tail = range(300, 600)  # far beyond the first 256 subwords (~1,700 characters in all)
    gold_tail = [sentence.tags[i] for i in tail]
    assert sum(t != "O" for t in gold_tail) > 50
    assert entity_scores([gold_tail], [[predicted[i] for i in tail]])["f1"] > 90  # truncated, it was 0
    assert trained.evaluate([sentence])["f1"] > 90


def test_windows_see_context_and_small_windows_still_predict_every_word(trained):
    sentence = Sentence(("Pablo", "said", "Lima", "and", "Oxfam"))  # 5+4+4+3+5 characters
    assert trained.predict([sentence])[0] == ["B-PER", "O", "B-LOC", "O", "B-ORG"]
    assert trained.predict([sentence], max_length=10)[0] == ["B-PER", "O", "B-LOC", "O", "B-ORG"]
    assert [len(p) for p in trained.predict_proba([sentence, sentence], max_length=7)] == [5, 5]


def test_training_on_windowed_sentences_uses_every_word(data):
    sentences = [long_sentence(easy_corpus(60, seed=s), 150) for s in range(8)]
    tagger = Tagger.create("tiny", LABELS, seed=0)
    assert tagger.encode(sentences, max_length=64).windowed == 8
    tagger.fit(sentences, config=TrainConfig(epochs=4, max_length=64, **FAST))
    assert tagger.evaluate(data["test"])["f1"] > 90


@pytest.mark.parametrize(("tags", "repaired"), [
    ([], []),
    (["O", "O"], ["O", "O"]),
    (["I-PER"], ["B-PER"]),
    (["O", "I-PER", "I-PER"], ["O", "B-PER", "I-PER"]),
    (["B-PER", "I-PER", "I-LOC"], ["B-PER", "I-PER", "B-LOC"]),
    (["B-ORG", "O", "I-ORG"], ["B-ORG", "O", "B-ORG"]),
    (["B-LOC", "B-LOC", "I-LOC"], ["B-LOC", "B-LOC", "I-LOC"]),
    (["I-DATE", "I-DATE"], ["B-DATE", "I-DATE"]),
])
def test_repair_iob2(tags, repaired):
    assert repair_iob2(tags) == repaired


# --- persistence -----------------------------------------------------------------------------------

@pytest.mark.parametrize("train_layers", [None, 1])
def test_save_load_round_trip(data, tmp_path, train_layers):
    tagger = train_tagger(data["train"][:48], epochs=2, train_layers=train_layers)
    directory = tagger.save(tmp_path / "model", name="de-test")
    loaded = Tagger.load(directory)
    assert_same_predictions(tagger, loaded, data["test"])
    assert loaded.labels == LABELS and loaded.n_frozen == tagger.n_frozen
    assert (loaded.base_name, loaded.base_fingerprint) == ("tiny", tagger.backbone.fingerprint)
    assert loaded.metadata["name"] == "de-test" and loaded.metadata["languages"] == ["de"]
    assert loaded.metadata["trainings"][0]["history"] == json.loads(json.dumps(
        tagger.metadata["trainings"][0]["history"]))
    assert loaded.fingerprint == tagger.fingerprint
    from transformers import AutoModelForTokenClassification

    plain = AutoModelForTokenClassification.from_pretrained(directory)  # an ordinary HF directory
    assert plain.config.id2label == dict(enumerate(LABELS))


@pytest.mark.parametrize("train_layers", [None, 1])
def test_compact_save_keeps_only_trained_tensors_and_reloads_exactly(data, tmp_path, train_layers):
    tagger = train_tagger(data["train"][:48], epochs=2, train_layers=train_layers)
    full = tagger.save(tmp_path / "full")
    compact = tagger.save(tmp_path / "compact", compact=True)
    from safetensors import safe_open

    with safe_open(compact / "xner-delta.safetensors", "pt") as delta:
        stored = set(delta.keys())
    with safe_open(full / "model.safetensors", "pt") as weights:
        everything = set(weights.keys())
    assert any(name.startswith("classifier.") for name in stored)
    if train_layers == 1:  # frozen embeddings and bottom layer are left out
        assert stored == {name for name in everything if "encoder.layer.1." in name or "classifier" in name}
    else:  # the embeddings are frozen by default: every other tensor trained
        assert stored == {name for name in everything if ".embeddings." not in name}
    assert not (compact / "model.safetensors").exists() and json.loads(
        (compact / "xner.json").read_text())["weights"] == "delta"
    loaded = Tagger.load(compact)
    assert loaded.fingerprint == tagger.fingerprint == Tagger.load(full).fingerprint
    assert loaded.n_frozen == tagger.n_frozen and loaded.backbone.name == "tiny"
    assert_same_predictions(tagger, loaded, data["test"])
    for folder in (full, compact):  # the recorded fingerprint is the hash of the weights a load rebuilds
        reloaded = Tagger.load(folder)
        assert json.loads((folder / "xner.json").read_text())["fingerprint"] == reloaded.fingerprint
        del reloaded.__dict__["fingerprint"]
        assert reloaded.fingerprint == tagger.fingerprint


def test_dropout_option_sets_every_dropout_and_none_restores_the_pretrained_rates(data):
    tagger = Tagger.create("tiny", LABELS, seed=0)
    pretrained = dict(tagger.pretrained_dropout)
    assert pretrained and any(rate > 0 for rate in pretrained.values())

    def rates() -> dict[str, float]:
        return {name: m.p for name, m in tagger.model.named_modules() if isinstance(m, torch.nn.Dropout)}

    tagger.fit(data["train"][:16], config=TrainConfig(**{"epochs": 1, **FAST, "dropout": 0.0}))
    assert set(rates().values()) == {0.0}
    tagger.model.train()  # without dropout, training mode is deterministic
    inputs = tagger.backbone.tokenizer(["a b c"], return_tensors="pt")
    first, second = (tagger.model(**inputs).logits for _ in range(2))
    assert torch.equal(first, second)
    tagger.fit(data["train"][:16], config=TrainConfig(**{"epochs": 1, **FAST}))
    assert rates() == pretrained


def test_a_model_saved_without_a_recorded_fingerprint_is_hashed_on_load(data, tmp_path):
    tagger = train_tagger(data["train"][:16], epochs=1)
    directory = tagger.save(tmp_path / "m", compact=True)
    metadata = json.loads((directory / "xner.json").read_text())
    del metadata["fingerprint"]
    (directory / "xner.json").write_text(json.dumps(metadata))
    write_checksums(directory)  # as an earlier xner saved it
    loaded = Tagger.load(directory)
    assert "fingerprint" not in loaded.__dict__ and loaded.fingerprint == tagger.fingerprint


def test_compact_model_refuses_a_changed_base(data, tmp_path):
    directory = train_tagger(data["train"][:16], epochs=1).save(tmp_path / "m", compact=True)
    metadata = json.loads((directory / "xner.json").read_text())
    (directory / "xner.json").write_text(json.dumps({**metadata, "backbone_fingerprint": "0" * 64}))
    write_checksums(directory)  # as saved against another base
    with pytest.raises(XnerError, match=r"m: saved as a delta against model 'tiny' with fingerprint 000000000000"):
        Tagger.load(directory)


def test_compact_model_with_unreadable_weights(data, tmp_path):
    directory = train_tagger(data["train"][:16], epochs=1).save(tmp_path / "m", compact=True)
    (directory / "xner-delta.safetensors").write_bytes(b"truncated")
    write_checksums(directory)  # checksums pass: the reader itself must fail clearly
    with pytest.raises(XnerError, match=r"xner-delta.safetensors: cannot read the model's weights") as err:
        Tagger.load(directory)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("make", [lambda p: p / "missing", lambda p: p])
def test_load_a_non_model_directory(tmp_path, make):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(XnerError, match="not an xner model directory.*xner train") as err:
        Tagger.load(make(tmp_path))
    assert "\n" not in str(err.value)


# --- targets and errors ----------------------------------------------------------------------------

def test_soft_targets_train_like_labels(data):
    train = data["train"][:48]
    eye = np.eye(len(LABELS), dtype=np.float32)
    targets = [eye[[LABELS.index(t) for t in s.tags]] for s in train]
    unlabeled = [s.unlabeled() for s in train]
    from xner.distillation.losses import make_loss

    tagger = Tagger.create("tiny", LABELS, seed=0)
    tagger.fit(unlabeled, targets=targets, loss=make_loss("mse"), config=TrainConfig(epochs=3, **FAST))
    assert tagger.evaluate(data["test"])["f1"] > 80


@pytest.mark.parametrize(("train", "targets", "message"), [
    ([Sentence(("Ada", "spoke"), ("B-PER", "O")), Sentence(("in", "Accra"), ("O", "B-GPE"))], None,
     r"training sentence 1: tag 'B-GPE' is not among the model's labels"),
    ([Sentence(("Ada", "spoke"))], None, "training sentence 0 has no labels and no targets"),
    ([Sentence(("Ada", "spoke"))], [np.zeros(2, np.int64)] * 2, "2 target arrays for 1 sentences"),
])
def test_training_data_errors(train, targets, message):
    tagger = Tagger.create("tiny", LABELS, seed=0)
    with pytest.raises(XnerError, match=message) as err:
        tagger.fit(train, targets=targets, config=TrainConfig(epochs=1))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("labels", [(), ("B-PER", "O"), ("PER",)])
def test_labels_must_start_with_outside(labels):
    with pytest.raises(XnerError, match="labels must start with 'O'"):
        Tagger.create("tiny", labels)


def test_train_layers_out_of_range(data):
    with pytest.raises(XnerError, match="train_layers must be between 0 and 2, got 3"):
        Tagger.create("tiny", LABELS).fit(data["train"][:4], config=TrainConfig(train_layers=3))
    with pytest.raises(XnerError, match=r"^TrainConfig: train_layers: must be >= 0$"):
        TrainConfig(train_layers=-1)


def test_progress_bar_option(data, capsys):
    tagger = Tagger.create("tiny", LABELS, seed=0)
    tagger.fit(data["train"][:8], config=TrainConfig(epochs=1, batch_size=4), progress=True)
    assert "epoch 1/1" in capsys.readouterr().err


def test_model_directory_holds_weights_tokenizer_and_metadata(trained, tmp_path):
    directory = Path(trained.save(tmp_path / "m"))
    names = {p.name for p in directory.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "xner.json"} <= names
    metadata = json.loads((directory / "xner.json").read_text())
    assert metadata["labels"] == list(LABELS) and metadata["n_frozen"] == 0 and metadata["backbone"] == "tiny"


def test_fast_path_after_training_the_bottom_uses_the_trained_bottom(data):
    """The feature cache holds the *pretrained* bottom's output; a tagger whose bottom layers
    an earlier training changed must neither read it nor write its own features into it."""
    train, test = data["train"][:48], data["test"]
    train_tagger(train, epochs=1, train_layers=1)  # another run fills the cache for this data
    tagger = train_tagger(train, epochs=2)  # every layer trains
    tagger.fit(train, config=TrainConfig(epochs=1, train_layers=1, **FAST))  # then only the top
    fast = tagger.predict_proba(train + test)
    tagger.n_frozen = 0
    for x, y in zip(fast, tagger.predict_proba(train + test)):
        np.testing.assert_allclose(x, y, atol=1e-2)
    pretrained = Tagger.create("tiny", LABELS)
    pretrained.n_frozen = 1
    cached = pretrained._prepare(test, 256).features  # what a pretrained run now reads
    with torch.inference_mode():
        for i, s in enumerate(test[:5]):
            ids = torch.from_numpy(cached.encoded.ids(i).astype(np.int64))[None]
            states = pretrained.model.base_model(input_ids=ids, output_hidden_states=True).hidden_states[1]
            np.testing.assert_allclose(np.asarray(cached.rows(i), np.float32), states[0].numpy(), atol=5e-3)


@pytest.mark.parametrize("train_layers", [None, 1])
def test_sentences_without_words(data, train_layers):
    """Empty sentences (and sentences of characters with no subword) predict nothing and, bucketed
    together into one batch by length, must not turn the loss into NaN."""
    wordless = [Sentence((), (), "de"), Sentence(("\u200b",), ("O",), "de")] * 4
    tagger = train_tagger(data["train"][:40] + wordless, epochs=2, train_layers=train_layers, batch_size=4)
    losses = [h["loss"] for h in tagger.metadata["trainings"][0]["history"]]
    assert all(np.isfinite(losses)) and tagger.evaluate(data["test"])["f1"] > 50
    assert tagger.predict([]) == [] and tagger.predict([Sentence(())]) == [[]]
    assert tagger.predict([Sentence(("\u200b",))]) == [["O"]]


@pytest.mark.parametrize(("device", "precision", "dtype"), [
    ("cpu", "auto", None), ("cpu", "fp32", None), ("cpu", "bf16", torch.bfloat16),
    ("cuda", "fp32", None),
])
def test_autocast_policy(device, precision, dtype):
    from xner.models.device import autocast

    context = autocast(torch.device(device), precision)
    assert (getattr(context, "fast_dtype", None)) == dtype


@pytest.mark.parametrize(("native_bf16", "dtype"), [(True, torch.bfloat16), (False, None)])
def test_mixed_precision_uses_bf16_only_where_the_cpu_computes_it(monkeypatch, native_bf16, dtype):
    from xner.models import device

    monkeypatch.setattr(device, "_cpu_has_bf16", lambda: native_bf16)
    assert getattr(device.autocast(torch.device("cpu"), "mixed"), "fast_dtype", None) == dtype


def test_xner_device_pins_the_device_and_names_a_bad_value(monkeypatch):
    monkeypatch.setenv("XNER_DEVICE", "cpu")
    assert Tagger.create("tiny", LABELS).device == torch.device("cpu")
    for value, message in [("gpu0", "is not a device"), ("meta", "runs on cpu or cuda"), ("cuda:64", "CUDA GPU")]:
        monkeypatch.setenv("XNER_DEVICE", value)
        with pytest.raises(XnerError, match=rf"^XNER_DEVICE='{value}'.*{message}"):
            Tagger.create("tiny", LABELS)


def test_seed_everything_makes_torch_and_numpy_repeat():
    from xner.models.device import seed_everything

    seed_everything(5)
    first = (torch.rand(3), np.random.rand(3))
    seed_everything(5)
    again = (torch.rand(3), np.random.rand(3))
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1])


@pytest.mark.parametrize(("precision", "during"), [("bf16", "eager"), ("fp32", "sdpa")])
def test_bf16_cpu_training_uses_eager_attention_and_restores_it(data, monkeypatch, precision, during):
    """bf16 on CPU trains with eager attention (SDPA's CPU backward is slow there), fused AdamW,
    and hands the model back with SDPA for prediction; fp32 training is left as it was."""
    from xner.models import device

    tagger = Tagger.create("tiny", LABELS, seed=0)
    tagger.model.set_attn_implementation("sdpa")
    seen, fused = set(), []

    def loss(word_logits, targets):
        seen.add(tagger.model.config._attn_implementation)
        return torch.nn.functional.cross_entropy(word_logits, targets)

    adamw = torch.optim.AdamW

    def recording(*args, **kwargs):
        fused.append(kwargs.get("fused"))
        return adamw(*args, **kwargs)

    monkeypatch.setattr(torch.optim, "AdamW", recording)
    tagger.fit(data["train"][:32], config=TrainConfig(epochs=2, train_layers=1, precision=precision), loss=loss)
    assert seen == {during} and fused == [True if precision == "bf16" else None]
    assert tagger.model.config._attn_implementation == "sdpa"
    predicted = tagger.predict(data["test"])  # prediction still runs after the switch back
    assert [len(tags) for tags in predicted] == [len(s) for s in data["test"]]
    assert {tag for tags in predicted for tag in tags} <= set(LABELS)
