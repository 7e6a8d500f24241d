"""``xner predict`` / :func:`xner.predict_file`: CoNLL and raw text in, tags out, in order.

A tiny model trained on the synthetic task of ``test_tagger`` tags files; the output must keep
the input's tokens and order, agree with :meth:`Tagger.predict`, be the same from a full and a
compact folder, in every chunking, and every bad input or model must be one line naming it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xner.cli import app
from xner.data import read_conll, write_conll
from xner.data.rawtext import sentences_from_text
from xner.errors import XnerError
from xner.predict import predict_file, read_input
from test_tagger import easy_corpus, train_tagger

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A trained tiny tagger saved full and compact (module scope: trained once)."""
    root = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XNER_CACHE", str(root / "cache"))
        tagger = train_tagger(easy_corpus(200), seed=0)
        tagger.save(root / "full")
        tagger.save(root / "compact", compact=True)
    return tagger, root


@pytest.fixture
def test_set():
    return easy_corpus(40, seed=3)


def conll_rows(path: Path) -> list[list[list[str]]]:
    """Sentences of a written CoNLL file as lists of its lines' fields."""
    blocks = path.read_text().split("\n\n")
    return [[line.split("\t") for line in block.splitlines()] for block in blocks if block.strip()]


@pytest.mark.parametrize("layout", ["conll", "conll-space", "indexed", "conll2003"])
def test_conll_input_keeps_tokens_and_order_and_matches_predict(models, test_set, tmp_path, layout):
    tagger, root = models
    source = write_conll(test_set, tmp_path / "in.txt", format=layout)
    if layout == "conll2003":  # as distributed: a -DOCSTART- line and its blank line first
        source.write_text("-DOCSTART- -X- -X- O\n\n" + source.read_text())
    summary = predict_file(root / "full", [source], tmp_path / "out.conll", precision="fp32")
    rows = conll_rows(tmp_path / "out.conll")
    assert [tuple(token for token, _ in sentence) for sentence in rows] == [s.tokens for s in test_set]
    assert [[tag for _, tag in sentence] for sentence in rows] == tagger.predict(test_set, precision="fp32")
    assert summary["sentences"] == len(test_set) and summary["tokens"] == sum(len(s) for s in test_set)
    predicted = read_conll(tmp_path / "out.conll")  # valid IOB2 with the model's labels
    assert {tag for s in predicted for tag in s.tags} <= set(tagger.labels)
    gold = [t for s in test_set for t in s.tags]
    assert sum(p == g for p, g in zip([t for s in predicted for t in s.tags], gold)) / len(gold) > 0.9


def test_token_only_lines_and_gzip_are_read(models, test_set, tmp_path):
    _, root = models
    text = "\n\n".join("\n".join(s.tokens) for s in test_set[:5]) + "\n"
    import gzip

    (tmp_path / "tokens.txt.gz").write_bytes(gzip.compress(text.encode()))
    sentences = list(read_input(tmp_path / "tokens.txt.gz"))
    assert [tokens for _, tokens in sentences] == [s.tokens for s in test_set[:5]]
    assert sentences[1][0] == len(test_set[0]) + 2  # the line each sentence starts on


def test_raw_text_is_split_as_the_pools_are(models, tmp_path):
    tagger, root = models
    text = "the Pablo said near Lima. Omni was in Leeds.\n\nPetra with Oxfam\n"
    (tmp_path / "in.txt").write_text(text)
    predict_file(root / "full", [tmp_path / "in.txt"], tmp_path / "out.jsonl", format="jsonl", probabilities=True,
                 lang="en", precision="fp32")
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["tokens"] for r in records] == sentences_from_text(text, "en")
    assert [r["line"] for r in records] == [1, 1, 3]
    assert records[0]["tags"] == ["O", "B-PER", "O", "O", "B-LOC", "O"]
    assert all(len(r["probabilities"]) == len(r["tokens"]) and all(0 < p <= 1 for p in r["probabilities"])
               for r in records)


def test_spans_give_entities_with_token_offsets(models, tmp_path):
    _, root = models
    (tmp_path / "in.txt").write_text("Petra with Oxfam in Lima\n")
    predict_file(root / "full", [tmp_path / "in.txt"], tmp_path / "out.jsonl", format="spans", input_format="text",
                 lang="en", precision="fp32", probabilities=True)
    record = json.loads((tmp_path / "out.jsonl").read_text())
    assert [(s["type"], s["start"], s["end"], s["text"]) for s in record["spans"]] == [
        ("PER", 0, 1, "Petra"), ("ORG", 2, 3, "Oxfam"), ("LOC", 4, 5, "Lima")]
    assert all(0.5 < s["probability"] <= 1 for s in record["spans"])


def test_compact_folder_chunking_and_several_inputs_give_the_same_output(models, test_set, tmp_path):
    _, root = models
    first = write_conll(test_set[:25], tmp_path / "a.conll")
    second = write_conll(test_set[25:], tmp_path / "b.conll")
    whole = write_conll(test_set, tmp_path / "all.conll")
    predict_file(root / "full", [whole], tmp_path / "full.conll", precision="fp32")
    predict_file(root / "compact", [first, second], tmp_path / "compact.conll", precision="fp32", chunk_size=7)
    assert (tmp_path / "compact.conll").read_text() == (tmp_path / "full.conll").read_text()


def test_int8_and_bf16_tag_the_easy_task_as_fp32(models, test_set, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("XNER_CACHE", str(tmp_path / "cache"))
    _, root = models
    source = write_conll(test_set, tmp_path / "in.conll")
    outputs = {}
    for precision in ("fp32", "bf16", "int8"):
        summary = predict_file(root / "compact", [source], tmp_path / f"{precision}.conll", precision=precision)
        assert summary["precision"] == precision
        outputs[precision] = (tmp_path / f"{precision}.conll").read_text()
    assert outputs["int8"] == outputs["fp32"] == outputs["bf16"]
    assert len(list((tmp_path / "cache" / "onnx").glob("*.onnx"))) == 1  # the exported model, kept


def test_cli_writes_the_file_and_a_summary(models, test_set, tmp_path):
    _, root = models
    source = write_conll(test_set, tmp_path / "in.conll")
    result = CliRunner().invoke(app, ["predict", str(root / "full"), str(source), "--out", str(tmp_path / "o.conll"),
                                      "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    assert f"tagged {len(test_set)} sentences" in result.output
    assert len(conll_rows(tmp_path / "o.conll")) == len(test_set)


def _corrupt_weights(root: Path, tmp_path: Path) -> Path:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(root / "full", broken)
    (broken / "model.safetensors").write_bytes(b"not a tensor file")
    return broken


def _corrupt_metadata(root: Path, tmp_path: Path) -> Path:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(root / "compact", broken)
    (broken / "xner.json").write_text("{")
    return broken


def test_a_file_named_conll_is_read_as_conll_whatever_its_lines(models, tmp_path):
    """A layout xner does not read, in a file whose name says CoNLL: a layout error, where
    sniffing alone would have tagged its tag columns as words of prose."""
    _, root = models
    path = tmp_path / "in.conll"
    path.write_text("Pablo\tB-PER\textra\tcolumns\n")
    with pytest.raises(XnerError, match=r"in.conll:1: cannot tell the token-line layout"):
        predict_file(root / "full", [path], tmp_path / "out.conll", precision="fp32")


@pytest.mark.parametrize(("model", "text", "message"), [
    (lambda root, tmp: tmp / "nowhere", "Pablo O\n", r"nowhere: not an xner model directory"),
    (_corrupt_weights, "Pablo O\n", r"broken/model.safetensors: checksum mismatch"),
    (_corrupt_metadata, "Pablo O\n", r"broken/xner.json: checksum mismatch"),
    (None, "Pablo\tB-PER\nsaid\tO\textra\n", r"in.txt:2: expected 2 fields"),
    (None, "Pablo\nsaid again\n", r"in.txt:2: expected one token a line"),
    (None, b"Pablo\n\xff\xfe\n", r"in.txt:2: not UTF-8 text"),
    (None, "\n\n", r"in.txt:1: no sentences"),
])
def test_bad_models_and_inputs_are_one_line_errors(models, tmp_path, model, text, message):
    _, root = models
    path = tmp_path / "in.txt"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    folder = model(root, tmp_path) if model else root / "full"
    with pytest.raises(XnerError, match=message):
        predict_file(folder, [path], tmp_path / "out.conll", precision="fp32", input_format="conll")
    result = CliRunner().invoke(app, ["predict", str(folder), str(path), "--precision", "fp32", "--input-format", "conll"])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and result.output.startswith("error: ")


@pytest.mark.parametrize(("option", "value", "message"), [
    ("format", "xml", "unknown output format 'xml'"),
    ("input_format", "pdf", "unknown input format 'pdf'"),
    ("precision", "int4", "unknown precision 'int4'"),
])
def test_unknown_options_list_the_valid_ones(models, tmp_path, option, value, message):
    _, root = models
    (tmp_path / "in.txt").write_text("Pablo\n")
    with pytest.raises(XnerError, match=message + "; valid: "):
        predict_file(root / "full", [tmp_path / "in.txt"], tmp_path / "out", **{option: value})


def test_missing_input_file_is_named(models, tmp_path):
    _, root = models
    with pytest.raises(XnerError, match=r"absent.conll: no such file"):
        predict_file(root / "full", [tmp_path / "absent.conll"], tmp_path / "out")


def test_a_failure_half_way_leaves_the_previous_output_untouched(models, test_set, tmp_path):
    # tagged chunks stream to a temporary file that replaces the output only when complete: a bad
    # line (or a kill) after the first chunks must not leave a half-tagged file under the final name
    _, root = models
    good = write_conll(test_set[:20], tmp_path / "good.conll")
    bad = tmp_path / "bad.conll"
    bad.write_text(good.read_text() + "\nPablo\tB-PER\textra\n")
    out = tmp_path / "out.conll"
    out.write_text("the previous output\n")
    with pytest.raises(XnerError, match=r"bad.conll:\d+: expected 2 fields"):
        predict_file(root / "full", [good, bad], out, precision="fp32", chunk_size=5)
    assert out.read_text() == "the previous output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.conll", "good.conll", "out.conll"]
