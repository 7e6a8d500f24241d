"""``xner data stats`` and ``xner data validate`` on fixtures and on the real data."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from xner.cli import app
from xner.data.datasets import load_split
from xner.data.stats import sentence_stats


@pytest.fixture(autouse=True)
def no_env_root(monkeypatch):
    monkeypatch.delenv("XNER_DATA_DIR", raising=False)


def run(*args: str):
    return CliRunner().invoke(app, ["data", *map(str, args)])


def stats_json(*args: str) -> dict[tuple[str | None, str | None], dict]:
    result = run("stats", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return {(row["lang"], row["split"]): row for row in json.loads(result.stdout)}


def test_stats_values_equal_the_library(data_root):
    rows = stats_json("de", "nl", "--data-dir", data_root)
    assert set(rows) == {(lang, s) for lang in ("de", "nl") for s in ("train", "dev", "test")}
    for (lang, split), row in rows.items():
        expected = sentence_stats(load_split(lang, split, data_dir=data_root), ("PER", "ORG", "LOC"))
        assert {k: row[k] for k in expected} == expected
        assert row["dataset"] == "wikiann" and row["format"] == "indexed" and row["repairs"] == 0
    assert list(rows["de", "train"])[:9] == [
        "dataset", "lang", "split", "sentences", "tokens", "mean_length", "PER", "ORG", "LOC"
    ]


def test_stats_of_a_file_and_a_language_share_columns(data_root, write_corpus, make_corpus):
    path = write_corpus(make_corpus(7, "en", types=("PER", "DATE")), "perturbed.conll", "rahimi")
    rows = stats_json(str(path), "swa", "--dataset", "masakhaner2", "--data-dir", data_root,
                      "--split", "dev")
    file_row = rows["en", None]
    assert file_row["sentences"] == 7 and file_row["format"] == "rahimi"
    assert file_row["source"] == str(path) and file_row["ORG"] == 0
    assert rows["swa", "dev"].keys() == file_row.keys()


def test_stats_table_and_errors(data_root):
    table = run("stats", "nl", "--data-dir", data_root, "--split", "test")
    assert table.exit_code == 0 and "nl" in table.stdout and "test" in table.stdout
    missing = run("stats", "fr", "--data-dir", data_root)
    assert missing.exit_code == 2
    assert missing.stderr.strip() == (
        f"error: no language folder 'fr' in {data_root / 'wikiann'}; available: de, nl"
    )


def test_validate_reports_ok_or_the_first_error(write_lines, write_corpus, make_corpus):
    good = write_corpus(make_corpus(4, "xx"), "good.conll")
    bad = write_lines("the O\nBank I-ORG\n", "bad.txt")
    result = run("validate", good, bad)
    assert result.exit_code == 2
    assert result.stdout.startswith(f"OK {good}: 4 sentences,")
    assert result.stderr.strip() == f"error: {bad}:2: I-ORG follows O: an entity must start with " \
        "B-ORG (IOB2); repair=True (--repair in xner train, evaluate and data) reads it as IOB1 and fixes it"
    repaired = run("validate", bad, "--repair")
    assert repaired.exit_code == 0
    assert repaired.stdout.strip() == (
        f"OK {bad}: 1 sentences, 2 tokens, 1 entities (format conll-space, 1 repairs)"
    )


def test_validate_against_a_label_set(write_lines):
    path = write_lines("Monday B-DATE\n", "dates.txt")
    assert run("validate", path).exit_code == 0
    result = run("validate", path, "--labels", "wikiann")
    assert result.exit_code == 2 and "1: unknown tag 'B-DATE'; valid: B-LOC" in result.stderr
    assert run("validate", path, "--labels", "masakhaner2").exit_code == 0
    unknown = run("validate", path, "--labels", "conll03")
    assert unknown.exit_code == 2 and "unknown dataset 'conll03'" in unknown.stderr


@pytest.mark.slow
def test_real_wikiann_stats(real_data, source_counts):
    expected = source_counts("wikiann")
    rows = stats_json("de", "nl", "--data-dir", real_data)
    for lang in ("de", "nl"):
        for split in ("train", "dev", "test"):
            assert rows[lang, split]["sentences"] == expected[lang][split] == (
                20000 if split == "train" else 10000
            )
        assert rows[lang, "train"]["entities"] == expected[lang]["train_entities"]


@pytest.mark.slow
def test_real_masakhaner_stats(real_data, source_counts):
    expected = source_counts("masakhaner2")
    rows = stats_json("swa", "yor", "--dataset", "masakhaner2", "--data-dir", real_data)
    assert rows["swa", "train"]["sentences"] == expected["swa"]["train"] == 6593
    assert rows["yor", "train"]["sentences"] == expected["yor"]["train"] == 6876
    assert rows["swa", "train"]["entities"] == expected["swa"]["train_entities"] == 14583
    for lang in ("swa", "yor"):
        for split in ("dev", "test"):
            assert rows[lang, split]["sentences"] == expected[lang][split]
    assert rows["yor", "train"]["repairs"] == 1  # the declared IOB1 start, counted


def test_a_missing_value_is_null_in_json_and_empty_in_csv(capsys):
    """NaN is not JSON: every command's rows print a missing value as null (CSV: empty)."""
    from xner.cli import OutputFormat, print_rows

    rows = [{"source": "twi", "distance": float("nan"), "rank": 1}, {"source": "swa", "distance": 0.33, "rank": 2}]
    print_rows(rows, OutputFormat.json)
    parsed = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert [row["distance"] for row in parsed] == [None, 0.33]
    print_rows(rows, OutputFormat.csv)
    assert capsys.readouterr().out == "source,distance,rank\ntwi,,1\nswa,0.33,2\n"
