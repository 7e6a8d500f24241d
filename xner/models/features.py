"""Content-addressed disk cache of frozen-layer features: the bottom of the encoder runs once per sentence.

A study trains and evaluates many models on the same sentences: native and
teacher models, every student volume and seed (nested subsets of one pool),
every model scored on one test set, and perturbed test sets that differ from the
clean one in a few sentences. With the bottom L-K layers frozen, a sentence's
features depend only on the pretrained weights and its subword ids, so they are
stored under the hash of those ids and computed only for sentences never seen
before. Whatever the mix of subsets, each distinct sentence is encoded once.

Layout: ``$XNER_CACHE/features/<backbone fingerprint + layers>/shard-*.npy``
(fp16 rows, memory-mapped) with a ``.json`` manifest each (sentence keys, row
offsets, checksum). A shard is written under a temporary name and renamed when
complete, so a reader never sees a partial one; a shard whose checksum fails is
deleted and its sentences recomputed. Shards are immutable, so concurrent
workers can only duplicate work, never corrupt it.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from xner.models.batching import length_batches, pad_batch
from xner.models.device import autocast_dtype, autocast_to
from xner.models.encoding import EncodedCorpus
from xner.models.int8 import int8_network
from xner.models.split import bottom_layers
from xner.paths import cache_dir

__all__ = ["FeatureStore", "FrozenFeatures", "content_key", "frozen_features"]

_FORMAT_VERSION = 3  # 3: computed in exact-length batches (xner.models.batching), not in mixed ones


@dataclass(frozen=True)
class FrozenFeatures:
    """Bottom-layer hidden states of the sentences of an encoded corpus.

    Sentence ``i``'s ``encoded.lengths[i]`` subword states are rows
    ``starts[i]:...`` of ``shards[shard_of[i]]`` (memory-mapped fp16 arrays).
    """

    encoded: EncodedCorpus
    shards: list[np.ndarray]
    shard_of: np.ndarray
    starts: np.ndarray

    def subset(self, indices: np.ndarray) -> "FrozenFeatures":
        indices = np.asarray(indices, dtype=np.int64)
        return FrozenFeatures(self.encoded.subset(indices), self.shards, self.shard_of[indices], self.starts[indices])

    def rows(self, i: int) -> np.ndarray:
        start = int(self.starts[i])
        return self.shards[self.shard_of[i]][start : start + int(self.encoded.lengths[i])]

    def batch(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded ``(hidden [B, T, H] float32, attention_mask [B, T])`` for some sentences."""
        lengths = self.encoded.lengths[indices]
        width = int(lengths.max())
        hidden_size = self.shards[int(self.shard_of[indices[0]])].shape[1]  # a shard this corpus uses
        out = np.zeros((len(indices), width, hidden_size), dtype=np.float32)
        mask = np.zeros((len(indices), width), dtype=np.int64)
        for row, i in enumerate(indices):
            n = int(lengths[row])
            out[row, :n] = self.rows(int(i))
            mask[row, :n] = 1
        return torch.from_numpy(out), torch.from_numpy(mask)


@dataclass
class FeatureStore:
    """The shards of one (backbone, frozen layer count): sentence key -> (shard, row).

    A shard's checksum is verified the first time one of its rows is asked for, not when
    its manifest is read: a process then pays for the shards it uses, not for the whole
    cache (several GB after a large study), and no row of an unverified shard is used.
    """

    root: Path
    shards: list[np.ndarray | None] = field(default_factory=list)  # None: not verified yet
    index: dict[bytes, tuple[int, int]] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set)
    _manifests: list[tuple[Path, str]] = field(default_factory=list)  # (data path, checksum) per shard

    def refresh(self) -> None:
        """Index shards written since the last look (by this or another process)."""
        if not self.root.is_dir():
            return
        for manifest_path in sorted(self.root.glob("shard-*.json")):
            if manifest_path.name in self._seen:
                continue
            self._seen.add(manifest_path.name)
            data_path = manifest_path.with_suffix(".npy")
            try:
                manifest = json.loads(manifest_path.read_text())
                if manifest["version"] != _FORMAT_VERSION:
                    raise ValueError("old format")
                keys, starts, checksum = manifest["keys"], manifest["starts"], str(manifest["checksum"])
            except (OSError, ValueError, KeyError, TypeError):  # TypeError: a manifest that is no object
                _discard(data_path)
                continue
            number = len(self.shards)
            self.shards.append(None)
            self._manifests.append((data_path, checksum))
            for key, start in zip(keys, starts):
                self.index.setdefault(bytes.fromhex(key), (number, start))

    def _verify(self, numbers: set[int]) -> None:
        """Open the given shards, checking their checksums; a corrupt one is deleted and unindexed."""
        bad = set()
        for number in numbers:
            if self.shards[number] is not None:
                continue
            data_path, checksum = self._manifests[number]
            try:
                if _checksum(data_path) != checksum:
                    raise ValueError("checksum mismatch")
                self.shards[number] = np.load(data_path, mmap_mode="r")
            except (OSError, ValueError):
                _discard(data_path)
                bad.add(number)
        if bad:
            self.index = {key: place for key, place in self.index.items() if place[0] not in bad}

    def locate(self, keys: list[bytes], compute: Callable[[list[int]], tuple[np.ndarray, list[int]]]) -> tuple[np.ndarray, np.ndarray]:
        """``(shard_of, starts)`` of every key, computing the missing ones once.

        Args:
            keys: one content key per item (duplicates allowed).
            compute: given the positions of the missing items, returns their rows
                stacked in one array and where each item's rows start in it.
        """
        self.refresh()
        self._verify({self.index[k][0] for k in keys if k in self.index})
        missing = sorted({k: i for i, k in enumerate(keys) if k not in self.index}.values())
        if missing:
            rows, starts = compute(missing)
            self.add([keys[i] for i in missing], rows, starts)
            self._verify({self.index[keys[i]][0] for i in missing})
        located = [self.index[k] for k in keys]
        return (np.fromiter((s for s, _ in located), dtype=np.int64, count=len(located)),
                np.fromiter((r for _, r in located), dtype=np.int64, count=len(located)))

    @classmethod
    def open(cls, root: Path) -> "FeatureStore":
        """The process-wide store of a folder (its index is kept between calls)."""
        return _STORES.setdefault(root, cls(root))

    def add(self, keys: list[bytes], hidden: np.ndarray, starts: list[int]) -> None:
        """Write one new immutable shard (atomically) and index it."""
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"shard-{uuid.uuid4().hex}"
        tmp = self.root / f".{name}.npy.tmp"
        with open(tmp, "wb") as handle:
            np.save(handle, hidden)
        manifest = {"version": _FORMAT_VERSION, "keys": [k.hex() for k in keys], "starts": starts,
                    "checksum": _checksum(tmp)}
        os.replace(tmp, self.root / f"{name}.npy")
        tmp_manifest = self.root / f".{name}.json.tmp"
        tmp_manifest.write_text(json.dumps(manifest))
        os.replace(tmp_manifest, self.root / f"{name}.json")
        self.refresh()
        data_path = self.root / f"{name}.npy"
        number = next(n for n, (path, _) in enumerate(self._manifests) if path == data_path)
        self.shards[number] = np.load(data_path, mmap_mode="r")  # checksummed above, as it was written


_STORES: dict[Path, FeatureStore] = {}


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
    precision: str = "fp32",
) -> FrozenFeatures:
    """Bottom-layer features of every sentence, computing only those not cached yet.

    Args:
        model: a token-classification model whose bottom ``n_frozen`` layers are
            the pretrained ones named by ``backbone_fingerprint``.
        encoded: the sentences, as :func:`xner.models.encoding.encode_corpus` made them.
        n_frozen: how many transformer layers (after the embeddings) to run.
        backbone_fingerprint: identifies the pretrained weights and tokenizer.
        pad_id: the tokenizer's padding id.
        cache_root: defaults to ``$XNER_CACHE/features``.
        precision: the bottom runs in ``fp32``, ``bf16`` or ``fp16`` (autocast: bf16 is
            2.5-3x faster on CPUs that compute it natively) or ``int8`` (ONNX Runtime,
            :mod:`xner.models.int8`). Part of the cache key: features computed in another
            precision are other features.
    """
    key = f"{_FORMAT_VERSION}|{backbone_fingerprint}|{n_frozen}"
    key += _PRECISION_KEYS[precision]
    name = hashlib.blake2b(key.encode(), digest_size=12).hexdigest()
    root = (cache_root or cache_dir() / "features") / name
    store = FeatureStore.open(root)

    def compute(missing: list[int]) -> tuple[np.ndarray, list[int]]:
        subset = encoded.subset(np.asarray(missing))
        hidden = np.empty((len(subset.input_ids), model.config.hidden_size), dtype=np.float16)
        bottom = _bottom_network(model, n_frozen, precision, f"{backbone_fingerprint}|bottom{n_frozen}", device)
        _compute(bottom, subset, hidden, pad_id, device, batch_tokens)
        return hidden, subset.offsets[:-1].tolist()

    shard_of, starts = store.locate([content_key(encoded.ids(i)) for i in range(len(encoded))], compute)
    return FrozenFeatures(encoded=encoded, shards=store.shards, shard_of=shard_of, starts=starts)


def content_key(ids: np.ndarray) -> bytes:
    """The cache key of one sentence: a hash of its (subword or word-level) content."""
    return hashlib.blake2b(np.ascontiguousarray(ids).tobytes(), digest_size=16).digest()


class _Bottom(nn.Module):
    """The embeddings and first ``n_frozen`` layers of a model: ``(ids, mask) -> hidden states``."""

    def __init__(self, model: nn.Module, n_frozen: int) -> None:
        super().__init__()
        self.model, self.n_frozen = model, n_frozen

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        with bottom_layers(self.model, self.n_frozen) as bottom:
            return bottom(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def _bottom_network(model: nn.Module, n_frozen: int, precision: str, key: str, device) -> Callable:
    """The bottom as a callable in ``precision`` (autocast, or an int8 ONNX Runtime session)."""
    model.eval()
    bottom = _Bottom(model, n_frozen)
    if precision == "int8":
        return int8_network(bottom, ("input_ids", "attention_mask"), key)
    dtype = autocast_dtype(torch.device(device), precision)

    def run(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with autocast_to(device, dtype):
            return bottom(ids, mask)

    return run


# Cache-key suffix per precision (fp32 keeps the key features had before precisions existed).
_PRECISION_KEYS = {"fp32": "", "bf16": "|bfloat16", "fp16": "|float16", "int8": "|int8-ort"}


def _compute(bottom, encoded, out, pad_id, device, batch_tokens) -> None:
    with torch.inference_mode():
        for indices in length_batches(encoded.lengths, batch_tokens=batch_tokens):
            ids, mask = pad_batch(encoded, indices, pad_id)
            hidden = bottom(ids.to(device), mask.to(device)).to("cpu", torch.float16).numpy()
            for row, i in enumerate(indices):
                start, end = encoded.offsets[i], encoded.offsets[i + 1]
                out[start:end] = hidden[row, : end - start]


def _discard(data_path: Path) -> None:
    """Delete a corrupt or stale shard: its sentences are recomputed."""
    data_path.with_suffix(".json").unlink(missing_ok=True)
    data_path.unlink(missing_ok=True)


def _checksum(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()
