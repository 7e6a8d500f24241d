"""Tagger: a word-level NER model over any Hugging Face encoder.

One class trains, predicts, evaluates, saves and loads. Its mechanics follow
Hugging Face's ``run_ner.py`` (fast tokenizer, first subword carries the label,
seqeval at word level) but as an importable object, with what makes a study of
hundreds of runs affordable on a CPU:

* length-bucketed dynamic batches (no padding to ``max_length``);
* word embeddings frozen by default (their 250k-row AdamW update dominates a CPU
  step of multilingual-e5-small);
* ``train_layers=K``: the bottom L-K layers are frozen and their output is read
  from a disk cache shared by every run on the same sentences
  (:mod:`xner.models.features`), so training and prediction run only the top K
  layers;
* the training targets are generic: gold tags (cross-entropy) or a teacher's
  per-word label distributions (distillation, :mod:`xner.distillation`).

Example:
    >>> tagger = Tagger.create("embedded", labels=WIKIANN_LABELS)   # doctest: +SKIP
    >>> tagger.fit(train, dev=dev, config=TrainConfig(epochs=3))     # doctest: +SKIP
    >>> tagger.predict([Sentence(("Paris", "is", "nice"))])          # doctest: +SKIP
    [['B-LOC', 'O', 'O']]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import transformers
from pydantic import Field
from torch import nn

from xner.data.corpus import Sentence
from xner.decoding import DEFAULT_DECODING, SELECTION_DECODING, decode
from xner.errors import XnerError, one_line
from xner.models.backbone import Backbone, load_backbone
from xner.models.batching import epoch_batches, length_batches, pad_batch
from xner.models.device import (
    autocast, inference_precision, kernel_precision, seed_everything, training_kernels,
)
from xner.models.encoding import EncodedCorpus, encode_corpus
from xner.models.features import FrozenFeatures, frozen_features
from xner.models.int8 import int8_network
from xner.models.finetuned import (
    _DELTA_WEIGHTS, FineTuned, _apply_delta, _pretrained_reference, _progress, _trainable_state,
    check_model_destination, read_model_metadata,
)
from xner.models.hooks import EpochLog, TrainHook, checkpoint_keeper, warn_if_collapsed
from xner.models.split import TopLayers, num_layers
from xner.options import OneLineErrors, TrainingOptions

__all__ = ["Tagger", "TrainConfig", "check_model_destination"]

# A study loads hundreds of models: transformers' per-load reports and progress bars
# (missing head weights are expected for a fresh classifier) would drown its output.
transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

_PREDICT_TOKENS = 8192


class TrainConfig(OneLineErrors, TrainingOptions):
    """Everything that changes how a Tagger trains (hashed into a study's run id): the
    :class:`~xner.options.TrainingOptions` and the seed. Bad values fail at construction.

    >>> TrainConfig(epochs=2, seed=1).epochs
    2
    >>> TrainConfig(precision="fp64")
    Traceback (most recent call last):
    ...
    xner.errors.XnerError: TrainConfig: precision: input should be 'auto', 'mixed', 'fp32', 'bf16' or 'fp16', got 'fp64'
    """

    seed: int = Field(0, description="Seed of initialisation, batch order and dropout.")


@dataclass
class _Batches:
    """How one corpus is fed to the network: full inputs or cached bottom features."""

    encoded: EncodedCorpus
    features: FrozenFeatures | None
    pad_id: int

    def inputs(self, indices: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if self.features is not None:
            hidden, mask = self.features.batch(indices)
            return hidden.to(device), mask.to(device)
        ids, mask = pad_batch(self.encoded, indices, self.pad_id)
        return ids.to(device), mask.to(device)


@dataclass
class Tagger(FineTuned):
    """A token classifier with its labels, backbone and training record."""

    # ------------------------------------------------------------------ creation
    @classmethod
    def create(cls, model: str | Backbone = "embedded", labels: Sequence[str] = (), seed: int = 0) -> "Tagger":
        """A fresh tagger: pretrained encoder, randomly initialised head (seeded)."""
        labels = tuple(labels)
        if not labels or labels[0] != "O":
            raise XnerError(f"labels must start with 'O', got {list(labels)}")
        backbone = model if isinstance(model, Backbone) else load_backbone(model)
        seed_everything(seed)
        network = backbone.token_classification_model(labels)
        tagger = cls(backbone=backbone, labels=labels, model=network)
        tagger.model.to(tagger.device)
        return tagger

    # ------------------------------------------------------------------ encoding
    def encode(self, sentences: Sequence[Sentence], max_length: int = 256) -> EncodedCorpus:
        return encode_corpus(sentences, self.backbone.tokenizer, max_length, self.backbone.normalize)

    def _prepare(self, sentences: Sequence[Sentence], max_length: int, precision: str = "fp32",
                 cache: bool = True) -> _Batches:
        """Encode the sentences and, on the fast path (unless ``cache`` is off), fetch their
        cached bottom features (computed only for sentences no earlier run has seen, in the
        precision of the run)."""
        encoded = self.encode(sentences, max_length)
        features = None
        if self.n_frozen and cache:
            features = frozen_features(
                self.model, encoded, self.n_frozen, self._bottom_fingerprint(),
                pad_id=self._pad_id, device=self.device, precision=kernel_precision(self.device, precision),
            )
        return _Batches(encoded, features, self._pad_id)

    def _network(self, model: nn.Module | None = None, precision: str = "fp32",
                 cache: bool = True) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``(inputs, mask) -> logits``: the full model, or only its top on cached features;
        with ``precision="int8"`` as an int8 ONNX Runtime session (:mod:`xner.models.int8`)."""
        model = model or self.model
        if self.n_frozen and cache:
            top = num_layers(model) - self.n_frozen
            network, names, part = TopLayers(model, top), ("hidden", "attention_mask"), f"top{top}"
        else:
            network, names, part = _Logits(model), ("input_ids", "attention_mask"), "full"
        if precision == "int8":
            return int8_network(network, names, f"{self.fingerprint}|{part}")
        return network

    # ------------------------------------------------------------------ training
    def fit(
        self,
        train: Sequence[Sentence],
        dev: Sequence[Sentence] | None = None,
        config: TrainConfig | None = None,
        *,
        targets: Sequence[np.ndarray] | None = None,
        loss: nn.Module | None = None,
        hooks: Sequence[TrainHook] = (),
        progress: bool = False,
    ) -> dict:
        """Train on ``train``; return the training record (also kept in ``metadata``).

        Args:
            train: sentences; labelled unless ``targets`` are given.
            dev: labelled sentences for early stopping on entity F1 (optional).
            config: hyper-parameters; ``config.train_layers`` picks the fast path.
            targets: per-sentence word targets instead of gold tags: int label
                ids ``[n_words]`` or label distributions ``[n_words, n_labels]``
                (distillation).
            loss: ``loss(word_logits, word_targets)``; default cross-entropy for
                hard targets (see :mod:`xner.distillation` for distillation losses).
            hooks: extra :class:`~xner.models.hooks.TrainHook` plugins.
            progress: show a progress bar per epoch.
        """
        config = config or TrainConfig()
        seed_everything(config.seed)
        self._configure_training(config)
        batches = self._prepare(train, config.max_length, config.precision)
        encoded = batches.encoded
        word_targets = self._word_targets(train, targets, encoded)
        trainable, optimizer, scheduler, epochs = self._optimization(config, len(encoded))
        loss = loss or nn.CrossEntropyLoss()
        dev = list(dev)[: config.dev_size] if dev is not None and config.dev_size else dev
        stopper = checkpoint_keeper(config.checkpoint, config.patience, lambda: _trainable_state(self.model))
        all_hooks: list[TrainHook] = [EpochLog(), *hooks, stopper]
        rng = np.random.default_rng(config.seed)
        network = self._network()
        history: list[dict] = []
        started = time.perf_counter()
        for epoch in range(1, epochs + 1):
            epoch_start = time.perf_counter()
            self.model.train()
            order = epoch_batches(encoded.lengths, config.batch_size, rng, config.batching)
            epoch_loss = 0.0
            with training_kernels(self.model, self.device, config.precision):
                for indices in _progress(order, progress, f"epoch {epoch}/{epochs}"):
                    if not any(len(word_targets[int(i)]) for i in indices):
                        continue  # only word-less sentences (bucketed together): an empty loss is NaN
                    inputs, mask = batches.inputs(indices, self.device)
                    with autocast(self.device, config.precision):
                        logits = network(inputs, mask)
                        word_logits, gathered = _gather_words(logits, encoded, indices, word_targets, self.device)
                        batch_loss = loss(word_logits.float(), gathered)
                    epoch_loss += self._step(batch_loss, trainable, optimizer, scheduler,
                                             config.max_grad_norm) * len(indices)
            record = {"epoch": epoch, "loss": epoch_loss / max(len(train), 1),
                      "seconds": time.perf_counter() - epoch_start,
                      "train_sentences_per_s": len(train) / (time.perf_counter() - epoch_start)}
            if dev:
                record["dev_f1"] = self.evaluate(dev, decoding=SELECTION_DECODING)["f1"]
            history.append(record)
            if any([hook.on_epoch_end(self, record) for hook in all_hooks]):
                break
        stopper.restore(self.model)
        warn_if_collapsed(history)
        training = {
            "config": config.model_dump(),
            "history": history,
            "best_epoch": stopper.best_epoch or len(history),
            "train_sentences": len(train),
            "train_fingerprint": encoded.fingerprint,
            "seconds": time.perf_counter() - started,
        }
        self.metadata.setdefault("trainings", []).append(training)
        self.metadata["languages"] = sorted({s.lang for s in train if s.lang})
        self.__dict__.pop("fingerprint", None)  # the weights changed
        return training

    def _word_targets(self, sentences, targets, encoded: EncodedCorpus) -> list[np.ndarray]:
        """Targets of the words each row of ``encoded`` owns (a long sentence has several rows)."""
        if targets is None:
            index = {label: i for i, label in enumerate(self.labels)}
            targets = []
            for number, sentence in enumerate(sentences):
                if sentence.tags is None:
                    raise XnerError(f"training sentence {number} has no labels and no targets were given")
                try:
                    targets.append(np.fromiter((index[t] for t in sentence.tags), dtype=np.int64))
                except KeyError as err:
                    raise XnerError(
                        f"training sentence {number}: tag {err.args[0]!r} is not among the model's labels "
                        f"{list(self.labels)}; map it explicitly (label_map)"
                    ) from None
        if len(targets) != encoded.n_sentences:
            raise XnerError(f"{len(targets)} target arrays for {encoded.n_sentences} sentences")
        return encoded.to_rows(targets)

    # ------------------------------------------------------------------ prediction
    def predict_proba(
        self, sentences: Sequence[Sentence], max_length: int = 256, temperature: float = 1.0,
        precision: str = "auto", cache: bool = True,
    ) -> list[np.ndarray]:
        """Per-word label distributions ``[n_words, n_labels]`` (float32) of each sentence.

        Args:
            temperature: > 1 softens the distributions (distillation).
            precision: ``auto`` runs mixed precision (autocast: matrix products in
                bfloat16/fp16, accumulation and normalisation in fp32) on GPU and on CPUs
                with native bfloat16 (AVX512-BF16/AMX); ``fp32`` forces full precision;
                ``int8`` runs an int8-quantized ONNX Runtime copy of the network (CPU; a
                one-off export of some seconds, then the fastest: see
                :func:`xner.models.device.inference_precision`).
            cache: on a model with frozen bottom layers, read (and extend) the frozen-feature
                cache; ``False`` runs the whole network instead (text seen once).

        A sentence longer than ``max_length`` subwords is predicted in overlapping
        windows, each word from the window that owns it (:mod:`xner.models.encoding`).
        """
        precision = inference_precision(self.device, precision)
        batches = self._prepare(sentences, max_length, precision, cache)
        encoded = batches.encoded
        model = self.model
        network = self._network(model, precision, cache)
        model.eval()
        kernels = "fp32" if precision == "int8" else precision  # int8: the session quantizes itself
        out: list[np.ndarray | None] = [None] * len(encoded)
        with torch.inference_mode():
            for indices in length_batches(encoded.lengths, batch_tokens=_PREDICT_TOKENS):
                inputs, mask = batches.inputs(indices, self.device)
                with autocast(self.device, kernels):
                    logits = network(inputs, mask)
                probs = torch.softmax(logits.float() / temperature, dim=-1).cpu().numpy()
                for row, i in enumerate(indices):
                    out[i] = self._word_probs(probs[row], encoded, int(i))
        return encoded.to_sentences(out)  # type: ignore[arg-type]

    def _word_probs(self, probs: np.ndarray, encoded: EncodedCorpus, i: int) -> np.ndarray:
        words = np.zeros((int(encoded.n_words[i]), len(self.labels)), dtype=np.float32)
        words[:, 0] = 1.0
        starts = encoded.word_starts(i)
        words[: len(starts)] = probs[starts]
        return words

    def predict(
        self, sentences: Sequence[Sentence], max_length: int = 256, decoding: str = DEFAULT_DECODING,
        precision: str = "auto", cache: bool = True,
    ) -> list[list[str]]:
        """Word-level IOB2 tags of each sentence (by default the most probable valid IOB2
        sequence; see :mod:`xner.decoding`), in an inference ``precision`` (:meth:`predict_proba`)."""
        probs = self.predict_proba(sentences, max_length, precision=precision, cache=cache)
        return [decode(p, self.labels, decoding) for p in probs]

    def evaluate(self, sentences: Sequence[Sentence], max_length: int = 256,
                 decoding: str = DEFAULT_DECODING, precision: str = "auto") -> dict:
        """Entity-level precision/recall/F1 (seqeval, strict IOB2), flat dict, 0-100."""
        from xner.metrics import entity_scores

        gold = [list(s.tags) for s in sentences]  # type: ignore[arg-type]
        return entity_scores(gold, self.predict(sentences, max_length, decoding, precision=precision))

    # ------------------------------------------------------------------ persistence
    @classmethod
    def load(cls, directory: str | Path) -> "Tagger":
        """Load a tagger written by :meth:`save` (full or compact), checking its checksums.

        Raises:
            XnerError: not a model folder, a file that fails its checksum (named), corrupt
                ``xner.json``, or weights that cannot be read.
        """
        directory = Path(directory)
        record = read_model_metadata(directory)
        task = str(record.metadata.get("task", "ner"))
        if task.split(".")[0] != "ner":
            raise XnerError(f"{directory}: a {task} model (a document task), not an NER tagger; "
                            "`xner evaluate` scores it, NER commands need an NER model")
        if record.metadata.get("weights") == "delta":
            backbone, network = _pretrained_reference(record.base_name, record.base_fingerprint, record.labels,
                                                      saved_in=directory)
            _apply_delta(network, directory / _DELTA_WEIGHTS)
        else:
            backbone, network = _full_model(directory)
        tagger = cls(backbone=backbone, labels=record.labels, model=network, n_frozen=record.n_frozen,
                     metadata=record.metadata, base_name=record.base_name, base_fingerprint=record.base_fingerprint)
        tagger.model.to(tagger.device)
        tagger._adopt_saved_fingerprint()
        return tagger


def _full_model(directory: Path) -> tuple[Backbone, nn.Module]:
    """The tokenizer (and character map) and network of a full model folder."""
    from safetensors import SafetensorError
    from transformers import AutoModelForTokenClassification

    try:
        backbone = load_backbone(str(directory))  # its own tokenizer (and character map)
        return backbone, AutoModelForTokenClassification.from_pretrained(directory)
    except (OSError, ValueError, RuntimeError, SafetensorError) as err:
        raise XnerError(f"{directory}: cannot load the model ({one_line(err)}); restore the folder or retrain") from None



class _Logits(nn.Module):
    """A token classifier as ``(input_ids, attention_mask) -> logits`` (one tensor, as an export wants)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def _gather_words(logits, encoded, indices, word_targets, device):
    """Logits at each kept word's first subword, and the matching targets."""
    width = logits.shape[1]
    flat_positions = []
    targets = []
    for row, i in enumerate(indices):
        starts = encoded.word_starts(int(i))
        flat_positions.append(starts.astype(np.int64) + row * width)
        targets.append(word_targets[int(i)])
    positions = torch.from_numpy(np.concatenate(flat_positions)).to(device)
    gathered = torch.from_numpy(np.concatenate(targets)).to(device)
    return logits.reshape(-1, logits.shape[-1]).index_select(0, positions), gathered
