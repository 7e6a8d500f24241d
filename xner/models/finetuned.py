"""What every fine-tuned xner model is: a backbone with a head, its frozen bottom and its record.

The NER :class:`~xner.models.tagger.Tagger` and the document tasks'
:class:`~xner.models.document_model.DocumentModel` share this: which layers train (``train_layers=K``
freezes the bottom L-K and reads their output from the feature cache), the cache key of that
frozen bottom, and the content fingerprint of the trained weights.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from xner.errors import XnerError, one_line
from xner.models.backbone import Backbone, load_backbone
from xner.models.checksums import verify_checksums
from xner.models.device import default_device
from xner.models.split import freeze_bottom, num_layers

__all__ = ["FineTuned", "ModelRecord", "check_model_destination", "read_model_metadata"]

_METADATA = "xner.json"
_DELTA_WEIGHTS = "xner-delta.safetensors"
# Seed of the head a compact model is stored as a delta against (any fixed value works).
_REFERENCE_SEED = 0


@dataclass(frozen=True)
class ModelRecord:
    """What a saved model's ``xner.json`` says, checked: the record itself and the fields every
    loader needs before it can build the network."""

    metadata: dict
    labels: tuple[str, ...]
    n_frozen: int
    base_name: str
    base_fingerprint: str


def read_model_metadata(directory: Path) -> ModelRecord:
    """The ``xner.json`` record of a model folder, checked before any weights are read: the
    folder is an xner model, every file matches its checksum, and the record is a JSON object
    with labels, frozen layers and the backbone it was trained from.

    Raises:
        XnerError: one line naming the folder or file.
    """
    meta_path = directory / _METADATA
    if not meta_path.is_file():
        raise XnerError(f"{directory}: not an xner model directory (no {_METADATA}); train one with `xner train`")
    verify_checksums(directory)
    try:
        metadata = json.loads(meta_path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise _corrupt(meta_path, one_line(err)) from None
    if not isinstance(metadata, dict):
        raise _corrupt(meta_path, "not a JSON object")
    try:
        return ModelRecord(metadata, tuple(metadata["labels"]), int(metadata["n_frozen"]), metadata["backbone"],
                           metadata["backbone_fingerprint"])
    except (ValueError, KeyError, TypeError) as err:
        raise _corrupt(meta_path, one_line(err)) from None


def _corrupt(meta_path: Path, reason: str) -> XnerError:
    return XnerError(f"{meta_path}: corrupt model metadata ({reason}); restore the folder or retrain")


@dataclass
class FineTuned:
    """A pretrained encoder with a head, its labels and training record."""

    backbone: Backbone
    labels: tuple[str, ...]
    model: nn.Module
    n_frozen: int = 0
    device: torch.device = field(default_factory=default_device)
    metadata: dict = field(default_factory=dict)
    #: Name and fingerprint of the *pretrained* encoder this model started from: a
    #: student starts from it, and the frozen-feature cache is keyed by it.
    base_name: str = ""
    base_fingerprint: str = ""
    #: Each dropout module's rate as the model was built, what ``TrainConfig.dropout=None`` restores.
    pretrained_dropout: dict[str, float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.base_name = self.base_name or self.backbone.name
        self.base_fingerprint = self.base_fingerprint or self.backbone.fingerprint
        self.pretrained_dropout = {name: m.p for name, m in self.model.named_modules() if isinstance(m, nn.Dropout)}

    def _bottom_fingerprint(self) -> str:
        """Cache key of the frozen bottom: the pretrained encoder's, unless an earlier training
        changed those layers; then this model's own weights, so that the shared cache of
        pretrained features is neither read nor polluted."""
        top = num_layers(self.model) - self.n_frozen
        for training in self.metadata.get("trainings", []):
            trained = training["config"]["train_layers"]
            if trained is None or trained > top:
                return self.fingerprint
        return self.base_fingerprint

    @property
    def _pad_id(self) -> int:
        pad = self.backbone.tokenizer.pad_token_id
        return 0 if pad is None else int(pad)

    def _configure_training(self, config) -> None:
        """Set the dropout ``config.dropout`` (a TrainConfig) asks for (``None``: the pretrained
        model's own) and freeze what ``config.train_layers`` leaves frozen."""
        for name, module in self.model.named_modules():
            if isinstance(module, nn.Dropout):
                module.p = self.pretrained_dropout[name] if config.dropout is None else config.dropout
        total = num_layers(self.model)
        if config.train_layers is None:
            self.n_frozen = 0
            freeze_bottom(self.model, 0, config.freeze_embeddings)
            return
        if not 0 <= config.train_layers <= total:
            raise XnerError(f"train_layers must be between 0 and {total}, got {config.train_layers}")
        self.n_frozen = total - config.train_layers
        freeze_bottom(self.model, self.n_frozen, freeze_embeddings=True)

    def _optimization(self, config, examples: int) -> tuple[list[nn.Parameter], torch.optim.Optimizer, object, int]:
        """``(trainable parameters, AdamW, linear warm-up schedule, epochs)`` of a training run
        on ``examples`` examples (``config.min_steps`` adds epochs for small data)."""
        from xner.models.device import autocast_dtype

        trainable = [p for p in self.model.parameters() if p.requires_grad]
        # The fused AdamW kernel (1.1-1.3x faster steps) on the mixed-precision path only:
        # fp32 training stays bit-identical to the results xner has published.
        fused = autocast_dtype(self.device, config.precision) is not None
        optimizer = torch.optim.AdamW(_param_groups(self.model, config.weight_decay), lr=config.lr,
                                      fused=fused or None)
        steps_per_epoch = math.ceil(examples / config.batch_size)
        epochs = max(config.epochs, math.ceil(config.min_steps / max(steps_per_epoch, 1)))
        return trainable, optimizer, _linear_warmup(optimizer, config.warmup_ratio, steps_per_epoch * epochs), epochs

    @staticmethod
    def _step(loss: torch.Tensor, trainable, optimizer, scheduler, max_grad_norm: float) -> float:
        """One optimisation step on a batch loss (gradients clipped); returns the loss."""
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, max_grad_norm)
        optimizer.step()
        scheduler.step()
        return float(loss.detach())

    def _head(self) -> str:
        """The transformers auto class of the model (its head)."""
        return "AutoModelForTokenClassification"

    def _identity(self) -> dict:
        """What ``xner.json`` records beside labels and backbone to rebuild this kind of model."""
        return {}

    def save(self, directory: str | Path, *, compact: bool = False, overwrite: bool = False,
             **extra_metadata) -> Path:
        """Write an ordinary Hugging Face model directory plus ``xner.json`` and checksums.

        With ``compact``, write only the tensors that differ from the pretrained encoder
        (the trained top layers and the head: about 30 MB instead of 470 for the embedded
        model with ``train_layers=4``), exactly, in fp32. A study keeps hundreds of models;
        full copies of the same frozen weights would fill a disk. Such a directory loads
        only where its base encoder is available with the same fingerprint.

        The folder is written under a temporary name and renamed when complete (a full
        disk leaves nothing behind); every file's SHA-256 goes to ``xner-checksums.json``,
        verified when the model is loaded.

        Raises:
            XnerError: ``directory`` holds a model and not ``overwrite``, is a file or a
                folder of other files (see :func:`check_model_destination`), or the write failed.
        """
        from xner.io import atomic_directory
        from xner.models.checksums import write_checksums
        from xner.models.embedded import CHARMAP_FILE, CharMap

        directory = Path(directory)
        check_model_destination(directory, overwrite)
        metadata = {
            **self.metadata,
            **extra_metadata,
            **self._identity(),
            "labels": list(self.labels),
            "backbone": self.base_name,
            "backbone_fingerprint": self.base_fingerprint,
            "n_frozen": self.n_frozen,
            "weights": "delta" if compact else "full",
            "fingerprint": self.fingerprint,
        }
        with atomic_directory(directory, replace=overwrite) as folder:
            if compact:
                from safetensors.torch import save_file

                _, reference = _pretrained_reference(self.base_name, self.base_fingerprint, self.labels,
                                                     head=self._head())
                save_file(_changed_tensors(self.model, reference), folder / _DELTA_WEIGHTS)
            else:
                self.model.save_pretrained(folder)
                self.backbone.tokenizer.save_pretrained(folder)
                if isinstance(self.backbone.normalize, CharMap):
                    self.backbone.normalize.save(folder / CHARMAP_FILE)
            (folder / _METADATA).write_text(json.dumps(metadata, indent=1, default=str))
            write_checksums(folder)
        self.metadata = metadata
        return directory

    def _adopt_saved_fingerprint(self) -> None:
        """Take the fingerprint :meth:`save` recorded instead of hashing every weight again
        (0.8 s for the embedded model, paid by every run that loads a model): the files it was
        computed from passed their checksums, and a load rebuilds the saved weights bit for bit.
        Folders saved before it was recorded are hashed as before."""
        saved = self.metadata.get("fingerprint")
        if isinstance(saved, str):
            self.__dict__["fingerprint"] = saved

    @functools.cached_property
    def fingerprint(self) -> str:
        """Content hash of the trained weights and labels: the identity of a teacher in caches."""
        digest = hashlib.blake2b(digest_size=16)
        digest.update(json.dumps(self.labels).encode())
        for name, tensor in sorted(self.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()


def _pretrained_reference(base_name: str, base_fingerprint: str, labels: Sequence[str],
                          saved_in: Path | None = None,
                          head: str = "AutoModelForTokenClassification") -> tuple[Backbone, nn.Module]:
    """The base encoder and the model a compact save is a delta against: the pretrained
    weights with a head from a fixed seed, so that load rebuilds it bit for bit."""
    backbone = load_backbone(base_name)
    if backbone.fingerprint != base_fingerprint:
        where = f"{saved_in}: " if saved_in else ""
        raise XnerError(f"{where}saved as a delta against model {base_name!r} with fingerprint "
                        f"{base_fingerprint[:12]}, but {base_name!r} now has fingerprint "
                        f"{backbone.fingerprint[:12]}; restore that model or retrain")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_REFERENCE_SEED)
        reference = backbone.head_model(head, labels)
    return backbone, reference


def _changed_tensors(model: nn.Module, reference: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors of ``model`` that are not bit-identical to ``reference``'s."""
    base = reference.state_dict()
    changed = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu()  # once: on a GPU each call is a copy
        if name not in base or not torch.equal(tensor, base[name]):
            changed[name] = tensor.contiguous()
    return changed


def _apply_delta(reference: nn.Module, path: Path) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        delta = load_file(path)
    except (OSError, SafetensorError) as err:
        raise XnerError(f"{path}: cannot read the model's weights ({err})".replace("\n", " ")) from None
    unexpected = reference.load_state_dict(delta, strict=False).unexpected_keys
    if unexpected:
        raise XnerError(f"{path}: tensors {unexpected[:3]} are not part of the base model's architecture")


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: no weight decay on biases and LayerNorm weights (BERT recipe)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 or "LayerNorm" in name else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _linear_warmup(optimizer, warmup_ratio: float, total_steps: int):
    from transformers import get_linear_schedule_with_warmup

    return get_linear_schedule_with_warmup(optimizer, int(warmup_ratio * total_steps), max(total_steps, 1))


def _trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def _progress(items, enabled: bool, description: str):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=description, unit="batch", leave=False)


def check_model_destination(directory: str | Path, overwrite: bool = False) -> None:
    """Check, before training, that a model may be saved at ``directory``.

    It may if it does not exist, is an empty folder, or holds a model and ``overwrite``.

    Raises:
        XnerError: it is a file, a folder of other files, or a model and not ``overwrite``.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise XnerError(f"{directory}: is a file, not a folder; choose another output folder")
    if not directory.is_dir() or not any(directory.iterdir()):
        return
    if not (directory / _METADATA).is_file():
        raise XnerError(f"{directory}: folder exists and holds no xner model; choose a new or empty folder")
    if not overwrite:
        raise XnerError(f"{directory}: a model is already saved here; pass --overwrite to replace it "
                        "or choose another folder")
