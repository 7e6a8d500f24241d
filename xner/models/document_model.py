"""DocumentModel: topic classification and multiple choice over any xner backbone.

The same encoder as the NER :class:`~xner.models.tagger.Tagger`, with a transformers head:
``AutoModelForSequenceClassification`` (topic) or ``AutoModelForMultipleChoice`` (headline: one
score per (candidate, text) pair, softmax over the ``k`` candidates, as the reference study's
``BertForMultipleChoice``). The same speed-ups apply:

* every sequence is its first ``max_length`` subwords (a candidate headline first, then the
  text, which is what truncation cuts; :attr:`EncodedDocuments.truncated` counts the cut ones);
* ``train_layers=K`` trains only the top K layers, reading the bottom's output from the
  content-addressed feature cache (:mod:`xner.models.features`) shared with every other run on
  the same sequences; the top runs the model's own forward with its embeddings swapped for a
  pass-through, so any head works unchanged;
* length-bucketed batches; GPU and mixed precision as :mod:`xner.models.device` decides.

Pairs are encoded without token-type ids (XLM-R has none; BERT sees type 0), so a cached
sequence is identified by its subword ids alone.

Example:
    >>> model = DocumentModel.create("tiny", task="topic", labels=["health", "sports"])  # doctest: +SKIP
    >>> model.fit(train_docs, dev=dev_docs, config=TrainConfig(epochs=3))               # doctest: +SKIP
    >>> model.evaluate(test_docs)["accuracy"]                                          # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from xner.data.news import ChoiceItem, Document
from xner.errors import XnerError
from xner.models.backbone import Backbone, load_backbone
from xner.models.batching import epoch_batches, length_batches, pad_batch
from xner.models.device import (
    autocast, inference_precision, kernel_precision, seed_everything, training_kernels,
)
from xner.models.encoding import EncodedCorpus
from xner.models.features import FrozenFeatures, frozen_features
from xner.models.finetuned import (
    _DELTA_WEIGHTS, FineTuned, _apply_delta, _pretrained_reference, _progress, _trainable_state, read_model_metadata,
)
from xner.models.hooks import EpochLog, checkpoint_keeper
from xner.models.tagger import TrainConfig
from xner.tasks import get_task
from xner.tasks.scoring import accuracy_scores

__all__ = ["DocumentModel", "EncodedDocuments", "encode_examples"]

Example = Document | ChoiceItem
_PREDICT_TOKENS = 16384


@dataclass(frozen=True)
class EncodedDocuments:
    """The subword sequences of a list of examples: ``group`` consecutive sequences per example
    (1 for a document, ``k`` for a question), stored as an :class:`EncodedCorpus` whose one
    "word" per sequence is its first token (the feature cache reads sequences from it)."""

    corpus: EncodedCorpus
    group: int
    max_length: int

    def __len__(self) -> int:
        return len(self.corpus) // self.group

    @property
    def lengths(self) -> np.ndarray:
        """Longest sequence of each example (what its padded batch row needs)."""
        return self.corpus.lengths.reshape(-1, self.group).max(axis=1)

    @property
    def truncated(self) -> int:
        """Sequences cut at ``max_length``."""
        return int((self.corpus.lengths >= self.max_length).sum())

    def sequences(self, indices: np.ndarray) -> np.ndarray:
        """Sequence indices of some examples, example by example."""
        return (np.asarray(indices)[:, None] * self.group + np.arange(self.group)).reshape(-1)


def encode_examples(examples: Sequence[Example], tokenizer, max_length: int, normalize=None) -> EncodedDocuments:
    """Tokenize documents (one sequence each) or questions (``k`` (candidate, text) pairs each).

    Raises:
        XnerError: a mix of documents and questions, or questions with different ``k``.
    """
    prepare = normalize or (lambda text: text)
    if all(isinstance(e, ChoiceItem) for e in examples) and examples:
        group = len(examples[0].candidates)
        if any(len(e.candidates) != group for e in examples):
            raise XnerError("questions with different numbers of candidates cannot share a batch")
        firsts = [prepare(c) for e in examples for c in e.candidates]
        seconds = [prepare(e.text) for e in examples for _ in e.candidates]
        batch = tokenizer(firsts, seconds, truncation="longest_first", max_length=max_length)
    elif all(isinstance(e, Document) for e in examples):
        group = 1
        batch = tokenizer([prepare(e.text) for e in examples], truncation=True, max_length=max_length)
    else:
        raise XnerError("examples must be all documents (topic) or all questions (headline)")
    ids = [np.asarray(x, dtype=np.int32) for x in batch["input_ids"]]
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    corpus = EncodedCorpus(
        input_ids=np.concatenate(ids) if ids else np.zeros(0, np.int32),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        first_subword=np.zeros(len(ids), dtype=np.int32),
        word_offsets=np.arange(len(ids) + 1, dtype=np.int64),
        n_words=np.ones(len(ids), dtype=np.int64),
        sentence_rows=np.arange(len(ids) + 1, dtype=np.int64),
    )
    return EncodedDocuments(corpus, group, max_length)


class _PassThrough(nn.Module):
    """Stands in for the embeddings when the model is fed cached bottom-layer states."""

    def forward(self, inputs_embeds=None, **_: object) -> torch.Tensor:
        return inputs_embeds


@contextmanager
def _top_only(model: nn.Module, n_frozen: int):
    """The model's own forward over ``inputs_embeds`` = bottom states: embeddings bypassed and
    only the layers above ``n_frozen`` run, then its pooler and head as usual."""
    base = model.base_model
    embeddings, layers = base.embeddings, base.encoder.layer
    base.embeddings = _PassThrough()
    base.encoder.layer = nn.ModuleList(list(layers)[n_frozen:])
    try:
        yield
    finally:
        base.embeddings, base.encoder.layer = embeddings, layers


@dataclass
class _Inputs:
    encoded: EncodedDocuments
    features: FrozenFeatures | None
    pad_id: int

    def batch(self, indices: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ids or bottom states, mask)``, shaped ``[B, k, T(, H)]`` for questions."""
        rows = self.encoded.sequences(indices)
        if self.features is not None:
            inputs, mask = self.features.batch(rows)
        else:
            inputs, mask = pad_batch(self.encoded.corpus, rows, self.pad_id)
        if self.encoded.group > 1:
            inputs = inputs.reshape(len(indices), self.encoded.group, *inputs.shape[1:])
            mask = mask.reshape(len(indices), self.encoded.group, -1)
        return inputs.to(device), mask.to(device)


@dataclass
class DocumentModel(FineTuned):
    """A document classifier or multiple-choice model: a :class:`~xner.models.finetuned.FineTuned`
    encoder with the head of its ``task`` (``labels``: the topic categories; none for headlines)."""

    task: str = "topic.v1"

    @classmethod
    def create(cls, model: str | Backbone = "embedded", *, task: str, labels: Sequence[str] = (),
               seed: int = 0) -> "DocumentModel":
        """A fresh model: pretrained encoder, seeded head (``labels``: the topic categories;
        none for headline selection)."""
        spec = get_task(task)
        if spec.head is None:
            raise XnerError(f"task {spec.name} is not a document task; use xner.Tagger")
        labels = tuple(labels) if spec.head == "AutoModelForSequenceClassification" else ()
        if spec.head == "AutoModelForSequenceClassification" and len(labels) < 2:
            raise XnerError(f"task {spec.name} needs at least 2 categories, got {list(labels)}")
        backbone = model if isinstance(model, Backbone) else load_backbone(model)
        seed_everything(seed)
        network = backbone.head_model(spec.head, labels)
        document_model = cls(backbone=backbone, labels=labels, model=network, task=spec.name)
        document_model.model.to(document_model.device)
        return document_model

    # ------------------------------------------------------------------ inputs
    def encode(self, examples: Sequence[Example], max_length: int) -> EncodedDocuments:
        return encode_examples(examples, self.backbone.tokenizer, max_length, self.backbone.normalize)

    def _prepare(self, examples: Sequence[Example], max_length: int, precision: str) -> _Inputs:
        encoded = self.encode(examples, max_length)
        pad_id = self._pad_id
        features = None
        if self.n_frozen:
            features = frozen_features(self.model, encoded.corpus, self.n_frozen, self._bottom_fingerprint(),
                                       pad_id=pad_id, device=self.device,
                                       precision=kernel_precision(self.device, precision))
        return _Inputs(encoded, features, pad_id)

    def _logits(self, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if not self.n_frozen:
            return self.model(input_ids=inputs, attention_mask=mask).logits
        with _top_only(self.model, self.n_frozen):
            return self.model(inputs_embeds=inputs, attention_mask=mask).logits

    def _targets(self, examples: Sequence[Example]) -> np.ndarray:
        if self.labels:
            index = {label: i for i, label in enumerate(self.labels)}
            unknown = sorted({str(e.category) for e in examples} - index.keys())
            if unknown:
                raise XnerError(f"categories {', '.join(unknown)} are not among the model's "
                                f"({', '.join(self.labels)}); map them explicitly")
            return np.fromiter((index[e.category] for e in examples), dtype=np.int64, count=len(examples))
        return np.fromiter((e.answer for e in examples), dtype=np.int64, count=len(examples))

    # ------------------------------------------------------------------ training
    def fit(self, train: Sequence[Example], dev: Sequence[Example] | None = None,
            config: TrainConfig | None = None, *, progress: bool = False) -> dict:
        """Train with cross-entropy; early stopping on dev accuracy. Returns the training record."""
        config = config or TrainConfig()
        seed_everything(config.seed)
        self._configure_training(config)
        targets = torch.from_numpy(self._targets(train))
        inputs = self._prepare(train, config.max_length, config.precision)
        trainable, optimizer, scheduler, epochs = self._optimization(config, len(train))
        dev = list(dev)[: config.dev_size] if dev is not None and config.dev_size else dev
        stopper = checkpoint_keeper(config.checkpoint, config.patience, lambda: _trainable_state(self.model),
                                    metric="dev_accuracy")
        rng = np.random.default_rng(config.seed)
        history: list[dict] = []
        started = time.perf_counter()
        for epoch in range(1, epochs + 1):
            epoch_start = time.perf_counter()
            self.model.train()
            epoch_loss = 0.0
            order = epoch_batches(inputs.encoded.lengths, config.batch_size, rng, config.batching)
            with training_kernels(self.model, self.device, config.precision):
                for indices in _progress(order, progress, f"epoch {epoch}/{epochs}"):
                    batch, mask = inputs.batch(indices, self.device)
                    with autocast(self.device, config.precision):
                        logits = self._logits(batch, mask)
                    loss = nn.functional.cross_entropy(logits.float(), targets[indices].to(self.device))
                    epoch_loss += self._step(loss, trainable, optimizer, scheduler, config.max_grad_norm) * len(indices)
            seconds = time.perf_counter() - epoch_start
            record = {"epoch": epoch, "loss": epoch_loss / max(len(train), 1), "seconds": seconds,
                      "train_sentences_per_s": len(train) / seconds}
            if dev:
                record["dev_accuracy"] = self.evaluate(dev, config.max_length, n_resamples=1)["accuracy"]
            history.append(record)
            if any([hook.on_epoch_end(self, record) for hook in (EpochLog(), stopper)]):
                break
        stopper.restore(self.model)
        training = {"config": config.model_dump(), "history": history, "best_epoch": stopper.best_epoch or len(history),
                    "train_examples": len(train), "truncated_sequences": inputs.encoded.truncated,
                    "train_fingerprint": inputs.encoded.corpus.fingerprint,
                    "seconds": time.perf_counter() - started}
        self.metadata.setdefault("trainings", []).append(training)
        self.metadata["languages"] = sorted({e.lang for e in train if e.lang})
        self.__dict__.pop("fingerprint", None)
        return training

    # ------------------------------------------------------------------ prediction
    def predict_scores(self, examples: Sequence[Example], max_length: int = 256,
                       precision: str = "auto") -> np.ndarray:
        """Class (topic) or candidate (headline) probabilities, ``[n_examples, n_classes or k]``."""
        precision = inference_precision(self.device, precision)
        inputs = self._prepare(examples, max_length, precision)
        out = np.zeros((len(examples), len(self.labels) or inputs.encoded.group), dtype=np.float32)
        self.model.eval()
        tokens = _PREDICT_TOKENS // inputs.encoded.group
        with torch.inference_mode():
            for indices in length_batches(inputs.encoded.lengths, batch_tokens=tokens):
                batch, mask = inputs.batch(indices, self.device)
                with autocast(self.device, precision):
                    logits = self._logits(batch, mask)
                out[indices] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        self.metadata["last_truncated"] = inputs.encoded.truncated
        return out

    def predict(self, examples: Sequence[Example], max_length: int = 256) -> list[str | int]:
        """The predicted category (topic) or candidate index (headline) of each example."""
        best = self.predict_scores(examples, max_length).argmax(axis=1)
        return [self.labels[i] for i in best] if self.labels else [int(i) for i in best]

    def evaluate(self, examples: Sequence[Example], max_length: int = 256, *, n_resamples: int = 1000,
                 seed: int = 0) -> dict:
        """Accuracy (0-100) with a bootstrap 95% CI, plus ``predictions`` (one per example)."""
        gold = self._targets(examples)
        predicted = self.predict_scores(examples, max_length).argmax(axis=1)
        scores = accuracy_scores(gold == predicted, n_resamples=n_resamples, seed=seed)
        names = self.labels or None
        return {**scores, "max_length": max_length, "truncated": self.metadata["last_truncated"],
                "predictions": [{"gold": names[g] if names else int(g), "predicted": names[p] if names else int(p)}
                                for g, p in zip(gold, predicted)]}

    # ------------------------------------------------------------------ persistence
    def _head(self) -> str:
        return get_task(self.task).head

    def _identity(self) -> dict:
        return {"task": self.task}

    @classmethod
    def load(cls, directory: str | Path) -> "DocumentModel":
        """Load a model written by :meth:`save`.

        Raises:
            XnerError: not an xner model directory, or a model of another task (NER).
        """
        directory = Path(directory)
        record = read_model_metadata(directory)
        task = get_task(record.metadata.get("task", "ner"))
        if task.head is None:
            raise XnerError(f"{directory}: an NER model; evaluate it with --task ner")
        if record.metadata.get("weights") == "delta":
            backbone, network = _pretrained_reference(record.base_name, record.base_fingerprint, record.labels,
                                                      saved_in=directory, head=task.head)
            _apply_delta(network, directory / _DELTA_WEIGHTS)
        else:
            import transformers

            backbone = load_backbone(str(directory))
            network = getattr(transformers, task.head).from_pretrained(directory)
        model = cls(backbone=backbone, labels=record.labels, model=network, n_frozen=record.n_frozen,
                    metadata=record.metadata, base_name=record.base_name, base_fingerprint=record.base_fingerprint,
                    task=task.name)
        model.model.to(model.device)
        model._adopt_saved_fingerprint()
        return model
