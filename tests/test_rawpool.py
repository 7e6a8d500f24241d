"""Raw text to pools: every input shape, one-line errors, counted filters, dedupe and no leakage;
``xner data sentences`` on fixtures and on the real MasakhaNEWS yor files."""

from __future__ import annotations

import csv
import gzip
import io
import json

import pytest
from typer.testing import CliRunner

from xner.cli import app
from xner.data.corpus import Sentence
from xner.data.datasets import load_split
from xner.data.formats import read_text
from xner.data.neardup import NearDuplicates, sentence_key
from xner.data.rawfiles import read_documents
from xner.data.rawpool import build_pool
from xner.errors import XnerError

NEWS = [
    {"category": "sports", "headline": "Simba yashinda leo", "text": "Simba ilishinda mechi jana.\nMashabiki walifurahi sana uwanjani.", "url": "u1"},
    {"category": "health", "headline": "Hospitali mpya", "text": "Hospitali mpya\tilifunguliwa Dodoma. \"Ni siku njema,\" alisema Waziri.", "url": "u2"},
]


def tsv(records: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(records[0]), delimiter="\t", lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()


def texts(path, **options) -> list[str]:
    return [text for _, text in read_documents(path, **options)]


def test_tsv_fields_hold_newlines_and_tabs(write_lines):
    path = write_lines(tsv(NEWS), "news.tsv.gz")
    assert texts(path) == [NEWS[0]["headline"], NEWS[0]["text"], NEWS[1]["headline"], NEWS[1]["text"]]
    assert texts(path, text_fields=["text"]) == [NEWS[0]["text"], NEWS[1]["text"]]


def test_jsonl_plain_text_and_folders(write_lines, tmp_path):
    (tmp_path / "docs").mkdir()
    write_lines('{"text": "Habari za leo."}\n\n{"body": "x", "text": "Asante sana."}\n', "docs/a.jsonl")
    write_lines("Mstari wa kwanza.\nMstari wa pili.\n", "docs/b.txt.gz")
    write_lines("hidden", "docs/.hidden")
    assert texts(tmp_path / "docs") == ["Habari za leo.", "Asante sana.", "Mstari wa kwanza.\nMstari wa pili.\n"]


WIKI = ('<doc id="12" url="https://yo.wikipedia.org/wiki?curid=12" title="Lagos">\nLagos\n\n'
        "Lagos jẹ́ ìlú tó tóbi jùlọ.\nÀwọn ènìyàn púpọ̀ ń gbé ibẹ̀.\n</doc>\n"
        '<doc id="13" url="https://yo.wikipedia.org/wiki?curid=13" title="Ọ̀yọ́">\nỌ̀yọ́\n\nỌ̀yọ́ jẹ́ ìlú àtijọ́.\n</doc>\n')


def test_wikiextractor_files_are_recognised_by_content(write_lines, tmp_path):
    """WikiExtractor writes extensionless files: its tags, titles and JSON keys must not become
    pool sentences (read as plain text, they would)."""
    write_lines(WIKI, "wiki/AA/wiki_00")
    assert texts(tmp_path / "wiki") == ["\nLagos jẹ́ ìlú tó tóbi jùlọ.\nÀwọn ènìyàn púpọ̀ ń gbé ibẹ̀.\n", "\nỌ̀yọ́ jẹ́ ìlú àtijọ́.\n"]
    where = [where for where, _ in read_documents(tmp_path / "wiki")]
    assert where == [f"{tmp_path / 'wiki/AA/wiki_00'}:1", f"{tmp_path / 'wiki/AA/wiki_00'}:7"]
    record = {"id": "12", "revid": "1", "url": "u", "title": "Lagos", "text": "Lagos jẹ́ ìlú tó tóbi jùlọ."}
    write_lines(json.dumps(record, ensure_ascii=False) + "\n", "json/AA/wiki_00")
    assert texts(tmp_path / "json") == ["Lagos jẹ́ ìlú tó tóbi jùlọ."]
    write_lines("{ not JSON, but a text line }\n", "plain")
    assert texts(tmp_path / "plain") == ["{ not JSON, but a text line }\n"]
    truncated = write_lines(WIKI[: WIKI.index("</doc>")], "cut/wiki_00")
    with pytest.raises(XnerError, match=r"wiki_00: 1 <doc> tags but 0 complete articles \(a truncated WikiExtractor file\?\)"):
        list(read_documents(truncated))


@pytest.mark.parametrize(("name", "content", "message"), [
    ("bin.txt", b"abc\x00def", "bin.txt: binary file (NUL bytes), not text"),
    ("latin.txt", "café au lait".encode("latin-1"), "latin.txt: not UTF-8 text (invalid continuation byte at byte 3)"),
    ("empty.txt", b" \n\n", "empty.txt: empty file (no text)"),
    ("bad.jsonl", b'{"text": "a"}\n{oops\n', "bad.jsonl:2: not JSON"),
    ("list.jsonl", b'["a"]\n', "list.jsonl:1: a JSONL line must be an object, got list"),
    ("field.jsonl", b'{"body": "a"}\n', "field.jsonl:1: no text field (headline, text) in record with keys body"),
    ("cols.tsv", b"a\tb\n1\t2\n", "cols.tsv:1: no text column (headline, text)"),
])
def test_bad_input_is_one_line_naming_the_file(write_lines, name, content, message):
    path = write_lines(content, name)
    with pytest.raises(XnerError) as err:
        list(read_documents(path))
    assert str(err.value).startswith(str(path.parent / message)) and "\n" not in str(err.value)


def test_missing_and_empty_folder_and_corrupt_gzip(tmp_path):
    (tmp_path / "none").mkdir()
    (tmp_path / "bad.txt.gz").write_bytes(b"not gzip")
    cases = (("none", "empty folder (no files)"), ("nope", "no such file or folder"), ("bad.txt.gz", "cannot read: "))
    for name, message in cases:
        with pytest.raises(XnerError) as err:
            list(read_documents(tmp_path / name))
        assert str(err.value).startswith(f"{tmp_path / name}: {message}")


def test_near_duplicates_are_tokenization_independent():
    index = NearDuplicates(threshold=0.8)
    assert index.add(["Rais", "Samia", "alisema", "kwamba", "uchumi", "unakua", "haraka", "."])
    assert index.exact(["rais", "samia", "alisema", "kwamba", "uchumi", "unakua", "haraka."])
    assert index.match(["Rais", "Samia", "alisema", "kwamba", "uchumi", "unakua", "haraka", "sana", "."])  # 0.86
    assert not index.add(["Rais", "Samia", "alisema", "kwamba", "uchumi", "unakua", "haraka", "sana", "."])
    assert not index.match(["Mvua", "kubwa", "ilinyesha", "Dar", "es", "Salaam", "jana", "."])
    exact_only = NearDuplicates(threshold=1.0)
    exact_only.add(["a", "b", "c"])
    assert exact_only.match(["abc"]) and not exact_only.match(["a", "b", "d"])
    assert sentence_key(["Ọ̀túnba", ","]) == sentence_key(["ọ̀túnba,"])


def test_build_pool_counts_every_step(write_lines):
    lines = [
        "Mvua kubwa ilinyesha jijini Dar es Salaam jana usiku.",      # leaked exactly (test sentence)
        "Rais Samia alisema kwamba uchumi wa nchi unakua kwa kasi.",  # leaked nearly (Jaccard 0.72)
        "Timu ya taifa ilifanya mazoezi mjini Arusha kabla ya mechi ya Jumamosi.",
        "Timu ya taifa ilifanya mazoezi mjini Arusha kabla ya mechi ya Jumamosi.",  # exact duplicate
        "TIMU ya taifa ilifanya mazoezi mjini Arusha kabla ya mechi ya Jumamosi .",  # exact after folding
        "Timu ya taifa ilifanya mazoezi mjini Arusha kabla ya mechi ya Jumapili.",  # near duplicate
        "Asante.",                                                    # too short (2 tokens)
        " ".join(["neno"] * 30) + ".",                                # too long
        "Wakulima wa kahawa wanatarajia mavuno mazuri mwaka huu.",
        "Bei ya mafuta imepanda tena katika soko la dunia wiki hii.",  # in the train split
        "Bei ya mafuta imepanda tena katika soko la dunia wiki hii !",  # nearly in it
    ]
    path = write_lines("\n".join(lines) + "\n", "raw.txt")
    test = [Sentence(tuple("Mvua kubwa ilinyesha jijini Dar es Salaam jana usiku .".split())),
            Sentence(tuple("Rais Samia alisema kuwa uchumi wa nchi unakua kwa kasi .".split()))]
    train = [Sentence(tuple("Bei ya mafuta imepanda tena katika soko la dunia wiki hii .".split()))]
    kept, counts = build_pool([path], "swa", exclude=test, overlap=train, min_tokens=3, max_tokens=20)
    assert [" ".join(t) for t in kept] == [
        "Timu ya taifa ilifanya mazoezi mjini Arusha kabla ya mechi ya Jumamosi .",
        "Wakulima wa kahawa wanatarajia mavuno mazuri mwaka huu ."]
    assert {row["step"]: row["count"] for row in counts.rows()} == {
        "documents": 1, "sentences": 11, "too_short": 1, "too_long": 1, "leaked_exact": 1, "leaked_near": 1,
        "overlap_exact": 1, "overlap_near": 1, "duplicates_exact": 2, "duplicates_near": 1, "kept": 2}


@pytest.mark.parametrize(("options", "message"), [
    ({"min_tokens": 0}, "length filter"), ({"min_tokens": 5, "max_tokens": 4}, "length filter"),
    ({"near_leak": 0}, "near_leak"), ({"near_dup": 1.5}, "near_dup"), ({"min_tokens": 50}, "no sentence left"),
])
def test_build_pool_rejects_bad_options(write_lines, options, message):
    path = write_lines("Habari za leo, rafiki yangu mpendwa.\n", "raw.txt")
    with pytest.raises(XnerError, match=message):
        build_pool([path], "swa", **options)


def test_cli_writes_a_pool_read_back_token_for_token(write_lines, data_root, tmp_path):
    test, train = (load_split("swa", split, "masakhaner2", data_root) for split in ("test", "train"))
    leaked, known = (" ".join(split[0].tokens) for split in (test, train))
    news = [*NEWS, {**NEWS[0], "headline": leaked, "text": "Wachezaji walipongezwa na kocha wao baada ya mechi."},
            {**NEWS[1], "headline": known, "text": ""}]
    path = write_lines(tsv(news), "news.tsv")
    out = tmp_path / "pool" / "swa.txt"
    result = CliRunner().invoke(app, ["data", "sentences", str(path), "--lang", "swa", "--out", str(out),
                                      "--dataset", "masakhaner2", "--data-dir", str(data_root), "--overlap", "train", "--format", "json"])
    assert result.exit_code == 0, result.output
    counts = {row["step"]: row["count"] for row in json.loads(result.stdout)}
    assert counts["documents"] == 7 and counts["leaked_exact"] == counts["overlap_exact"] == 1
    assert counts["kept"] == counts["sentences"] - 3
    assert f"wrote {out}: {counts['kept']} sentences (1 leaked from masakhaner2 swa dev+test)" in result.stderr
    pool = read_text(out, "swa")
    assert len(pool) == counts["kept"] and pool[0].tokens == ("Simba", "yashinda", "leo")
    assert ('"', "Ni", "siku", "njema", ",", '"', "alisema", "Waziri", ".") in {s.tokens for s in pool}


def test_cli_bad_input_exits_2_with_one_line(write_lines, tmp_path, data_root):
    path = write_lines(b"\xff\xfe\x00", "raw.txt")
    result = CliRunner().invoke(app, ["data", "sentences", str(path), "--lang", "swa", "--out", str(tmp_path / "o.txt"),
                                      "--dataset", "masakhaner2", "--data-dir", str(data_root)])
    assert result.exit_code == 2 and result.stderr == f"error: {path}: binary file (NUL bytes), not text\n"
    assert not (tmp_path / "o.txt").exists()


@pytest.mark.parametrize("inside", ["news/pool.txt", "news/deeper/pool.txt", "news/a.txt"])
def test_cli_refuses_to_write_the_pool_into_its_input(write_lines, tmp_path, data_root, inside):
    write_lines("Simba ilishinda mechi jana.\n", "news/a.txt")
    inputs = [str(tmp_path / "news")] if inside != "news/a.txt" else [str(tmp_path / "news" / "a.txt")]
    result = CliRunner().invoke(app, ["data", "sentences", *inputs, "--lang", "swa", "--out", str(tmp_path / inside),
                                      "--dataset", "masakhaner2", "--data-dir", str(data_root)])
    assert result.exit_code == 2
    assert result.stderr == (f"error: --out {tmp_path / inside}: inside the input {inputs[0]}; a rerun would read the "
                             "pool back as raw text: write it elsewhere\n")
    assert (tmp_path / "news" / "a.txt").read_text() == "Simba ilishinda mechi jana.\n"


@pytest.mark.slow
def test_masakhanews_yor_pool_has_no_masakhaner_dev_or_test_sentence(real_data, tmp_path):
    news = sorted((real_data / "masakhanews" / "yor").glob("*.tsv.gz"))
    out = tmp_path / "yor.txt"
    result = CliRunner().invoke(app, ["data", "sentences", *map(str, news), "--lang", "yor", "--out", str(out),
                                      "--dataset", "masakhaner2", "--data-dir", str(real_data), "--format", "json"])
    assert result.exit_code == 0, result.output
    counts = {row["step"]: row["count"] for row in json.loads(result.stdout)}
    with gzip.open(news[0], "rt", encoding="utf-8") as handle:
        assert counts["documents"] > sum(1 for _ in csv.reader(handle, delimiter="\t"))  # more than one file read
    pool = read_text(out, "yor")
    assert len(pool) == counts["kept"] > 20000
    labelled = {sentence_key(s.tokens) for split in ("dev", "test") for s in load_split("yor", split, "masakhaner2", real_data)}
    assert not labelled & {sentence_key(s.tokens) for s in pool}
    removed = counts["leaked_exact"] + counts["leaked_near"]
    assert removed > 0 and f"({removed} leaked from masakhaner2 yor dev+test)" in result.stderr
