"""Perturbations: table tests per kind, registry and errors, and hypothesis properties."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from xner.data.corpus import Sentence, entity_spans
from xner.errors import XnerError
from xner.models.word_vectors import WordVectors
from xner.perturb import (
    PERTURBATIONS,
    ContextNeighbours,
    Edit,
    PerturbationResources,
    apply_edits,
    get_perturbation,
    list_perturbations,
    perturb,
    perturb_corpus,
)

# L2 (target) training data: vocabulary, stopwords ("die" is the most frequent word), names
TARGET_TRAIN = [
    Sentence(("Berlin", "ist", "die", "Stadt"), ("B-LOC", "O", "O", "O"), "de"),
    Sentence(("die", "Katze", "von", "Olaf", "Scholz"), ("O", "O", "O", "B-PER", "I-PER"), "de"),
    Sentence(("die", "Haus", "in", "Paris"), ("O", "O", "O", "B-LOC"), "de"),
    Sentence(("Siemens", "AG", "baut", "Baum"), ("B-ORG", "I-ORG", "O", "O"), "de"),
    Sentence(("Merkel", "und", "die", "Bahn"), ("B-PER", "O", "O", "B-ORG"), "de"),
]
# L1 (training language of the model under test)
SOURCE_TRAIN = [
    Sentence(("Merkel", "visited", "Paris", "house"), ("B-PER", "O", "B-LOC", "O"), "en"),
    Sentence(("Bahn", "in", "Katze", "die"), ("B-ORG", "O", "O", "O"), "en"),
]
# unseen-context candidates: L2 context words, letters only, not stopwords, absent from L1
CANDIDATES = ("Baum", "Haus", "Stadt", "baut", "ist", "und", "von")
WORDS = sorted({t for s in TARGET_TRAIN + SOURCE_TRAIN for t in s.tokens} | {"Rom", "Tag"})


def make_vectors(overrides: dict[str, list[float]] | None = None) -> WordVectors:
    """Word-level tokenizer over WORDS with seeded 8-d embeddings (some rows set by hand)."""
    vocab = {"[UNK]": 0} | {w: i + 1 for i, w in enumerate(WORDS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
    table = np.random.default_rng(0).normal(size=(len(vocab), 8)).astype(np.float32)
    for word, row in (overrides or {}).items():
        table[vocab[word]] = row + [0.0] * (8 - len(row))
    return WordVectors(tokenizer, table)


# house ~ Haus, in/Katze (shared with L1 context) ~ Baum/Stadt
VECTORS = make_vectors(
    {
        "house": [1, 0], "Haus": [0.9, 0.1], "Baum": [0, 1], "Katze": [0.1, 1],
        "Stadt": [0, 0, 1], "in": [0, 0, 1],
    }
)


@pytest.fixture(scope="module")
def resources() -> PerturbationResources:
    return PerturbationResources.from_sentences(
        TARGET_TRAIN,
        source_train=SOURCE_TRAIN,
        load_vectors=lambda: VECTORS,
        stopword_count=1,
        train_lang="en",
    )


def test_resources_are_built_from_the_training_data(resources):
    assert resources.stopwords == {"die"}
    assert resources.source_mentions == {("PER", ("Merkel",)), ("LOC", ("Paris",)), ("ORG", ("Bahn",))}
    assert resources.unseen_names["PER"] == (("Olaf", "Scholz"),)  # Merkel is seen in L1
    assert resources.unseen_names["LOC"] == (("Berlin",),)
    assert resources.names["ORG"] == (("Bahn",), ("Siemens", "AG"))
    assert "visited" not in resources.vocabulary and "Katze" in resources.vocabulary
    # shared context words: in L1's O-words, not stopwords, 1-character words or punctuation
    shared = [w for w in ("in", "Katze", "die", "house", "Haus", "x") if resources.shares_context(w)]
    assert shared == ["in", "Katze", "house"]
    # candidates: L2 context words outside every L1 token, stopwords excluded
    assert resources.neighbours.candidates == CANDIDATES


TEST = Sentence(("Merkel", "in", "Paris", "die", "Katze", "!"), ("B-PER", "O", "B-LOC", "O", "O", "O"), "de")


@pytest.mark.parametrize(
    ("kind", "tokens", "tags"),
    [
        (
            "unseen-entity",
            ("Olaf", "Scholz", "in", "Berlin", "die", "Katze", "!"),
            ("B-PER", "I-PER", "O", "B-LOC", "O", "O", "O"),
        ),
        ("unseen-context", ("Merkel", "Stadt", "Paris", "die", "Baum", "!"), TEST.tags),
        (
            "unseen-both",
            ("Olaf", "Scholz", "Stadt", "Berlin", "die", "Baum", "!"),
            ("B-PER", "I-PER", "O", "B-LOC", "O", "O", "O"),
        ),
        ("mask-entity", ("<mask>", "in", "<mask>", "die", "Katze", "!"), TEST.tags),
        ("mask-entity+unseen-context", ("<mask>", "Stadt", "<mask>", "die", "Baum", "!"), TEST.tags),
    ],
)
def test_deterministic_kinds_table(resources, kind, tokens, tags):
    new, edits = perturb(TEST, kind, np.random.default_rng(0), resources)
    assert new == Sentence(tokens, tags, "de")
    assert apply_edits(TEST, edits) == new


def test_unseen_entity_edit_records(resources):
    _, edits = perturb(TEST, "unseen-entity", np.random.default_rng(0), resources)
    assert edits == [
        Edit("unseen-entity.v1", 0, ("Merkel",), ("Olaf", "Scholz"), ("B-PER",), ("B-PER", "I-PER")),
        Edit("unseen-entity.v1", 3, ("Paris",), ("Berlin",), ("B-LOC",), ("B-LOC",)),
    ]


def test_random_context_uses_the_vocabulary():
    res = PerturbationResources(vocabulary=("Tag",))
    s = Sentence(("Rom", "liegt", "am", "Tiber", "."), ("B-LOC", "O", "O", "B-LOC", "O"))
    new, edits = perturb(s, "random-context", np.random.default_rng(0), res)
    assert new.tokens == ("Rom", "Tag", "Tag", "Tiber", ".")  # punctuation is no context word
    assert [e.start for e in edits] == [1, 2] and new.tags == s.tags


def test_swap_entity_draws_another_same_type_mention():
    res = PerturbationResources(names={"LOC": (("Rom",), ("New", "York"))})
    s = Sentence(("Rom", "und", "Paris"), ("B-LOC", "O", "B-LOC"))
    new, edits = perturb(s, "swap-entity", np.random.default_rng(1), res)
    assert new.tokens[:3] == ("New", "York", "und")  # never "Rom" again for "Rom"
    assert new.tags[:3] == ("B-LOC", "I-LOC", "O") and types(new) == ["LOC", "LOC"]
    assert apply_edits(s, edits) == new


def test_swap_entity_leaves_a_mention_without_alternatives():
    res = PerturbationResources(names={"LOC": (("Rom",),)})
    s = Sentence(("Rom", "und", "Anna"), ("B-LOC", "O", "B-PER"))
    assert perturb(s, "swap-entity", np.random.default_rng(0), res) == (s, [])


def test_mask_token_is_configurable():
    s = Sentence(("Rom",), ("B-LOC",))
    new, _ = perturb(s, "mask-entity", np.random.default_rng(0), PerturbationResources(mask_token="[MASK]"))
    assert new.tokens == ("[MASK]",)


def test_registry_names_and_resolution():
    assert list_perturbations() == sorted(PERTURBATIONS)
    assert {n.split(".v")[0] for n in list_perturbations()} >= {
        "unseen-entity", "unseen-context", "unseen-both", "mask-entity", "random-context", "swap-entity",
    }
    assert get_perturbation("unseen-entity").name == "unseen-entity.v1"
    assert get_perturbation("unseen-entity.v1") is PERTURBATIONS["unseen-entity.v1"]
    steps = [s.name for s in get_perturbation("unseen-both").steps]
    assert steps == ["unseen-entity.v1", "unseen-context.v1"]
    combo = get_perturbation("mask-entity + random-context")
    assert combo.name == "mask-entity.v1+random-context.v1" and combo.needs == ("vocabulary",)


NO_VECTORS = PerturbationResources.from_sentences(TARGET_TRAIN, source_train=SOURCE_TRAIN)
NO_UNSEEN_NAMES = PerturbationResources.from_sentences(SOURCE_TRAIN, source_train=SOURCE_TRAIN, train_lang="en")
REPLACE_ROM = Edit("x", 0, ("Rom",), ("Paris",), ("B-LOC",), ("B-LOC",))


@pytest.mark.parametrize(
    ("kind", "sentence", "resources_", "rate", "message"),
    [
        ("mask", TEST, None, 1.0, r"unknown perturbation 'mask'; valid: mask-entity, mask-entity\.v1"),
        ("mask-entity.v9", TEST, None, 1.0, "unknown perturbation 'mask-entity.v9'"),
        ("mask-entity", TEST, None, 1.5, "rate must be between 0 and 1"),
        ("mask-entity", TEST.unlabeled(), None, 1.0, "need labelled sentences"),
        ("unseen-entity", TEST, PerturbationResources(), 1.0, r"needs the training language's training data"),
        ("random-context", TEST, PerturbationResources(), 1.0, "needs the target language's training data"),
        ("unseen-context", TEST, NO_VECTORS, 1.0, r"\(--train-lang\) and a model's word vectors \(--model\)"),
        ("unseen-entity", TEST, NO_UNSEEN_NAMES, 1.0, "no PER mention unseen in en's training data"),
    ],
)
def test_errors(resources, kind, sentence, resources_, rate, message):
    with pytest.raises(XnerError, match=message):
        perturb(sentence, kind, np.random.default_rng(0), resources_ or resources, rate)


def test_edits_that_do_not_fit_are_rejected():
    with pytest.raises(XnerError, match="edit at token 0 does not match the sentence"):
        apply_edits(TEST, [REPLACE_ROM])


def test_perturb_corpus_summary_and_per_sentence_seeding(resources):
    corpus = [TEST, TARGET_TRAIN[1], Sentence(("nichts", "."), ("O", "O"), "de")]
    kind = "unseen-entity+mask-entity"
    out, edits, summary = perturb_corpus(corpus, kind, rate=1.0, seed=5, resources=resources)
    assert summary == {
        "kind": "unseen-entity.v1+mask-entity.v1", "rate": 1.0, "seed": 5, "sentences": 3,
        "tokens": 13, "entities": 3, "sentences_edited": 2, "tokens_edited": 5, "entities_edited": 3,
    }
    # one generator per (seed, index): a sentence's result does not depend on the others
    alone = perturb(corpus[1], "unseen-entity+mask-entity", np.random.default_rng([5, 1]), resources)
    assert (out[1], edits[1]) == alone
    assert edits[2] == [] and out[2] == corpus[2]


def test_context_neighbours_are_cached_on_disk(tmp_path):
    calls = []

    class Counting:
        fingerprint = VECTORS.fingerprint

        def __call__(self, words):
            calls.append(list(words))
            return VECTORS(words)

    first = ContextNeighbours(Counting, ["Haus", "Baum"], tmp_path, "en-de")
    assert first.lookup(["house", "Katze"]) == {"house": "Haus", "Katze": "Baum"}
    assert len(calls) == 2  # candidates once, queries once
    [path] = tmp_path.iterdir()
    assert path.name.startswith("unseen-context-en-de-") and json.loads(path.read_text())["house"] == "Haus"
    again = ContextNeighbours(Counting, ["Baum", "Haus"], tmp_path, "en-de")
    assert again.lookup(["house"]) == {"house": "Haus"} and len(calls) == 2  # read from disk

    def unloadable():
        raise AssertionError("a known fingerprint and a cached list need no model")

    cached = ContextNeighbours(unloadable, ["Haus", "Baum"], tmp_path, "en-de", VECTORS.fingerprint)
    assert cached.lookup(["Katze"]) == {"Katze": "Baum"}


# --- properties --------------------------------------------------------------------------

TOKENS = ["Merkel", "Paris", "Bahn", "Olaf", "Scholz", "in", "Katze", "die", "house", "Haus", ".", "x", "Rom"]


@st.composite
def labelled_sentences(draw) -> Sentence:
    """Valid IOB2 sentences over words that overlap the fixture's training data."""
    tokens: list[str] = []
    tags: list[str] = []
    for _ in range(draw(st.integers(1, 6))):
        etype = draw(st.sampled_from([None, "PER", "LOC", "ORG"]))
        length = 1 if etype is None else draw(st.integers(1, 3))
        tokens += draw(st.lists(st.sampled_from(TOKENS), min_size=length, max_size=length))
        tags += ["O"] if etype is None else [f"B-{etype}"] + [f"I-{etype}"] * (length - 1)
    return Sentence(tuple(tokens), tuple(tags), "de")


def is_iob2(tags) -> bool:
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            return False
        previous = tag
    return True


COMBINATIONS = ["mask-entity+random-context", "swap-entity+unseen-both"]
KINDS = [k.split(".v")[0] for k in list_perturbations()] + COMBINATIONS
RATES = st.sampled_from([0.0, 0.3, 1.0])


@settings(max_examples=60, deadline=None)
@given(sentence=labelled_sentences(), kind=st.sampled_from(KINDS), rate=RATES, seed=st.integers(0, 2**16))
def test_outputs_are_valid_reproducible_and_replayable(resources, sentence, kind, rate, seed):
    new, edits = perturb(sentence, kind, np.random.default_rng(seed), resources, rate)
    assert is_iob2(new.tags)
    assert (new, edits) == perturb(sentence, kind, np.random.default_rng(seed), resources, rate)
    assert apply_edits(sentence, edits) == new
    assert all(e.old_tokens != e.new_tokens for e in edits)
    if rate == 0.0:
        assert (new, edits) == (sentence, [])


def types(sentence: Sentence) -> list[str]:
    return [etype for etype, _, _ in entity_spans(sentence.tags)]


@settings(max_examples=40, deadline=None)
@given(
    sentence=labelled_sentences(),
    kind=st.sampled_from(["mask-entity", "random-context", "swap-entity"]),
    rate=RATES,
)
def test_generic_kinds_preserve_entity_count_and_types(resources, sentence, kind, rate):
    new, _ = perturb(sentence, kind, np.random.default_rng(0), resources, rate)
    assert types(new) == types(sentence)
    if kind != "swap-entity":
        assert new.tags == sentence.tags


@settings(max_examples=40, deadline=None)
@given(sentence=labelled_sentences(), seed=st.integers(0, 2**16))
def test_unseen_both_removes_all_overlap_with_the_training_language(resources, sentence, seed):
    new, _ = perturb(sentence, "unseen-both", np.random.default_rng(seed), resources)
    mentions = {(etype, new.tokens[a:b]) for etype, a, b in entity_spans(new.tags)}
    assert not mentions & resources.source_mentions
    assert not [t for t, tag in zip(new.tokens, new.tags) if tag == "O" and resources.shares_context(t)]
    assert types(new) == types(sentence)


# --- the CLI and real data ---------------------------------------------------------------


def run_cli(*args: str):
    from typer.testing import CliRunner

    from xner.cli import app

    return CliRunner().invoke(app, list(args))


def read_edits(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_cli_perturb_split_writes_output_edits_and_summary(data_root, tmp_path, monkeypatch):
    from xner.data import load_split, read_conll
    from xner.perturb import build_resources

    monkeypatch.setenv("XNER_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out" / "de.test.conllu"
    result = run_cli(
        "perturb", "de:test", str(out), "--kind", "unseen-entity", "--train-lang", "nl",
        "--seed", "3", "--data-dir", str(data_root), "--format", "json",
    )
    assert result.exit_code == 0, result.output
    [summary] = json.loads(result.output)
    test = load_split("de", "test", data_dir=data_root)
    resources = build_resources("de", train_lang="nl", data_dir=data_root)
    expected, expected_edits, expected_summary = perturb_corpus(test, "unseen-entity", 1.0, 3, resources)
    paths = {"input": "de:test", "output": str(out), "edits": f"{out}.edits.jsonl"}
    assert summary == expected_summary | paths
    assert summary["entities_edited"] > 0
    assert read_conll(out, lang="de") == expected
    assert out.read_text().startswith("0\t")  # the input's own (indexed) format
    records = read_edits(out.with_name(out.name + ".edits.jsonl"))
    assert records == [{"sentence": i, **e.to_json()} for i, es in enumerate(expected_edits) for e in es]
    stats = json.loads(run_cli("data", "stats", str(out), "--format", "json").output)[0]
    edited = ("sentences_edited", "tokens_edited", "entities_edited")
    assert {k: stats[k] for k in edited} == {k: summary[k] for k in edited}  # stats say what changed


@pytest.mark.parametrize("kind", ["mask-entity+random-context", "swap-entity"])
def test_edit_summary_from_the_files_matches_the_perturbation(kind, tmp_path):
    from xner.data import read_conll, write_conll
    from xner.perturb import edit_summary

    corpus = [*TARGET_TRAIN, *TARGET_TRAIN]
    resources = PerturbationResources.from_sentences(TARGET_TRAIN)
    edited, edits, summary = perturb_corpus(corpus, kind, 0.7, 5, resources)
    path = write_conll(edited, tmp_path / "p.conll")
    jsonl = tmp_path / "p.conll.edits.jsonl"
    jsonl.write_text("".join(json.dumps({"sentence": i, **e.to_json()}) + "\n" for i, es in enumerate(edits) for e in es))
    edited_keys = ("sentences_edited", "tokens_edited", "entities_edited")
    assert edit_summary(edited, jsonl) == {k: summary[k] for k in edited_keys}
    assert edit_summary(read_conll(path), jsonl) == {k: summary[k] for k in edited_keys}  # from the files alone


@pytest.fixture
def toy_root(tmp_path):
    """TARGET_TRAIN/SOURCE_TRAIN as wikiann de/en; 99 filler words take the de stopword slots."""
    from xner.data import write_conll

    fillers = tuple(f"filler{i}" for i in range(99))
    filler = Sentence(fillers, ("O",) * len(fillers), "de")
    write_conll([*TARGET_TRAIN, filler, filler], tmp_path / "root" / "wikiann" / "de" / "train.conll")
    write_conll(SOURCE_TRAIN, tmp_path / "root" / "wikiann" / "en" / "train.conll")
    return tmp_path / "root"


def test_cli_perturb_file_with_model_replays_from_the_edit_file(toy_root, tmp_path, monkeypatch):
    from xner.data import read_conll, write_conll

    monkeypatch.setenv("XNER_CACHE", str(tmp_path / "cache"))
    source = write_conll([TEST, TARGET_TRAIN[1]], tmp_path / "in.conll")
    out = tmp_path / "p3.conll"
    result = run_cli(
        "perturb", str(source), str(out), "--kind", "unseen-both", "--lang", "de", "--train-lang", "en",
        "--model", "tiny", "--data-dir", str(toy_root),
    )
    assert result.exit_code == 0, result.output
    assert "unseen-both.v1" in result.output and "entities_edited" in result.output
    records = read_edits(tmp_path / "p3.conll.edits.jsonl")
    assert {r["kind"] for r in records} == {"unseen-entity.v1", "unseen-context.v1"}
    original, perturbed = read_conll(source, lang="de"), read_conll(out, lang="de")
    for index, sentence in enumerate(original):
        edits = [Edit.from_json(r) for r in records if r["sentence"] == index]
        assert apply_edits(sentence, edits) == perturbed[index]
    first = perturbed[0].tokens  # Merkel in Paris die Katze !
    assert first[:2] + first[3:5] + first[6:] == ("Olaf", "Scholz", "Berlin", "die", "!")
    assert first[2] in CANDIDATES and first[5] in CANDIDATES
    assert list((tmp_path / "cache" / "perturb").glob("unseen-context-en-de-*.json"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["de:test", "--kind", "shuffle"], "unknown perturbation 'shuffle'; valid: mask-entity"),
        (["missing.conll", "--kind", "mask-entity"], "not LANG:SPLIT"),
        (["IN", "--kind", "mask-entity", "--lang", "de", "--rate", "2"], "rate must be between 0 and 1"),
        (["IN", "--kind", "unseen-entity"], "does not say its language; pass --lang"),
        (["de:test", "--kind", "unseen-context", "--train-lang", "nl"], r"word vectors \(--model\)"),
    ],
)
def test_cli_perturb_errors(data_root, tmp_path, args, message):
    source = tmp_path / "in.conll"
    source.write_text("Rom\tB-LOC\n")
    source_arg, *options = [str(source) if a == "IN" else a for a in args]
    out = str(tmp_path / "out.conll")
    result = run_cli("perturb", source_arg, out, *options, "--data-dir", str(data_root))
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and re.search(message, result.output)
    assert not (tmp_path / "out.conll").exists()


@pytest.mark.slow
def test_unseen_entity_on_real_data_removes_exactly_the_typed_overlap(real_data):
    from xner.data import load_split
    from xner.metrics import entity_overlap
    from xner.perturb import build_resources

    test = load_split("de", "test", data_dir=real_data)
    resources = build_resources("de", train_lang="en", data_dir=real_data)
    out, _, summary = perturb_corpus(test, "unseen-entity", seed=0, resources=resources)
    english = load_split("en", "train", data_dir=real_data)
    before = entity_overlap(english, test)
    shared = round(before["entity_overlap_typed"] * before["target_mentions"] / 100)
    assert summary["entities_edited"] == shared
    assert entity_overlap(english, out)["entity_overlap_typed"] == 0.0
    assert [types(s) for s in out] == [types(s) for s in test]


def test_resources_are_built_once_per_process_and_keyed_by_the_models_training_data(data_root, tmp_path, monkeypatch):
    from xner.data import load_split
    from xner.perturb import build_resources

    monkeypatch.setenv("XNER_CACHE", str(tmp_path / "cache"))
    first = build_resources("de", train_lang="nl", data_dir=data_root)
    assert build_resources("de", train_lang="nl", data_dir=data_root) is first  # a study's later evaluations
    seen_by_model = load_split("nl", "train", data_dir=data_root)[:1]
    other = build_resources("de", train_lang="nl", data_dir=data_root, train_sentences=seen_by_model)
    assert other is not first
    assert other.source_mentions < first.source_mentions  # fewer sentences seen, fewer overlapping mentions
    monkeypatch.setenv("XNER_CACHE", str(tmp_path / "elsewhere"))
    assert build_resources("de", train_lang="nl", data_dir=data_root) is not first
