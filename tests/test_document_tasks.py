"""Document tasks: registry, headline questions, category maps, accuracy CIs, the document model
(tiny backbone: fast path equals full forward, save/load bit for bit), P4/P5 and word overlap."""

from __future__ import annotations

import numpy as np
import pytest

from xner.data.news import ChoiceItem, Document
from xner.errors import XnerError
from xner.models.checksums import CHECKSUMS_FILE
from xner.models.tagger import Tagger, TrainConfig
from xner.tasks import get_task, list_tasks
from xner.tasks.headline import choice_items
from xner.models.document_model import DocumentModel
from xner.perturb.documents import document_resources, perturb_documents, word_overlap
from xner.tasks.scoring import accuracy_scores
from xner.tasks.topic import check_categories, map_categories


@pytest.mark.parametrize(("name", "versioned"), [("ner", "ner.v1"), ("headline", "headline.v1"), ("topic.v1", "topic.v1")])
def test_task_names_resolve_to_versions(name, versioned):
    assert get_task(name).name == versioned


def test_unknown_task_lists_the_valid_ones():
    with pytest.raises(XnerError, match="unknown task 'summary'; valid: .*headline.*topic"):
        get_task("summary")
    assert list_tasks() == ["headline.v1", "ner.v1", "topic.v1"]


def _docs(n: int, lang: str = "yor") -> list[Document]:
    return [Document(f"text {i}", headline=f"title {i}", category="sports", lang=lang, source=f"f:{i}") for i in range(n)]


def test_questions_are_seeded_and_the_same_for_every_call():
    docs = _docs(30)
    items = choice_items(docs, k=4, seed=0)
    assert items == choice_items(docs, k=4, seed=0) != choice_items(docs, k=4, seed=1)
    for doc, item in zip(docs, items):
        assert item.candidates[item.answer] == doc.headline and item.text == doc.text
        assert len(set(item.candidates)) == 4
    assert len({item.answer for item in items}) == 4  # the right headline is not always first


@pytest.mark.parametrize(
    ("docs", "k", "message"),
    [
        (_docs(3), 4, "3 distinct headlines, fewer than the k=4"),
        (_docs(5), 1, "at least 2 candidates"),
        ([Document("text", headline=None, source="a.tsv:7")] + _docs(5), 4, "a.tsv:7: no headline"),
    ],
)
def test_question_errors(docs, k, message):
    with pytest.raises(XnerError, match=message):
        choice_items(docs, k=k)


def test_categories_are_mapped_explicitly_or_refused():
    docs = [Document("a", category="sports"), Document("b", category="religion"), Document("c", category="tech")]
    mapped = map_categories(docs, {"religion": "drop", "tech": "technology"})
    assert [d.category for d in mapped] == ["sports", "technology"]
    with pytest.raises(XnerError, match=r"yor test: categories religion, tech are not among the model's categories "
                                        r"\(health, sports\); map them explicitly \(category map, e.g. religion=drop\)"):
        check_categories(docs, ("health", "sports"), "yor test")


def test_accuracy_and_its_bootstrap_interval():
    scores = accuracy_scores([True] * 30 + [False] * 10, n_resamples=500, seed=1)
    assert scores["accuracy"] == 75.0 and scores["examples"] == 40
    assert 55 < scores["accuracy_lo"] < 75 < scores["accuracy_hi"] < 90
    assert scores == accuracy_scores([True] * 30 + [False] * 10, n_resamples=500, seed=1)
    assert accuracy_scores([True] * 5, n_resamples=50)["accuracy_lo"] == 100.0
    with pytest.raises(XnerError, match="no examples"):
        accuracy_scores([])


TOPICS = {"sports": ("ball", "goal", "team", "match"), "health": ("doctor", "virus", "clinic", "fever")}


def _topic_docs(n: int, seed: int = 0) -> list[Document]:
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n):
        category = ("sports", "health")[i % 2]
        words = [TOPICS[category][j] for j in rng.integers(4, size=10)]
        docs.append(Document(" ".join(words), headline=f"{category} {i}", category=category, lang="yor"))
    return docs


@pytest.mark.parametrize("task", ["topic", "headline"])
def test_cached_bottom_features_give_the_full_model_scores(task, tmp_path, monkeypatch):
    monkeypatch.setenv("XNER_CACHE", str(tmp_path))
    docs = _topic_docs(12)
    examples = docs if task == "topic" else choice_items(docs, k=3)
    model = DocumentModel.create("tiny", task=task, labels=("health", "sports"), seed=3)
    full = model.predict_scores(examples)
    model.n_frozen = 1
    fast = model.predict_scores(examples)
    assert full.shape == (12, 2 if task == "topic" else 3)
    np.testing.assert_allclose(fast, full, atol=2e-3)
    np.testing.assert_allclose(full.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("compact", [True, False])
def test_training_learns_topics_and_saved_models_reload_exactly(compact, tmp_path, monkeypatch):
    monkeypatch.setenv("XNER_CACHE", str(tmp_path / "cache"))
    model = DocumentModel.create("tiny", task="topic", labels=("health", "sports"), seed=0)
    record = model.fit(_topic_docs(40), dev=_topic_docs(10, seed=1),
                       config=TrainConfig(epochs=10, lr=5e-3, batch_size=8, warmup_ratio=0, patience=None))
    assert record["history"][-1]["loss"] < record["history"][0]["loss"]
    result = model.evaluate(_topic_docs(20, seed=2), n_resamples=100)
    assert result["accuracy"] >= 80
    assert [p["gold"] for p in result["predictions"]] == ["sports", "health"] * 10
    model.save(tmp_path / "model", compact=compact)
    loaded = DocumentModel.load(tmp_path / "model")
    assert (loaded.task, loaded.labels) == ("topic.v1", ("health", "sports"))
    np.testing.assert_array_equal(loaded.predict_scores(_topic_docs(6)), model.predict_scores(_topic_docs(6)))
    assert loaded.fingerprint == model.fingerprint  # as recorded at save time
    del loaded.__dict__["fingerprint"]
    assert loaded.fingerprint == model.fingerprint  # and as hashed from the reloaded weights


def test_document_model_refuses_ner_and_unknown_categories():
    with pytest.raises(XnerError, match="not a document task"):
        DocumentModel.create("tiny", task="ner")
    model = DocumentModel.create("tiny", task="topic", labels=("health", "sports"))
    with pytest.raises(XnerError, match="categories politics are not among the model's"):
        model.evaluate([Document("x", category="politics")])



@pytest.fixture
def saved_topic_model(tmp_path, monkeypatch):
    monkeypatch.setenv("XNER_CACHE", str(tmp_path / "cache"))
    model = DocumentModel.create("tiny", task="topic", labels=("health", "sports"), seed=0)
    return model.save(tmp_path / "topic", compact=True)


def test_ner_loaders_refuse_a_document_model_in_one_line(saved_topic_model):
    # xner predict, distill and NER evaluation load with Tagger.load: a headline or topic model
    # there used to fail inside torch with a classifier size mismatch
    with pytest.raises(XnerError, match=r"topic: a topic\.v1 model \(a document task\), not an NER tagger; "
                                        r"`xner evaluate` scores it"):
        Tagger.load(saved_topic_model)


@pytest.mark.parametrize(("metadata", "reason"), [("{", "JSONDecodeError"), ("[]", "not a JSON object"),
                                                   ('{"task": "topic"}', "KeyError: 'labels'")])
def test_document_model_with_unreadable_metadata_fails_in_one_line(saved_topic_model, metadata, reason):
    (saved_topic_model / CHECKSUMS_FILE).unlink()  # a folder saved before checksums: read unverified
    (saved_topic_model / "xner.json").write_text(metadata)
    with pytest.raises(XnerError, match=rf"topic/xner\.json: corrupt model metadata \({reason}"):
        DocumentModel.load(saved_topic_model)

class _Vectors:
    """Word vectors by hand: a word's vector is its row in a fixed table (others: zero)."""

    fingerprint = "hand-made"
    table = {"cat": [1.0, 0.0], "kot": [0.9, 0.1], "sat": [0.0, 1.0], "siedzi": [0.1, 0.9], "mat": [1.0, 1.0],
             "dywan": [0.8, 1.0]}

    def __call__(self, words):
        return np.array([self.table.get(w, [0.0, 0.0]) for w in words], dtype=np.float32)


# The target's 100 most frequent words are stopwords (never replaced, never replacements).
_FREQUENT = " ".join(f"z{a}{b}" for a in "abcdefghij" for b in "abcdefghij")


def _resources():
    target_train = [Document(_FREQUENT, lang="pl"), Document(_FREQUENT, lang="pl"), Document("kot siedzi dywan", lang="pl")]
    source_train = [Document("the cat sat on the mat", lang="en")]
    return document_resources(target_train, source_train, load_vectors=_Vectors, train_lang="en")


def test_p4_replaces_shared_words_by_the_nearest_unseen_word_and_keeps_the_rest():
    test = [Document("cat, sat (mat)!", category="x", lang="pl")]
    (edited,), summary = perturb_documents(test, "nearest-unseen-word", _resources(), seed=0)
    assert edited.text == "kot, siedzi (dywan)!" and edited.category == "x"
    assert summary == {"kind": "nearest-unseen-word.v1", "words": 3, "words_edited": 3, "documents_edited": 1}
    assert word_overlap(test, [Document("the cat sat on the mat")]) == 100.0
    assert word_overlap([edited], [Document("the cat sat on the mat")]) == 0.0


def test_p5_draws_seeded_unseen_words_and_leaves_questions_candidates_alone():
    item = ChoiceItem("cat sat mat cat", ("a", "b"), 1, "pl")
    first, _ = perturb_documents([item], "random-unseen-word", _resources(), seed=4)
    again, _ = perturb_documents([item], "random-unseen-word", _resources(), seed=4)
    assert first == again and first[0].candidates == ("a", "b") and first[0].answer == 1
    assert set(first[0].text.split()) <= {"kot", "siedzi", "dywan"}
    with pytest.raises(XnerError, match="'mask-entity' is not a document perturbation"):
        perturb_documents([item], "mask-entity", _resources())
