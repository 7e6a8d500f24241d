"""Teacher weightings (uniform, given, URIEL, language id), URIEL distances, sentence vectors.

Weightings only read a teacher's recorded training language (and, for ``langid``, the
pretrained encoder), so light stand-ins serve as teachers here.
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_tagger import LABELS, easy_corpus

from xner.data.corpus import Sentence
from xner.errors import XnerError
from xner.models import load_backbone
from xner.models.encoding import encode_corpus
from xner.models.sentence_vectors import sentence_vectors
from xner.distillation.weighting import WEIGHTINGS, resolve_weighting, teacher_language

pytestmark = pytest.mark.usefixtures("one_thread")

CYRILLIC = {
    "O": ("и", "в", "не", "на", "что", "был", "с", "около"),
    "PER": ("Пётр", "Павел", "Полина"),
    "ORG": ("Облсовет", "Оргкомитет"),
    "LOC": ("Лиссабон", "Лондон", "Луга"),
}
"""A second synthetic language, in another script."""


def teacher(lang: str | None):
    return SimpleNamespace(metadata={"languages": [lang] if lang else []})


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XNER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("xner.models.features._STORES", {})


POOL = [Sentence(("Lima", "is", "far"), None, "de")] * 3


# --- registry ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "resources", "resolved"), [
    ("uniform", {}, "uniform.v1"),
    ("uniform.v1", {}, "uniform.v1"),
    ("given", {"by_language": {"nl": 1}}, "given.v1"),
    ("uriel", {"tau": 0.5}, "uriel.v1"),
    ("langid", {"sources": {}}, "langid.v1"),
])
def test_resolve_by_versioned_name(name, resources, resolved):
    weighting = resolve_weighting(name, **resources)
    assert weighting.name == resolved and isinstance(weighting, WEIGHTINGS[resolved])
    assert resolve_weighting(weighting) is weighting


@pytest.mark.parametrize(("name", "resources", "message"), [
    ("entity", {}, r"given, langid, uniform, uriel"),
    ("uniform.v2", {}, r"given, langid, uniform, uriel"),
    ("given", {}, r"teacher weighting 'given.v1': .*by_language"),
    ("uniform", {"tau": 1}, r"teacher weighting 'uniform.v1': .*tau"),
])
def test_resolve_errors(name, resources, message):
    with pytest.raises(XnerError, match=message) as err:
        resolve_weighting(name, **resources)
    assert "\n" not in str(err.value)


def test_teacher_language_must_be_recorded():
    assert teacher_language(teacher("nl")) == "nl"
    with pytest.raises(XnerError, match="no recorded training language"):
        teacher_language(teacher(None))


# --- static weightings ---------------------------------------------------------------------------------

@pytest.mark.parametrize("n_teachers", [1, 2, 3])
def test_uniform(n_teachers):
    weights = resolve_weighting("uniform").weights([teacher("nl")] * n_teachers, POOL)
    np.testing.assert_allclose(weights, np.full((3, n_teachers), 1 / n_teachers))


@pytest.mark.parametrize(("given", "expected"), [
    ({"nl": 1, "en": 1}, [0.5, 0.5]),
    ({"nl": 3, "en": 1}, [0.75, 0.25]),
    ({"nl": 0.2, "en": 0.6, "fr": 9}, [0.25, 0.75]),  # extra languages are ignored
    ({"nl": 0, "en": 2}, [0.0, 1.0]),
])
def test_given_weights_are_normalised(given, expected):
    weights = resolve_weighting("given", by_language=given).weights([teacher("nl"), teacher("en")], POOL)
    np.testing.assert_allclose(weights, np.tile(expected, (3, 1)))


@pytest.mark.parametrize(("given", "message"), [
    ({"nl": 1}, "no weight given for teacher language 'en'"),
    ({"nl": -1, "en": 2}, "non-negative and not all zero"),
    ({"nl": 0, "en": 0}, "non-negative and not all zero"),
])
def test_given_weight_errors(given, message):
    with pytest.raises(XnerError, match=message):
        resolve_weighting("given", by_language=given).weights([teacher("nl"), teacher("en")], POOL)


@pytest.mark.slow
def test_uriel_favours_the_closer_language():
    from xner.typology import DEFAULT_FEATURES, uriel_distance

    assert uriel_distance("deu", "deu") == pytest.approx(0, abs=1e-9)
    assert uriel_distance("deu", "nld") == pytest.approx(uriel_distance("nld", "deu"))
    assert uriel_distance("deu", "nld") < uriel_distance("deu", "rus")
    assert uriel_distance("swa", "swh") == pytest.approx(0, abs=1e-9)  # macrolanguage alias
    # URIEL has no family vector for Twi: that set is left out, not a NaN distance
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value" warning from a cosine with a zero vector
        assert 0 < uriel_distance("twi", "ewe") < 1
    assert uriel_distance("twi", "ewe") == pytest.approx(uriel_distance("twi", "ewe", DEFAULT_FEATURES[:3] + ("geo",)))
    assert np.isnan(uriel_distance("twi", "ewe", ("fam",)))
    with pytest.raises(XnerError, match="'qqq' is not in the URIEL database"):
        uriel_distance("deu", "qqq")

    teachers = [teacher("nl"), teacher("ru")]
    weights = resolve_weighting("uriel").weights(teachers, POOL)
    assert weights.shape == (3, 2) and weights[0, 0] > 0.8 > 0.2 > weights[0, 1]
    np.testing.assert_allclose(weights.sum(axis=1), 1)
    flatter = resolve_weighting("uriel", tau=10.0).weights(teachers, POOL)
    assert 0.5 < flatter[0, 0] < weights[0, 0]
    with pytest.raises(XnerError, match="target language"):
        resolve_weighting("uriel").weights(teachers, [Sentence(("x",))])


# --- language identification ----------------------------------------------------------------------------

def test_langid_weights_favour_the_language_of_each_sentence():
    tiny = load_backbone("tiny")
    sources = {"nl": easy_corpus(40, seed=1, lang="nl"), "ru": easy_corpus(40, seed=2, lang="ru", lexicon=CYRILLIC)}
    latin, cyrillic = easy_corpus(10, seed=3, lang="de"), easy_corpus(10, seed=4, lang="de", lexicon=CYRILLIC)
    pool = [s for pair in zip(latin, cyrillic) for s in pair]  # alternating scripts
    weighting = resolve_weighting("langid", sources=sources, backbone=tiny)
    weights = weighting.weights([teacher("nl"), teacher("ru")], pool)
    assert weights.shape == (20, 2)
    np.testing.assert_allclose(weights.sum(axis=1), 1, atol=1e-9)
    assert (weights[0::2, 0] > 0.6).all() and (weights[1::2, 1] > 0.6).all()  # each sentence's own language
    assert weights[0::2, 0].mean() > 0.75 and weights[1::2, 1].mean() > 0.75
    assert weighting.accuracy == pytest.approx(1.0)
    reversed_order = weighting.weights([teacher("ru"), teacher("nl")], pool)  # columns follow the teachers
    np.testing.assert_allclose(reversed_order, weights[:, ::-1], atol=1e-4)


@pytest.mark.parametrize("compact", [True, False])
def test_langid_works_with_teachers_saved_compact_or_in_full(tmp_path, compact):
    """A teacher of plain ``xner train`` (saved in full) once crashed the classifier's encoder."""
    from xner.models.tagger import Tagger, TrainConfig

    sources = {"nl": easy_corpus(12, seed=1, lang="nl"), "ru": easy_corpus(12, seed=2, lang="ru", lexicon=CYRILLIC)}
    teachers = []
    for lang in ("nl", "ru"):
        tagger = Tagger.create("tiny", LABELS, seed=0)
        tagger.fit(sources[lang], config=TrainConfig(epochs=1, train_layers=1))
        tagger.save(tmp_path / lang, compact=compact)
        teachers.append(Tagger.load(tmp_path / lang))
    pool = easy_corpus(4, seed=3, lang="de") + easy_corpus(4, seed=4, lang="de", lexicon=CYRILLIC)
    weights = resolve_weighting("langid", sources=sources).weights(teachers, pool)
    expected = resolve_weighting("langid", sources=sources, backbone=load_backbone("tiny")).weights(teachers, pool)
    np.testing.assert_allclose(weights, expected)
    assert (weights[:4, 0] > 0.5).all() and (weights[4:, 1] > 0.5).all()


def test_langid_needs_sentences_of_every_teacher_language():
    weighting = resolve_weighting("langid", sources={"nl": easy_corpus(5)}, backbone=load_backbone("tiny"))
    with pytest.raises(XnerError, match=r"no source sentences for teacher language\(s\) \['ru'\]"):
        weighting.weights([teacher("nl"), teacher("ru")], POOL)


def test_sentence_vectors_are_mean_final_states():
    tiny = load_backbone("tiny")
    sentences = easy_corpus(6, seed=5) + easy_corpus(2, seed=6, lexicon=CYRILLIC)
    vectors = sentence_vectors(tiny, sentences)
    assert vectors.shape == (8, 32) and vectors.dtype == np.float32
    model = tiny.token_classification_model(["O"]).eval()
    encoded = encode_corpus(sentences, tiny.tokenizer)
    with torch.inference_mode():
        for i in range(len(sentences)):
            ids = torch.from_numpy(encoded.ids(i).astype(np.int64))[None]
            expected = model.base_model(input_ids=ids).last_hidden_state[0].mean(dim=0).numpy()
            np.testing.assert_allclose(vectors[i], expected, atol=5e-3)
    np.testing.assert_array_equal(sentence_vectors(tiny, sentences[:3]), vectors[:3])  # cached rows
