"""Model-name resolution: built-ins, local directories, hub ids (offline), fingerprints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from xner.errors import XnerError
from xner.models import Backbone, embedded_model_dir, load_backbone
from xner.models.backbone import ALIASES, TINY_SEED
from xner.models.embedded import CharMap

LABELS = ("O", "B-LOC", "I-LOC")
ID2LABEL = dict(enumerate(LABELS))
LABEL2ID = {label: i for i, label in ID2LABEL.items()}


def _classifier(backbone: Backbone):
    return backbone.token_classification_model(LABELS)


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache in offline mode: nothing can be downloaded."""
    import huggingface_hub.constants

    cache = tmp_path / "hf-hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def saved_tiny(tmp_path: Path) -> Path:
    """A local HF directory holding the tiny model (as a token classifier) and its tokenizer."""
    tiny = load_backbone("tiny")
    path = tmp_path / "tiny-model"
    _classifier(tiny).save_pretrained(path)
    tiny.tokenizer.save_pretrained(path)
    return path


# --- tiny ------------------------------------------------------------------------------------

def test_tiny_is_a_small_bert_with_a_real_fast_tokenizer():
    tiny = load_backbone("tiny")
    assert (tiny.name, tiny.source, tiny.normalize) == ("tiny", None, None)
    assert (tiny.config.num_hidden_layers, tiny.config.hidden_size, tiny.config.num_attention_heads) == (2, 32, 2)
    encoding = tiny.tokenizer(["Ọlá", "lives", "in", "Москва", "東京"], is_split_into_words=True)
    assert encoding.word_ids() == [None, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 3, 3, 3, 3, 3, 3, 4, 4, None]
    assert tiny.tokenizer.convert_ids_to_tokens(encoding["input_ids"])[1:4] == ["Ọ", "##l", "##á"]
    assert tiny.tokenizer.unk_token_id in encoding["input_ids"]  # Han is outside its vocabulary


def test_tiny_weights_come_from_the_seed_and_leave_global_rng_alone():
    tiny = load_backbone("tiny")
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first, second = _classifier(tiny), _classifier(tiny)
    assert torch.equal(torch.rand(3), expected_next)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name
    assert first.config.id2label == ID2LABEL and first.num_labels == 3
    batch = tiny.tokenizer([["Accra", "is", "big"]], is_split_into_words=True, return_tensors="pt")
    assert first(**batch).logits.shape == (1, batch["input_ids"].shape[1], 3)
    assert TINY_SEED == 0


# --- local directories -----------------------------------------------------------------------

def test_local_directory_loads_its_tokenizer_config_and_weights(saved_tiny: Path):
    from safetensors.torch import load_file

    local = load_backbone(str(saved_tiny))
    assert (local.name, local.source, local.normalize) == (str(saved_tiny), saved_tiny, None)
    assert local.config.hidden_size == 32 and local.tokenizer.is_fast
    assert local.tokenizer("Lagos")["input_ids"] == load_backbone("tiny").tokenizer("Lagos")["input_ids"]
    saved = load_file(saved_tiny / "model.safetensors")
    model = _classifier(local)
    assert torch.equal(model.bert.embeddings.word_embeddings.weight, saved["bert.embeddings.word_embeddings.weight"])


def test_fingerprint_is_stable_and_follows_the_files(saved_tiny: Path, tmp_path: Path):
    tiny = load_backbone("tiny")
    assert tiny.fingerprint == load_backbone("tiny").fingerprint
    assert len(tiny.fingerprint) == 64
    local = load_backbone(str(saved_tiny)).fingerprint
    assert local == load_backbone(str(saved_tiny)).fingerprint != tiny.fingerprint
    copy = shutil.copytree(saved_tiny, tmp_path / "copy")
    (copy / "README.md").write_text("not a model file")
    assert load_backbone(str(copy)).fingerprint == local  # same content, other place
    config = copy / "config.json"
    config.write_text(config.read_text().replace('"hidden_size": 32', '"hidden_size": 32 '))
    assert load_backbone(str(copy)).fingerprint != local


def test_a_tokenizer_is_parsed_once_per_process_per_content(saved_tiny: Path, tmp_path: Path):
    first = load_backbone(str(saved_tiny)).tokenizer
    copy = shutil.copytree(saved_tiny, tmp_path / "copy")
    assert load_backbone(str(copy)).tokenizer is first  # every tagger of a study carries the same one
    settings = copy / "tokenizer_config.json"
    config = json.loads(settings.read_text())
    settings.write_text(json.dumps({**config, "model_max_length": 7}))
    changed = load_backbone(str(copy)).tokenizer
    assert changed is not first and changed.model_max_length == 7


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: d, "not a loadable Hugging Face model directory"),                      # empty
    (lambda d: (d / "config.json").write_text("{not json") and d, "not a loadable"),   # broken
])
def test_broken_local_directory_is_a_one_line_error(tmp_path: Path, make, message):
    folder = tmp_path / "model"
    folder.mkdir()
    with pytest.raises(XnerError, match=message) as err:
        load_backbone(str(make(folder)))
    assert "\n" not in str(err.value)


# --- embedded --------------------------------------------------------------------------------

def test_embedded_is_the_default_and_brings_its_normaliser(embedded_cache: Path):
    backbone = load_backbone()
    assert backbone.name == "embedded" and backbone.source == embedded_model_dir()
    assert isinstance(backbone.normalize, CharMap) and backbone.normalize("\ufb01") == "fi"
    assert backbone.config.vocab_size == 250_037 and len(backbone.tokenizer) == 250_002
    assert backbone.fingerprint == load_backbone("embedded").fingerprint
    model = _classifier(backbone)
    assert model.config.label2id == LABEL2ID and model.config.num_hidden_layers == 12


# --- hub ids ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "repo_id"), [
    ("xner-test/no-such-model", "xner-test/no-such-model"),
    ("xlm-roberta-large", "xlm-roberta-large"),
    ("mbert", ALIASES["mbert"]),
])
def test_uncached_hub_model_offline_says_how_to_get_it(offline_hub, name, repo_id):
    with pytest.raises(XnerError) as err:
        load_backbone(name)
    message = str(err.value)
    assert f"huggingface-cli download {repo_id}`" in message and "HF_HOME" in message
    assert "\n" not in message


def test_cached_hub_model_loads_offline_with_commit_fingerprint(offline_hub: Path, saved_tiny: Path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = offline_hub / "models--xner-test--tiny"
    shutil.copytree(saved_tiny, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    hub = load_backbone("xner-test/tiny")
    assert hub.source == "xner-test/tiny" and hub.config.hidden_size == 32
    assert hub.fingerprint == load_backbone("xner-test/tiny").fingerprint
    assert hub.fingerprint != load_backbone(str(saved_tiny)).fingerprint
    assert _classifier(hub).config.num_labels == 3


@pytest.mark.parametrize("name", ["./no/such/dir", "/no/such/dir", "two words", "a/b/c", ""])
def test_malformed_name_lists_what_a_name_can_be(name):
    with pytest.raises(XnerError, match="neither a built-in name .*embedded, tiny"):
        load_backbone(name)
