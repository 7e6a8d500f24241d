"""The language registry and the `xner languages` command."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xner.cli import app
from xner.errors import XnerError
from xner.languages import (
    LANGUAGES,
    MASAKHANEWS,
    RELATIONS,
    STUDY_PAIRS,
    Language,
    families,
    get_language,
    list_languages,
    study_pairs,
)

PANX = (
    "af ar bg bn de el en es et eu fa fi fr he hi hu id it ja jv ka kk ko ml mr ms my nl pt ru "
    "sw ta te th tl tr ur vi yo zh"
).split()
STUDY = "fr br ar fa hi en sco cy es ca cs sk id ms oc nl af it scn an ast".split()

# (HRL, LRL, relation) in the order of docs/design.md's table.
DESIGN_PAIRS = [
    ("fr", "br", "areal"),
    ("ar", "fa", "borrowing"),
    ("ar", "hi", "control"),
    ("en", "sco", "genetic"),
    ("en", "cy", "areal"),
    ("es", "ca", "genetic+areal"),
    ("cs", "sk", "genetic"),
    ("id", "ms", "genetic"),
    ("fr", "oc", "genetic+areal"),
    ("nl", "af", "genetic"),
    ("it", "scn", "genetic+areal"),
    ("es", "an", "genetic+areal"),
    ("es", "ast", "genetic+areal"),
]

# Train sizes of the bundled data (shared/data/*/SOURCE.md).
SHARED_WIKIANN = {"de": 20000, "en": 20000, "es": 20000, "nl": 20000, "pl": 20000, "ru": 20000}
SHARED_MASAKHANER = {
    "bam": 4462, "bbj": 3384, "ewe": 3505, "fon": 4343, "hau": 5716, "ibo": 7634, "kin": 7825,
    "lug": 4942, "luo": 5161, "mos": 4532, "nya": 6250, "pcm": 5646, "sna": 6207, "swa": 6593,
    "tsn": 3489, "twi": 4240, "wol": 4593, "xho": 5718, "yor": 6876, "zul": 5848,
}  # fmt: skip

SCRIPTS = {"Latn", "Cyrl", "Arab", "Deva", "Beng", "Grek", "Hebr", "Geor", "Hang", "Jpan",
           "Hani", "Mlym", "Taml", "Telu", "Thai", "Mymr", "Ethi"}  # fmt: skip
RAHIMI_SIZES = {100, 1000, 5000, 10000, 15000, 20000}


def run_cli(*args: str):
    return CliRunner().invoke(app, ["languages", *args])


# --- the study pairs ----------------------------------------------------------------------


def test_study_pairs_are_exactly_the_design_table() -> None:
    assert [(p.hrl, p.lrl, p.relation) for p in STUDY_PAIRS] == DESIGN_PAIRS


def test_study_pairs_cover_21_distinct_registered_languages() -> None:
    codes = {code for p in STUDY_PAIRS for code in (p.hrl, p.lrl)}
    assert len(codes) == 21
    assert codes == set(STUDY)
    assert all(get_language(code).code == code for code in codes)


def test_relations_are_the_closed_set() -> None:
    assert set(RELATIONS) == {"genetic", "areal", "borrowing", "control", "genetic+areal"}
    assert {p.relation for p in STUDY_PAIRS} == set(RELATIONS)
    assert all(p.note for p in STUDY_PAIRS)


@pytest.mark.parametrize(
    ("family", "expected"),
    [
        (None, DESIGN_PAIRS),
        ("Austronesian", [("id", "ms", "genetic")]),
        ("afro-asiatic", [("ar", "fa", "borrowing"), ("ar", "hi", "control")]),
        ("Uralic", []),
    ],
)
def test_study_pairs_filtered_by_family(family: str | None, expected: list) -> None:
    assert [(p.hrl, p.lrl, p.relation) for p in study_pairs(family)] == expected


def test_describe_gives_names() -> None:
    assert STUDY_PAIRS[3].describe() == {
        "hrl": "en",
        "hrl_name": "English",
        "lrl": "sco",
        "lrl_name": "Scots",
        "relation": "genetic",
        "note": STUDY_PAIRS[3].note,
    }


# --- the registry -------------------------------------------------------------------------


@pytest.mark.parametrize("code", PANX + STUDY + list(SHARED_WIKIANN) + list(SHARED_MASAKHANER))
def test_every_required_language_is_registered(code: str) -> None:
    assert isinstance(get_language(code), Language)


def test_panx_languages_all_have_wikiann_train_data() -> None:
    assert len(set(PANX)) == 40
    assert all(get_language(code).wikiann_train in RAHIMI_SIZES for code in PANX)


def test_codes_are_unique_and_well_formed() -> None:
    iso3 = [lang.iso3 for lang in LANGUAGES]
    iso1 = [lang.iso1 for lang in LANGUAGES if lang.iso1 is not None]
    assert len(set(iso3)) == len(iso3) == len(LANGUAGES)
    assert len(set(iso1)) == len(iso1)
    assert all(re.fullmatch(r"[a-z]{3}", code) for code in iso3)
    assert all(re.fullmatch(r"[a-z]{2}", code) for code in iso1)


def test_fields_are_consistent() -> None:
    for lang in LANGUAGES:
        assert lang.script in SCRIPTS, lang
        assert lang.name and lang.family and lang.genus, lang
        assert lang.wikiann_train is not None or lang.masakhaner_train is not None or lang.iso3 in MASAKHANEWS, lang
        assert lang.wikiann_train is None or lang.wikiann_train in RAHIMI_SIZES, lang


@pytest.mark.parametrize(
    ("short", "long", "name", "family", "genus", "script", "wikiann", "masakhaner"),
    [
        ("sw", "swa", "Swahili", "Niger-Congo", "Bantu", "Latn", 1000, 6593),
        ("yo", "yor", "Yoruba", "Niger-Congo", "Volta-Niger", "Latn", 100, 6876),
        ("br", "bre", "Breton", "Indo-European", "Celtic", "Latn", 1000, None),
        ("hi", "hin", "Hindi", "Indo-European", "Indic", "Deva", 5000, None),
        ("fa", "fas", "Persian", "Indo-European", "Iranian", "Arab", 20000, None),
        ("ha", "hau", "Hausa", "Afro-Asiatic", "Chadic", "Latn", None, 5716),
        ("kk", "kaz", "Kazakh", "Turkic", "Kipchak", "Cyrl", 1000, None),
        ("eu", "eus", "Basque", "Basque", "Basque", "Latn", 10000, None),
        ("am", "amh", "Amharic", "Afro-Asiatic", "Semitic", "Ethi", 100, None),
        ("om", "orm", "Oromo", "Afro-Asiatic", "Cushitic", "Latn", None, None),
        ("rn", "run", "Kirundi", "Niger-Congo", "Bantu", "Latn", None, None),
    ],
)
def test_lookup_by_either_code(
    short: str, long: str, name: str, family: str, genus: str, script: str,
    wikiann: int | None, masakhaner: int | None,
) -> None:  # fmt: skip
    lang = get_language(short)
    assert lang is get_language(long) is get_language(long.upper())
    assert (lang.iso1, lang.iso3, lang.name, lang.family, lang.genus, lang.script) == (
        short, long, name, family, genus, script,
    )  # fmt: skip
    assert (lang.wikiann_train, lang.masakhaner_train) == (wikiann, masakhaner)
    assert lang.code == short


@pytest.mark.parametrize("code", ["sco", "scn", "ast", "bbj", "fon", "luo", "mos", "pcm"])
def test_languages_without_iso1(code: str) -> None:
    lang = get_language(code)
    assert lang.iso1 is None
    assert lang.code == lang.iso3 == code


@pytest.mark.parametrize(
    ("sizes", "field"),
    [(SHARED_WIKIANN, "wikiann_train"), (SHARED_MASAKHANER, "masakhaner_train")],
)
def test_shared_data_train_sizes(sizes: dict[str, int], field: str) -> None:
    for code, size in sizes.items():
        assert getattr(get_language(code), field) == size, code


@pytest.mark.parametrize("code", ["xx", "", "english", "sw-KE"])
def test_unknown_code_lists_valid_codes(code: str) -> None:
    with pytest.raises(XnerError, match=r"unknown language .*; valid: .*\bsw\b.*\bswa\b"):
        get_language(code)


def test_families_and_filter() -> None:
    names = families()
    assert names == sorted(set(names))
    assert set(names) == {
        "Indo-European", "Niger-Congo", "Afro-Asiatic", "Nilo-Saharan", "Austronesian", "Uralic",
        "Turkic", "Dravidian", "Sino-Tibetan", "Japonic", "Koreanic", "Kartvelian", "Tai-Kadai",
        "Austroasiatic", "Basque", "English-based creole",
    }  # fmt: skip
    assert sum(len(list_languages(name)) for name in names) == len(list_languages()) == len(LANGUAGES)
    assert [lang.code for lang in list_languages("nilo-saharan")] == ["luo"]
    assert {lang.genus for lang in list_languages("Niger-Congo")} == {
        "Bantu", "Grassfields", "Volta-Niger", "Kwa", "Gur", "Mande", "Atlantic",
    }  # fmt: skip


def test_unknown_family_lists_families() -> None:
    with pytest.raises(XnerError, match=r"unknown family 'Klingon'; valid: Afro-Asiatic, "):
        list_languages("Klingon")


# --- real data ----------------------------------------------------------------------------


def _source_train_sizes(source: Path) -> dict[str, int]:
    """Parse the `| lang | train | ...` rows of a SOURCE.md table."""
    rows = re.findall(r"^\|\s*([a-z]{2,3})\s*\|\s*([\d,]+)\s*\|", source.read_text(), re.M)
    return {code: int(train.replace(",", "")) for code, train in rows}


@pytest.mark.parametrize(
    ("dataset", "field"), [("wikiann", "wikiann_train"), ("masakhaner2", "masakhaner_train")]
)
def test_registry_matches_real_data_sources(dataset: str, field: str) -> None:
    root = os.environ.get("XNER_DATA_DIR")
    if not root or not (Path(root) / dataset / "SOURCE.md").is_file():
        pytest.skip("XNER_DATA_DIR with the bundled data is not available")
    sizes = _source_train_sizes(Path(root) / dataset / "SOURCE.md")
    folders = {p.name for p in (Path(root) / dataset).iterdir() if p.is_dir()}
    assert sizes and set(sizes) == folders
    assert {code: getattr(get_language(code), field) for code in sizes} == sizes


def test_masakhanews_languages_are_registered_and_match_the_bundled_folders() -> None:
    assert all(get_language(code).iso3 == code for code in MASAKHANEWS)
    root = os.environ.get("XNER_DATA_DIR")
    if root and (Path(root) / "masakhanews").is_dir():
        assert {p.name for p in (Path(root) / "masakhanews").iterdir() if p.is_dir()} == set(MASAKHANEWS)


# --- CLI ----------------------------------------------------------------------------------


def test_cli_json_lists_every_language_with_stable_keys() -> None:
    result = run_cli("--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == len(LANGUAGES)
    assert all(list(row) == list(Language.__dataclass_fields__) for row in rows)
    swahili = next(row for row in rows if row["iso3"] == "swa")
    assert swahili["wikiann_train"] == 1000 and swahili["masakhaner_train"] == 6593


def test_cli_pairs_json_gives_13() -> None:
    result = run_cli("--pairs", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["hrl"], r["lrl"], r["relation"]) for r in rows] == DESIGN_PAIRS
    assert rows[0]["hrl_name"] == "French" and rows[0]["lrl_name"] == "Breton"


def test_cli_csv_with_family() -> None:
    result = run_cli("--family", "uralic", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [r["iso1"] for r in rows] == ["et", "fi", "hu"]
    assert rows[0]["wikiann_train"] == "15000" and rows[0]["masakhaner_train"] == ""


def test_cli_table_shows_pairs() -> None:
    result = run_cli("--pairs")
    assert result.exit_code == 0, result.output
    for word in ("Breton", "Asturian", "genetic+areal", "borrowing"):
        assert word in result.output


def test_cli_unknown_family_is_one_line_error() -> None:
    result = run_cli("--family", "Klingon")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: unknown family 'Klingon'; valid: ")
    assert "Niger-Congo" in lines[0]


def test_cli_rejects_unknown_format() -> None:
    result = run_cli("--format", "xml")
    assert result.exit_code == 2 and "'xml' is not one of" in result.output  # a usage error, not a crash (1)
