"""Entity scores (oracle: seqeval strict IOB2), bootstrap CIs and overlap measures."""

from __future__ import annotations

import json
import random

import pytest
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

import xner.metrics
from xner.data.corpus import Sentence
from xner.errors import XnerError
from xner.metrics import (
    PRIMARY_METRIC,
    bootstrap_f1,
    entity_overlap,
    entity_scores,
    entity_sets,
    pair_overlap,
    subword_overlap,
)

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]


def random_tags(rng: random.Random, n_sentences: int) -> list[list[str]]:
    """Arbitrary tag sequences, invalid transitions included, to exercise strict mode."""
    return [[rng.choice(TAGS) for _ in range(rng.randint(1, 8))] for _ in range(n_sentences)]


@pytest.mark.parametrize("seed", range(5))
def test_entity_scores_match_seqeval_classification_report(seed):
    rng = random.Random(seed)
    gold = random_tags(rng, 40)
    pred = [[rng.choice(TAGS) if rng.random() < 0.3 else t for t in s] for s in gold]
    report = classification_report(
        gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0
    )
    scores = entity_scores(gold, pred)
    keys = [("micro avg", "")] + [(t, f"{t}/") for t in report if "avg" not in t]
    for name, key in keys:
        assert scores[f"{key}precision"] == pytest.approx(100 * report[name]["precision"])
        assert scores[f"{key}recall"] == pytest.approx(100 * report[name]["recall"])
        assert scores[f"{key}f1"] == pytest.approx(100 * report[name]["f1-score"])
        assert scores[f"{key}support"] == report[name]["support"]


@pytest.mark.parametrize(
    ("gold", "pred", "expected"),
    [
        # perfect
        ([["B-PER", "I-PER", "O"]], [["B-PER", "I-PER", "O"]], (100.0, 100.0, 100.0, 1)),
        # empty predictions
        ([["B-PER", "O", "B-LOC"]], [["O", "O", "O"]], (0.0, 0.0, 0.0, 2)),
        # no gold entities, one false positive
        ([["O", "O"]], [["B-ORG", "O"]], (0.0, 0.0, 0.0, 0)),
        # nothing anywhere
        ([["O"]], [["O"]], (0.0, 0.0, 0.0, 0)),
        # type confusion: right span, wrong type
        ([["B-PER", "I-PER"]], [["B-ORG", "I-ORG"]], (0.0, 0.0, 0.0, 1)),
        # boundary error: one token too short
        ([["B-LOC", "I-LOC", "O"]], [["B-LOC", "O", "O"]], (0.0, 0.0, 0.0, 1)),
        # one of two right, one extra prediction: P=1/3, R=1/2, F=0.4
        (
            [["B-PER", "O", "B-LOC", "O"]],
            [["B-PER", "O", "B-ORG", "B-LOC"]],
            (100 / 3, 50.0, 40.0, 2),
        ),
        # strict IOB2: I- after O starts no entity, so the prediction is empty
        ([["B-PER", "O"]], [["I-PER", "O"]], (0.0, 0.0, 0.0, 1)),
        # empty corpus
        ([], [], (0.0, 0.0, 0.0, 0)),
    ],
)
def test_entity_scores_edge_cases(gold, pred, expected):
    scores = entity_scores(gold, pred)
    got = (scores["precision"], scores["recall"], scores["f1"], scores["support"])
    assert got == pytest.approx(expected)


def test_entity_scores_per_type_keys_and_prefix():
    scores = entity_scores([["B-PER", "O", "B-LOC"]], [["B-PER", "O", "B-ORG"]], prefix="de/test/")
    assert PRIMARY_METRIC == "f1"
    assert scores["de/test/f1"] == 50.0
    assert scores["de/test/PER/f1"] == 100.0
    assert scores["de/test/LOC/support"] == 1
    assert scores["de/test/ORG/precision"] == 0.0 and scores["de/test/ORG/support"] == 0
    assert all(isinstance(v, float | int) for v in scores.values())


@pytest.mark.parametrize(
    ("gold", "pred", "message"),
    [
        ([["O"]], [], "1 gold sentences but 0 predicted"),
        ([["O", "O"]], [["O"]], "sentence 0: 2 gold tags but 1 predicted"),
    ],
)
def test_entity_scores_rejects_misaligned_input(gold, pred, message):
    with pytest.raises(XnerError, match=message):
        entity_scores(gold, pred)


def noisy_corpus(n: int, seed: int = 0) -> tuple[list[list[str]], list[list[str]]]:
    rng = random.Random(seed)
    gold = [["B-PER", "I-PER", "O", "B-LOC"] for _ in range(n)]
    pred = [[t if rng.random() < 0.8 else "O" for t in s] for s in gold]
    return gold, pred


def test_entity_sets_read_each_distinct_sequence_once_as_seqeval_does():
    """Tag sequences are chunked once per process and remembered: new, repeated within a call
    or seen in an earlier call, each gets seqeval's strict-IOB2 entities."""
    from seqeval.scheme import Entities

    xner.metrics._strict_entities.cache_clear()
    rng = random.Random(3)
    pool = random_tags(rng, 30)
    for _ in range(6):
        sequences = [rng.choice(pool) for _ in range(25)]
        expected = [{(e.start, e.end, e.tag) for e in sentence}
                    for sentence in Entities(sequences, IOB2, suffix=False).entities]
        assert [set(found) for found in entity_sets(sequences)] == expected
    assert xner.metrics._strict_entities.cache_info().misses == len({tuple(tags) for tags in pool})


def test_bootstrap_contains_point_estimate_and_matches_entity_scores():
    gold, pred = noisy_corpus(200)
    f1, low, high = bootstrap_f1(gold, pred, n_resamples=500, seed=1)
    assert f1 == pytest.approx(entity_scores(gold, pred)["f1"])
    assert low < f1 < high


def test_bootstrap_interval_shrinks_with_more_sentences():
    small = bootstrap_f1(*noisy_corpus(50), n_resamples=500)
    large = bootstrap_f1(*noisy_corpus(2000), n_resamples=500)
    assert large[2] - large[1] < (small[2] - small[1]) / 3


def test_bootstrap_is_deterministic_by_seed():
    gold, pred = noisy_corpus(100)
    assert bootstrap_f1(gold, pred, seed=7) == bootstrap_f1(gold, pred, seed=7)
    assert bootstrap_f1(gold, pred, seed=7) != bootstrap_f1(gold, pred, seed=8)


def test_bootstrap_wider_confidence_gives_wider_interval():
    gold, pred = noisy_corpus(100)
    _, lo90, hi90 = bootstrap_f1(gold, pred, confidence=0.9)
    _, lo99, hi99 = bootstrap_f1(gold, pred, confidence=0.99)
    assert lo99 <= lo90 and hi90 <= hi99


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"confidence": 1.0}, "confidence"), ({"n_resamples": 0}, "n_resamples")],
)
def test_bootstrap_rejects_bad_arguments(kwargs, message):
    with pytest.raises(XnerError, match=message):
        bootstrap_f1([["O"]], [["O"]], **kwargs)


SOURCE = [
    Sentence(("Angela", "Merkel", "visited", "Paris", "."), ("B-PER", "I-PER", "O", "B-LOC", "O")),
    Sentence(("The", "Paris", "club", "won"), ("O", "B-ORG", "I-ORG", "O")),
]
TARGET = [
    # "Paris"/LOC: exact and typed hit; "Merkel" alone is no source mention
    Sentence(("Paris", "visited", "Merkel"), ("B-LOC", "O", "B-PER")),
    # "paris club" matches casefolded only; "Paris club" tokens are entity tokens in the source
    Sentence(("paris", "club", "lost", "."), ("B-ORG", "I-ORG", "O", "O")),
    # "Angela Merkel" tagged ORG: string hit, typed miss
    Sentence(("Angela", "Merkel", "today"), ("B-ORG", "I-ORG", "O")),
]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("target_mentions", 4),
        ("entity_overlap", 100 * 2 / 4),  # Paris, Angela Merkel
        ("entity_overlap_casefold", 100 * 3 / 4),  # + paris club
        ("entity_overlap_typed", 100 * 1 / 4),  # Paris/LOC
        ("entity_token_overlap", 100 * 5 / 6),  # Paris Merkel club Angela Merkel; not "paris"
        ("context_overlap", 100 * 2 / 4),  # visited "." ; not lost, today
    ],
)
def test_entity_overlap_table(key, expected):
    assert entity_overlap(SOURCE, TARGET)[key] == pytest.approx(expected)


def test_entity_overlap_of_empty_target_is_zero():
    result = entity_overlap(SOURCE, [])
    assert result["entity_overlap"] == 0.0 and result["target_mentions"] == 0


@pytest.fixture(scope="module")
def tokenizer():
    vocab = {"[UNK]": 0, "the": 1, "cat": 2, "##s": 3, "dog": 4, "sat": 5}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")


def test_subword_overlap_counts_tokens_and_types(tokenizer):
    source = [Sentence(("the", "cat"))]
    # pieces: the, cat, ##s, dog, the  -> tokens in source: the, cat, the = 3/5; types the, cat = 2/4
    target = [Sentence(("the", "cats", "dog")), Sentence(("the",))]
    result = subword_overlap(source, target, tokenizer)
    assert result == pytest.approx({"subword_overlap_tokens": 60.0, "subword_overlap_types": 50.0})


def test_subword_overlap_with_empty_target(tokenizer):
    result = subword_overlap([Sentence(("the",))], [], tokenizer)
    assert result == {"subword_overlap_tokens": 0.0, "subword_overlap_types": 0.0}


# --- pair_overlap, the CLI and real data -------------------------------------------------


def run_cli(*args: str):
    from typer.testing import CliRunner

    from xner.cli import app

    return CliRunner().invoke(app, list(args))


def test_cli_overlap_json_matches_the_library(data_root):
    from xner.data import load_split

    result = run_cli("overlap", "nl", "de", "--data-dir", str(data_root), "--format", "json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    source, target = load_split("nl", "train", data_dir=data_root), load_split("de", "test", data_dir=data_root)
    expected = entity_overlap(source, target)
    assert row == {"source": "nl", "target": "de", **expected}


def test_cli_overlap_across_datasets_with_subwords_as_a_table(data_root):
    result = run_cli(
        "overlap", "de", "swa", "--tgt-dataset", "masakhaner2", "--data-dir", str(data_root), "--model", "tiny"
    )
    assert result.exit_code == 0, result.output
    measures = ("entity_overlap_typed", "context_overlap", "subword_overlap_tokens", "subword_overlap_types")
    assert all(measure in result.output for measure in measures)


def test_pair_overlap_adds_subword_measures_under_the_model_tokenizer(data_root):
    from xner.models.backbone import load_backbone

    from xner.data import load_split

    row = pair_overlap("nl", "de", data_dir=data_root, model="tiny")
    tokenizer = load_backbone("tiny").tokenizer
    expected = subword_overlap(
        load_split("nl", "train", data_dir=data_root), load_split("de", "test", data_dir=data_root), tokenizer
    )
    assert {k: row[k] for k in expected} == expected


def test_cli_overlap_unknown_language_is_one_error_line(data_root):
    result = run_cli("overlap", "nl", "xx", "--data-dir", str(data_root))
    assert result.exit_code == 2
    assert result.output.startswith("error: no language folder 'xx'")


@pytest.mark.slow
def test_real_overlap_en_de_is_ordered_and_nl_is_closer(real_data):
    en = pair_overlap("en", "de", data_dir=real_data)
    nl = pair_overlap("nl", "de", data_dir=real_data)
    for row in (en, nl):
        assert row["target_mentions"] == nl["target_mentions"] > 10_000
        typed, exact, folded = (row[f"entity_overlap{k}"] for k in ("_typed", "", "_casefold"))
        assert 0 < typed <= exact <= folded < 100
    assert nl["context_overlap"] > en["context_overlap"]  # Dutch shares more context words with German
