"""xner.data.labels and xner.data.datasets: label sets, label maps, local layout, HF schema."""

from __future__ import annotations

from pathlib import Path

import datasets as hf
import pytest

from xner.data import datasets as xd
from xner.data.corpus import Sentence
from xner.data.datasets import dataset_labels, find_split, load_split, parse_hf, read_split
from xner.data.formats import read_conll, write_conll
from xner.data.labels import (
    apply_label_map,
    check_label_map,
    describe_label_map,
    iob2_tags,
    label_map_between,
    map_tags,
    shared_labels,
)
from xner.data.stats import sentence_stats
from xner.errors import XnerError

WIKIANN = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
MASAKHANER = (*WIKIANN, "B-DATE", "I-DATE")


@pytest.fixture(autouse=True)
def no_env_root(monkeypatch):
    """Tests name their data root; the developer's XNER_DATA_DIR must not leak in."""
    monkeypatch.delenv("XNER_DATA_DIR", raising=False)


# --- label sets and maps ---------------------------------------------------------------


def test_declared_label_sets():
    assert dataset_labels("wikiann") == WIKIANN
    assert dataset_labels("masakhaner2") == MASAKHANER


@pytest.mark.parametrize(
    ("a", "b", "shared", "a_to_b"),
    [
        (MASAKHANER, WIKIANN, WIKIANN, {"DATE": "O"}),
        (WIKIANN, MASAKHANER, WIKIANN, {}),
        (iob2_tags(["LOC", "GPE"]), WIKIANN, iob2_tags(["LOC"]), {"GPE": "O"}),
    ],
)
def test_shared_labels_and_map_between(a, b, shared, a_to_b):
    assert shared_labels(a, b) == shared
    assert label_map_between(a, b) == a_to_b
    assert apply_label_map(a, a_to_b) == shared


@pytest.mark.parametrize(
    ("label_map", "tags", "mapped", "described"),
    [
        ({"DATE": "O"}, ["B-DATE", "I-DATE", "B-PER"], ("O", "O", "B-PER"), "B-/I-DATE -> O"),
        ({"ORG": "LOC"}, ["B-ORG", "I-ORG", "O"], ("B-LOC", "I-LOC", "O"), "B-/I-ORG -> B-/I-LOC"),
        ({}, ["B-PER"], ("B-PER",), "none (tags used as the dataset declares them)"),
    ],
)
def test_label_map_effect_and_description(label_map, tags, mapped, described):
    assert map_tags(tags, label_map) == mapped
    assert describe_label_map(label_map) == described


@pytest.mark.parametrize(
    ("label_map", "fragment"),
    [
        ({"MISC": "O"}, "unknown entity type in label map 'MISC'; valid: DATE, LOC, ORG, PER"),
        ({"B-DATE": "O"}, "unknown entity type in label map 'B-DATE'"),
        ({"DATE": "B-LOC"}, "map a type to another type name"),
        ({"DATE": ""}, "map a type to another type name"),
    ],
)
def test_bad_label_maps(label_map, fragment):
    with pytest.raises(XnerError, match=fragment):
        check_label_map(label_map, ["PER", "ORG", "LOC", "DATE"])


# --- the local layout ------------------------------------------------------------------


def test_load_split_from_root(data_root):
    sentences = load_split("de", "train", data_dir=data_root)
    assert len(sentences) == 40
    assert {s.lang for s in sentences} == {"de"}
    assert sentences == read_conll(data_root / "wikiann/de/train.conllu", lang="de")


def test_a_split_is_parsed_once_until_its_file_changes(data_root, monkeypatch):
    parsed = []
    original = xd.parse_conll
    monkeypatch.setattr(xd, "parse_conll", lambda path, **kw: parsed.append(path) or original(path, **kw))
    xd._parsed.cache_clear()
    first = load_split("de", "train", data_dir=data_root)
    first.clear()  # the caller's own list: the next reader still gets every sentence
    again = load_split("de", "train", data_dir=data_root)
    assert len(parsed) == 1 and len(again) == 40
    path = data_root / "wikiann/de/train.conllu"
    write_conll(again[:10], path, format="indexed")
    assert len(load_split("de", "train", data_dir=data_root)) == 10 and len(parsed) == 2
    xd._parsed.cache_clear()


def test_env_var_names_the_root(data_root, monkeypatch):
    monkeypatch.setenv("XNER_DATA_DIR", str(data_root))
    assert find_split("nl", "dev") == data_root / "wikiann/nl/dev.conllu"


@pytest.mark.parametrize("code", ["swa", "sw"])
def test_iso1_and_iso3_codes_find_the_folder(data_root, code):
    assert find_split(code, "test", "masakhaner2", data_root).parent.name == "swa"
    assert load_split(code, "test", "masakhaner2", data_root)[0].lang == code


def test_label_map_applied_on_load(data_root):
    raw = load_split("swa", "train", "masakhaner2", data_root)
    mapped = load_split("swa", "train", "masakhaner2", data_root, label_map={"DATE": "O"})
    assert sentence_stats(raw)["DATE"] > 0
    assert "DATE" not in sentence_stats(mapped)
    assert sentence_stats(mapped)["PER"] == sentence_stats(raw)["PER"]
    with pytest.raises(XnerError, match="unknown entity type in label map 'DATE'"):
        load_split("de", "train", data_dir=data_root, label_map={"DATE": "O"})


def test_tags_outside_the_declared_set_are_an_error(data_root):
    path = data_root / "wikiann/de/dev.conllu"
    path.write_text("0\tin\tO\n1\tMarch\tB-DATE\n")
    with pytest.raises(XnerError, match=rf"^{path}:2: unknown tag 'B-DATE'; valid: B-LOC"):
        load_split("de", "dev", data_dir=data_root)


def test_declared_repair_default(data_root):
    text = "the O\nBank I-ORG\n"
    for dataset, lang in (("masakhaner2", "swa"), ("wikiann", "de")):
        folder = data_root / dataset / lang
        for old in folder.iterdir():
            old.unlink()
        (folder / "dev.txt").write_text(text)
    assert read_split("swa", "dev", "masakhaner2", data_root).repairs == 1  # declared
    with pytest.raises(XnerError, match="dev.txt:2: I-ORG follows O"):
        load_split("swa", "dev", "masakhaner2", data_root, repair=False)
    with pytest.raises(XnerError, match="dev.txt:2: I-ORG follows O"):
        load_split("de", "dev", "wikiann", data_root)  # wikiann declares no defects
    assert load_split("de", "dev", "wikiann", data_root, repair=True)[0].tags == ("O", "B-ORG")


def test_user_folder_dataset(tmp_path, make_corpus):
    folder = tmp_path / "mine"
    write_conll(make_corpus(5, "xx", types=("GPE",)), folder / "xx" / "train.conll.gz")
    assert len(load_split("xx", "train", str(folder))) == 5
    with pytest.raises(XnerError, match="declares no labels: add labels.txt"):
        dataset_labels(str(folder))
    (folder / "labels.txt").write_text("O\nB-GPE\nI-GPE\n")
    assert dataset_labels(str(folder)) == ("O", "B-GPE", "I-GPE")
    (folder / "labels.txt").write_text("O\nGPE\n")
    with pytest.raises(XnerError, match="labels.txt: malformed tag 'GPE'"):
        dataset_labels(str(folder))


def _drop(root: Path, relative: str) -> None:
    for path in sorted((root / relative).rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (root / relative).rmdir()


# (what to change in the root, arguments, message pattern)
MISSING = {
    "root": (None, {"lang": "de", "data_dir": "{root}/nowhere"}, r"data dir '.*/nowhere' \(from --data-dir\) is not a folder"),
    "dataset folder": ("masakhaner2", {"lang": "swa", "dataset": "masakhaner2"}, r"no dataset folder .*/masakhaner2; datasets there: wikiann"),
    "language folder": (None, {"lang": "fr"}, r"no language folder 'fr' in .*/wikiann; available: de, nl"),
    "unknown code": (None, {"lang": "zz"}, r"no language folder 'zz' in .*/wikiann; available: de, nl$"),
    "in another dataset": (None, {"lang": "sw"}, r"no language folder 'sw' in .*/wikiann; available: de, nl; "
                           r"'sw' is in masakhaner2 \(choose with --dataset\)$"),
    "split file": ("wikiann/de/dev.conllu", {"lang": "de", "split": "dev"}, r"no 'dev' file in .*/wikiann/de; found: test.conllu, train.conllu"),
    "unknown split": (None, {"lang": "de", "split": "valid"}, r"unknown split 'valid'; valid: dev, test, train"),
    "unknown dataset": (None, {"lang": "de", "dataset": "conll03"}, r"unknown dataset 'conll03'; valid: masakhaner2, wikiann, or a folder"),
}


@pytest.mark.parametrize(("drop", "kwargs", "pattern"), MISSING.values(), ids=MISSING)
def test_missing_data_is_one_clear_line(data_root, drop, kwargs, pattern):
    if drop:
        target = data_root / drop
        target.unlink() if target.is_file() else _drop(data_root, drop)
    kwargs = {"data_dir": data_root, **kwargs}
    kwargs["data_dir"] = str(kwargs["data_dir"]).format(root=data_root)
    with pytest.raises(XnerError, match=pattern) as caught:
        load_split(**kwargs)
    assert "\n" not in str(caught.value)


def test_two_files_for_one_split_are_ambiguous(data_root):
    (data_root / "wikiann/de/train.txt").write_text("a O\n")
    with pytest.raises(XnerError, match="more than one 'train' file in .*; found: dev.conllu"):
        find_split("de", "train", data_dir=data_root)


# --- the Hugging Face schema -----------------------------------------------------------

HF_FEATURES = hf.Features(
    {
        "tokens": hf.Sequence(hf.Value("string")),
        "ner_tags": hf.Sequence(hf.ClassLabel(names=list(WIKIANN))),
        "langs": hf.Sequence(hf.Value("string")),
        "spans": hf.Sequence(hf.Value("string")),
    }
)


def hf_split(sentences: list[Sentence], names=WIKIANN) -> hf.Dataset:
    """A split with the exact schema of ``unimelb-nlp/wikiann``: ClassLabel ids, langs, spans."""
    features = HF_FEATURES.copy()
    features["ner_tags"] = hf.Sequence(hf.ClassLabel(names=list(names)))
    return hf.Dataset.from_dict(
        {
            "tokens": [list(s.tokens) for s in sentences],
            "ner_tags": [[names.index(t) for t in s.tags] for s in sentences],
            "langs": [[s.lang] * len(s) for s in sentences],
            "spans": [[] for _ in sentences],
        },
        features=features,
    )


def test_hf_classlabel_ids_become_tags_after_save_and_load(make_corpus, tmp_path):
    sentences = make_corpus(20, "de")
    hf.DatasetDict({"train": hf_split(sentences)}).save_to_disk(str(tmp_path / "hf"))
    rows = hf.load_from_disk(str(tmp_path / "hf"))["train"]
    report = parse_hf(rows, lang="de", labels=WIKIANN, source="local/de/train")
    assert report.sentences == sentences
    assert report.format == "hf"


def test_hf_ids_follow_the_datasets_own_names(make_corpus):
    sentences = make_corpus(8, "de")
    reordered = ("O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER")
    assert parse_hf(hf_split(sentences, reordered), lang="de").sentences == sentences


def test_hf_string_tags(make_corpus):
    sentences = make_corpus(3, "sw", types=("DATE",))
    rows = hf.Dataset.from_dict(
        {"tokens": [list(s.tokens) for s in sentences], "ner_tags": [list(s.tags) for s in sentences]}
    )
    assert parse_hf(rows, lang="sw", labels=MASAKHANER).sentences == sentences


@pytest.mark.parametrize(
    ("sentence", "names", "kwargs", "fragment"),
    [
        (Sentence(("Monday",), ("B-DATE",), "de"), MASAKHANER, {"labels": WIKIANN}, "src row 1: unknown tag 'B-DATE'"),
        (Sentence(("Bank",), ("I-ORG",), "de"), WIKIANN, {}, "src row 1: I-ORG follows O"),
        (Sentence((), (), "de"), WIKIANN, {}, "src row 1: empty sentence"),
        (Sentence((" ",), ("O",), "de"), WIKIANN, {}, "src row 1: empty token"),
    ],
)
def test_hf_bad_rows(sentence, names, kwargs, fragment):
    rows = hf_split([Sentence(("Oslo",), ("B-LOC",), "de"), sentence], names)
    with pytest.raises(XnerError, match=fragment):
        parse_hf(rows, source="src", **kwargs)


def test_hf_ids_outside_the_classlabel_and_length_mismatch():
    rows = hf.Dataset.from_dict(
        {"tokens": [["Oslo"], ["a", "b"]], "ner_tags": [[5], [0]]},
        features=hf.Features({"tokens": hf.Sequence(hf.Value("string")),
                              "ner_tags": hf.Sequence(hf.Value("int64"))}),
    )
    rows = rows.cast_column("ner_tags", hf.Sequence(hf.ClassLabel(names=list(WIKIANN))))
    with pytest.raises(XnerError, match="src row 1: 2 tokens but 1 tags"):
        parse_hf(rows, source="src")
    unlabeled = hf.Dataset.from_dict(
        {"tokens": [["Oslo"]], "ner_tags": [[-1]]},
        features=hf.Features({"tokens": hf.Sequence(hf.Value("string")),
                              "ner_tags": hf.Sequence(hf.ClassLabel(names=list(WIKIANN)))}),
    )
    with pytest.raises(XnerError, match=r"src row 0: tag ids \[-1\] outside the ClassLabel's 0..6"):
        parse_hf(unlabeled, source="src")


def test_hf_repair(make_corpus):
    rows = hf_split([Sentence(("Bank", "Union"), ("I-ORG", "I-ORG"), "de")])
    report = parse_hf(rows, repair=True)
    assert report.sentences[0].tags == ("B-ORG", "I-ORG")
    assert report.repairs == 1


@pytest.mark.parametrize(
    ("dataset", "lang", "hub_id", "config"),
    [
        ("wikiann", "de", "unimelb-nlp/wikiann", "de"),
        ("wikiann", "deu", "unimelb-nlp/wikiann", "de"),
        ("masakhaner2", "sw", "masakhane/masakhaner2", "swa"),
        ("wikiann", "zz", "unimelb-nlp/wikiann", "zz"),
    ],
)
def test_no_local_root_loads_from_the_hub(monkeypatch, make_corpus, dataset, lang, hub_id, config):
    sentences = make_corpus(6, lang)
    calls = []

    def fake_load_dataset(path, name, split):
        calls.append((path, name, split))
        return hf_split(sentences)

    monkeypatch.setattr(hf, "load_dataset", fake_load_dataset)
    assert load_split(lang, "dev", dataset) == sentences
    assert calls == [(hub_id, config, "validation")]


def test_hub_failure_is_one_line(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'unimelb-nlp/wikiann' on the Hub (LocalEntryNotFoundError)\nmore")

    monkeypatch.setattr(hf, "load_dataset", offline)
    with pytest.raises(XnerError) as caught:
        load_split("de", "test")
    message = str(caught.value)
    assert "set XNER_DATA_DIR or --data-dir" in message
    assert "unimelb-nlp/wikiann/de/test" in message and "Couldn't reach" in message
    assert "\n" not in message


# --- real data (skipped without XNER_DATA_DIR) -----------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["wikiann", "masakhaner2"])
def test_every_real_train_split_matches_its_source_table(real_data, source_counts, dataset):
    for lang, expected in source_counts(dataset).items():
        sentences = load_split(lang, "train", dataset, real_data)
        assert len(sentences) == expected["train"], lang
        assert sentence_stats(sentences)["entities"] == expected["train_entities"], lang


def test_real_masakhaner_defects_are_declared_and_counted(real_data):
    with pytest.raises(XnerError, match=r"yor/train.txt:56179: I-LOC follows O"):
        load_split("yor", "train", "masakhaner2", real_data, repair=False)
    assert read_split("yor", "train", "masakhaner2", real_data).repairs == 1
    assert xd.DATASETS["masakhaner2"].repair and "yor/train.txt" in xd.DATASETS["masakhaner2"].repair_note
