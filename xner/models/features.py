"""Disk cache of frozen-layer features: the bottom of the encoder runs once per sentence.

A study trains and evaluates many models on the same sentences (native, teacher,
every student volume, every seed, every model evaluated on one test set). With
the bottom L-K layers frozen, their output depends only on the pretrained
weights and the subword ids, so it is computed once, stored as fp16 in a
memory-mapped file, and read back by every later run.

Cache key = backbone fingerprint + number of frozen layers + the encoded
corpus's content hash: any change to weights, tokenizer, sentences or layer
count gives a new key, so a stale entry is never used. Entries are written into
a temporary folder and renamed when complete; the manifest holds a checksum
that is verified on load, and a corrupt entry is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from xner.models.batching import length_batches, pad_batch
from xner.models.encoding import EncodedCorpus
from xner.models.split import bottom_layers
from xner.paths import cache_dir

__all__ = ["FrozenFeatures", "frozen_features"]

_FORMAT_VERSION = 1
_DATA_FILE = "hidden.f16"
_MANIFEST = "manifest.json"


@dataclass(frozen=True)
class FrozenFeatures:
    """Bottom-layer hidden states of the sentences of an encoded corpus.

    ``hidden[starts[i] : starts[i] + encoded.lengths[i]]`` are sentence ``i``'s
    subword states; a :meth:`subset` is a view on the same (memory-mapped) rows,
    so every training size, volume and seed drawn from one pool reads one cache.
    """

    hidden: np.ndarray  # [total_subwords, hidden_size] float16, usually a memmap
    encoded: EncodedCorpus
    starts: np.ndarray
    path: Path | None = None

    def subset(self, indices: np.ndarray) -> "FrozenFeatures":
        indices = np.asarray(indices, dtype=np.int64)
        return FrozenFeatures(self.hidden, self.encoded.subset(indices), self.starts[indices], self.path)

    def batch(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded ``(hidden [B, T, H] float32, attention_mask [B, T])`` for some sentences."""
        lengths = self.encoded.lengths[indices]
        width = int(lengths.max())
        out = np.zeros((len(indices), width, self.hidden.shape[1]), dtype=np.float32)
        mask = np.zeros((len(indices), width), dtype=np.int64)
        for row, i in enumerate(indices):
            n, start = int(lengths[row]), int(self.starts[i])
            out[row, :n] = self.hidden[start : start + n]
            mask[row, :n] = 1
        return torch.from_numpy(out), torch.from_numpy(mask)


def frozen_features(
    model: nn.Module,
    encoded: EncodedCorpus,
    n_frozen: int,
    backbone_fingerprint: str,
    *,
    pad_id: int,
    device: torch.device | str = "cpu",
    batch_tokens: int = 8192,
    cache_root: Path | None = None,
) -> FrozenFeatures:
    """Return the cached bottom-layer features, computing and storing them if needed.

    Args:
        model: a token-classification model whose bottom ``n_frozen`` layers are
            the pretrained ones named by ``backbone_fingerprint``.
        encoded: the sentences, as :func:`xner.models.encoding.encode_corpus` made them.
        n_frozen: how many transformer layers (after the embeddings) to run.
        backbone_fingerprint: identifies the pretrained weights and tokenizer.
        pad_id: the tokenizer's padding id.
        cache_root: defaults to ``$XNER_CACHE/features``.
    """
    key = hashlib.blake2b(
        f"{_FORMAT_VERSION}|{backbone_fingerprint}|{n_frozen}|{encoded.fingerprint}".encode(),
        digest_size=16,
    ).hexdigest()
    root = cache_root or cache_dir() / "features"
    entry = root / key
    cached = _load(entry, encoded)
    if cached is not None:
        return cached
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
    try:
        hidden_size = model.config.hidden_size
        data = np.lib.format.open_memmap(
            tmp / _DATA_FILE, mode="w+", dtype=np.float16, shape=(len(encoded.input_ids), hidden_size)
        )
        _compute(model, encoded, n_frozen, data, pad_id, device, batch_tokens)
        data.flush()
        del data
        manifest = {
            "version": _FORMAT_VERSION,
            "rows": int(len(encoded.input_ids)),
            "hidden_size": int(hidden_size),
            "n_frozen": n_frozen,
            "backbone": backbone_fingerprint,
            "corpus": encoded.fingerprint,
            "checksum": _checksum(tmp / _DATA_FILE),
        }
        (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=1))
        if entry.exists():  # a corrupt entry we are replacing
            shutil.rmtree(entry)
        os.replace(tmp, entry)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    loaded = _load(entry, encoded)
    assert loaded is not None, f"feature cache {entry} unreadable right after writing"
    return loaded


def _compute(model, encoded, n_frozen, out, pad_id, device, batch_tokens) -> None:
    model.eval()
    with torch.inference_mode(), bottom_layers(model, n_frozen) as bottom:
        for indices in length_batches(encoded.lengths, batch_tokens=batch_tokens):
            ids, mask = pad_batch(encoded, indices, pad_id)
            hidden = bottom(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
            hidden = hidden.to("cpu", torch.float16).numpy()
            for row, i in enumerate(indices):
                start, end = encoded.offsets[i], encoded.offsets[i + 1]
                out[start:end] = hidden[row, : end - start]


def _load(entry: Path, encoded: EncodedCorpus) -> FrozenFeatures | None:
    """The entry if complete and intact, else None (it will be rebuilt)."""
    manifest_path = entry / _MANIFEST
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
        data_path = entry / _DATA_FILE
        if manifest["rows"] != len(encoded.input_ids) or _checksum(data_path) != manifest["checksum"]:
            return None
        hidden = np.load(data_path, mmap_mode="r")
    except (OSError, ValueError, KeyError, TypeError):  # TypeError: a manifest that is no object
        return None
    return FrozenFeatures(hidden=hidden, encoded=encoded, starts=encoded.offsets[:-1], path=entry)


def _checksum(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()
