"""Document readers: MasakhaNEWS TSV, WikiTitle multiple-choice files, WikiExtractor dumps."""

from __future__ import annotations

import gzip
import json
import re

import pytest

from xner.data.news import has_split, load_documents, news_categories, read_news
from xner.data.wiki import read_wiki_titles, read_wikiextractor, split_sections
from xner.errors import XnerError

HEADER = "category\theadline\ttext\turl\n"


def test_news_reader_keeps_quoted_tabs_and_newlines(tmp_path):
    path = tmp_path / "train.tsv.gz"
    body = HEADER + 'sports\tEagles win\t"Line one\n\tline two"\thttp://a\nhealth\t"A ""quoted"" title"\tText\t\n'
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(body)
    first, second = read_news(path, lang="pcm")
    assert (first.category, first.headline, first.text, first.lang) == ("sports", "Eagles win", "Line one\n\tline two", "pcm")
    assert second.headline == 'A "quoted" title' and second.source.endswith(":4")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("category\ttext\turl\nsports\tT\tu\n", ":1: header lacks column(s) headline"),
        (HEADER + "sports\tH\tText\n", ":2: 3 fields, the header has 4"),
        (HEADER + "sports\tH\t  \tu\n", ":2: empty text"),
        ("", "empty file"),
    ],
)
def test_news_reader_names_file_and_line(tmp_path, body, message):
    path = tmp_path / "bad.tsv"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(XnerError, match=re.escape(message)):
        read_news(path)


def _news_root(tmp_path):
    folder = tmp_path / "masakhanews" / "yor"
    folder.mkdir(parents=True)
    (folder / "labels.txt").write_text("health\nsports\n", encoding="utf-8")
    (folder / "test.tsv").write_text(HEADER + "health\tH\tT\tu\n", encoding="utf-8")
    return tmp_path


def test_documents_are_found_by_either_code_and_missing_splits_are_errors(tmp_path):
    root = _news_root(tmp_path)
    assert [d.headline for d in load_documents("yo", "test", data_dir=root)] == ["H"]
    assert news_categories("yor", data_dir=root) == ("health", "sports")
    assert has_split("yor", "test", data_dir=root) and not has_split("yor", "train", data_dir=root)
    with pytest.raises(XnerError, match="no 'train' file in .*found: labels.txt, test.tsv"):
        load_documents("yor", "train", data_dir=root)
    with pytest.raises(XnerError, match="no language folder 'ibo' .*available: yor"):
        load_documents("ibo", "test", data_dir=root)


def test_wiki_titles_from_a_json_list_and_json_lines(tmp_path):
    record = {"sectionText": "Born in 1900.", "titleA": "Career", "titleB": "Early life", "titleC": "Death",
              "titleD": "Legacy", "correctTitle": "titleB", "url": "u"}
    listed = tmp_path / "wiki.json"
    listed.write_text(json.dumps([record, {**record, "correctTitle": "titleD"}]), encoding="utf-8")
    lines = tmp_path / "wiki.jsonl"
    lines.write_text(json.dumps(record) + "\n\n" + json.dumps(record) + "\n", encoding="utf-8")
    items = read_wiki_titles(listed, lang="hi")
    assert [item.candidates[item.answer] for item in items] == ["Early life", "Legacy"]
    assert items[0].text == "Born in 1900." and items[0].lang == "hi"
    assert [item.source.rsplit(":", 1)[1] for item in read_wiki_titles(lines)] == ["1", "3"]


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"sectionText": "x", "titleA": "a", "titleB": "b", "titleC": "c", "correctTitle": "titleA"}, "missing key"),
        ({"sectionText": "x", "titleA": "a", "titleB": "b", "titleC": "c", "titleD": "d", "correctTitle": "B"},
         "correctTitle 'B' is not one of"),
        ("just text", "expected an object"),
    ],
)
def test_wiki_titles_errors_name_file_and_line(tmp_path, record, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n" + json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(XnerError, match=re.escape(f"bad.jsonl:2: {message}")):
        read_wiki_titles(path)


@pytest.mark.parametrize(
    ("text", "sections"),
    [
        ("Lead.\nSection::::History.\nFounded.\nSection::::Empty.\n", [("History", "Founded.")]),
        ("Lead.\n<h2>Early life</h2>\nBorn.\n<h3>Career</h3>\nWorked.\nMore.", [("Early life", "Born."),
                                                                                ("Career", "Worked.\nMore.")]),
        ("== Geography ==\nHills.\n=== Climate ===\nWarm.", [("Geography", "Hills."), ("Climate", "Warm.")]),
        ("Only a lead paragraph.", []),
    ],
)
def test_sections_in_every_wikiextractor_heading_form(text, sections):
    assert split_sections(text) == sections


def test_wikiextractor_dump_becomes_titled_documents(tmp_path):
    path = tmp_path / "wiki_00"
    articles = [{"id": "1", "url": "u", "title": "Lagos", "text": "Lagos.\nSection::::History.\nOld town."},
                {"id": "2", "url": "u", "title": "Ife", "text": "Ife.\nSection::::Art.\nBronze heads."}]
    path.write_text("".join(json.dumps(a) + "\n" for a in articles), encoding="utf-8")
    documents = read_wikiextractor(path, lang="yo")
    assert [(d.headline, d.text) for d in documents] == [("History", "Old town."), ("Art", "Bronze heads.")]
    assert documents[1].source.endswith(":2:Ife")
    path.write_text('{"title": "no text"}\n', encoding="utf-8")
    with pytest.raises(XnerError, match="wiki_00:1: expected a WikiExtractor JSON object"):
        read_wikiextractor(path)


def _news_source_table(path) -> dict[str, dict[str, int | None]]:
    """``| lang | train | dev | test | categories |`` rows of MasakhaNEWS' SOURCE.md (— = none)."""
    rows = re.findall(r"^\| (\w{3}) \| ([\d,]+|—) \| ([\d,]+) \| ([\d,]+) \| ([a-z, ]+) \|$", path.read_text(), re.M)
    number = lambda text: None if text == "—" else int(text.replace(",", ""))  # noqa: E731
    return {lang: {"train": number(train), "dev": number(dev), "test": number(test), "categories": categories}
            for lang, train, dev, test, categories in rows}


@pytest.mark.slow
def test_real_masakhanews_matches_its_source_table(real_data):
    table = _news_source_table(real_data / "masakhanews" / "SOURCE.md")
    assert len(table) == 16
    for lang, expected in table.items():
        for split in ("train", "dev", "test"):
            if expected[split] is None:
                assert not has_split(lang, split, data_dir=real_data)
                continue
            documents = load_documents(lang, split, data_dir=real_data)
            assert len(documents) == expected[split], (lang, split)
            assert all(d.headline and d.text for d in documents)
            assert {d.category for d in documents} <= set(news_categories(lang, data_dir=real_data))
        assert ", ".join(news_categories(lang, data_dir=real_data)) == expected["categories"]
