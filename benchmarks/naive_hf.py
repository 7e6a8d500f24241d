"""The baseline of xner's benchmarks: what a user would write without xner.

A plain ``transformers.Trainer`` token classifier, ``run_ner.py`` style: every run
tokenizes its sentences again, runs the whole encoder forward on every step (the
frozen bottom layers too), and predicts with ``Trainer.predict``. Distillation is
the same Trainer with an MSE loss on the teacher's first-subword distributions
(Wu et al. 2020). It exposes ``predict``/``labels``/``metadata`` like a
:class:`xner.Tagger`, so xner's own evaluation (perturbations, seqeval scores)
scores both sides identically and only the model work differs.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence

import numpy as np
import torch
from datasets import Dataset
from transformers import DataCollatorForTokenClassification, EarlyStoppingCallback, Trainer, TrainingArguments
from transformers.trainer_callback import PrinterCallback

from xner.data.corpus import Sentence
from xner.metrics import entity_scores
from xner.models.split import freeze_bottom, num_layers
from xner.decoding import repair_iob2

IGNORE = -100


def _trainer_args(out: str, *, seed: int, lr: float = 2e-4, epochs: float = 1, batch_size: int = 16,
                  with_dev: bool = False) -> TrainingArguments:
    """run_ner.py's settings (fp32 on CPU), with per-epoch dev evaluation for early stopping."""
    per_epoch = "epoch" if with_dev else "no"
    return TrainingArguments(
        output_dir=out, per_device_train_batch_size=batch_size, per_device_eval_batch_size=64,
        learning_rate=lr, num_train_epochs=epochs, warmup_steps=0.1, weight_decay=0.01, max_grad_norm=1.0,
        eval_strategy=per_epoch, save_strategy=per_epoch, load_best_model_at_end=with_dev,
        metric_for_best_model="f1" if with_dev else None, save_total_limit=1 if with_dev else None,
        report_to=[], logging_strategy="no", use_cpu=True, seed=seed, disable_tqdm=True,
        remove_unused_columns=False,
    )


class SoftLabelCollator(DataCollatorForTokenClassification):
    """Pads the teacher distributions (``soft``) along with the inputs and labels."""

    def __call__(self, features, return_tensors=None):
        soft = [np.asarray(f.pop("soft"), dtype=np.float32) for f in features]
        batch = super().__call__(features, return_tensors)
        padded = np.zeros((len(soft), batch["input_ids"].shape[1], soft[0].shape[1]), dtype=np.float32)
        for i, rows in enumerate(soft):
            padded[i, : len(rows)] = rows
        batch["soft"] = torch.from_numpy(padded)
        return batch


class MSETrainer(Trainer):
    """Trainer whose loss is the MSE between student and teacher distributions on first subwords."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        soft, labels = inputs.pop("soft"), inputs.pop("labels")
        outputs = model(**inputs)
        keep = labels != IGNORE
        loss = torch.nn.functional.mse_loss(torch.softmax(outputs.logits[keep], dim=-1), soft[keep])
        return (loss, outputs) if return_outputs else loss


def _stay_in_eval(module: torch.nn.Module, _inputs) -> None:
    module.eval()


class NaiveTagger:
    """A Hugging Face token classifier trained and run with ``transformers.Trainer`` only."""

    def __init__(self, backbone, labels: Sequence[str], *, seed: int = 0, train_layers: int | None = None,
                 dropout: float | None = None, metadata: dict | None = None) -> None:
        self.backbone, self.labels, self.seed = backbone, tuple(labels), seed
        self.base_name = backbone.name
        self.metadata = metadata or {}
        torch.manual_seed(seed)
        self.model = backbone.token_classification_model(self.labels)
        if dropout is not None:  # the run's dropout, as xner's TrainConfig.dropout sets it
            for module in self.model.modules():
                if isinstance(module, torch.nn.Dropout):
                    module.p = dropout
        if train_layers is not None:  # as xner's fast path: the bottom is frozen, but still run every step
            n_frozen = num_layers(self.model) - train_layers
            freeze_bottom(self.model, n_frozen, freeze_embeddings=True)
            base = self.model.base_model
            for module in [base.embeddings, *list(base.encoder.layer)[:n_frozen]]:
                # Frozen means fixed, as in xner (and Wu et al.): no dropout there either. The
                # Trainer puts the whole model in train mode every step; switch the frozen part
                # back just before it runs.
                module.register_forward_pre_hook(_stay_in_eval)

    # -- data
    def _encode(self, sentences: Sequence[Sentence], targets: Sequence[np.ndarray] | None = None) -> Dataset:
        """Tokenize; label the first subword of each word (its tag id, or with ``soft`` its distribution)."""
        normalize = self.backbone.normalize or (lambda w: w)
        words = [[normalize(w) for w in s.tokens] for s in sentences]
        enc = self.backbone.tokenizer(words, is_split_into_words=True, truncation=True, max_length=256)
        label_id = {label: i for i, label in enumerate(self.labels)}
        columns: dict[str, list] = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                                    "labels": [], "soft": []}
        for i, sentence in enumerate(sentences):
            previous, row, soft = None, [], []
            for word in enc.word_ids(i):
                first = word is not None and word != previous
                if targets is None:
                    tag = sentence.tags[word] if first and sentence.tags else None
                    row.append(label_id[tag] if tag is not None else IGNORE)
                else:
                    row.append(0 if first else IGNORE)
                    soft.append(targets[i][word] if first else np.zeros(len(self.labels), np.float32))
                previous = word
            columns["labels"].append(row)
            columns["soft"].append(np.asarray(soft, np.float32) if targets is not None else None)
        if targets is None:
            del columns["soft"]
        return Dataset.from_dict(columns)

    # -- training
    def fit(self, train: Sequence[Sentence], dev: Sequence[Sentence] | None = None, *, epochs: int, lr: float,
            min_steps: int = 0, patience: int | None = None, targets: Sequence[np.ndarray] | None = None) -> None:
        """Train; with ``dev``, evaluate every epoch, stop early and keep the best epoch (as run_ner.py)."""
        epochs = max(epochs, math.ceil(min_steps / max(math.ceil(len(train) / 16), 1)))
        with_dev = bool(dev) and patience is not None
        with tempfile.TemporaryDirectory() as out:
            kwargs = {}
            if with_dev:
                kwargs = {"eval_dataset": self._encode(dev), "compute_metrics": self._dev_f1,
                          "callbacks": [EarlyStoppingCallback(early_stopping_patience=patience)]}
            trainer_class = MSETrainer if targets is not None else Trainer
            collator = (SoftLabelCollator if targets is not None else DataCollatorForTokenClassification)(
                self.backbone.tokenizer)
            trainer = trainer_class(model=self.model, args=_trainer_args(out, seed=self.seed, lr=lr, epochs=epochs,
                                                                         with_dev=with_dev),
                                    train_dataset=self._encode(train, targets), data_collator=collator, **kwargs)
            trainer.remove_callback(PrinterCallback)  # the log dicts, not a measure of anything
            trainer.train()
            self.model = trainer.model
        self.metadata["languages"] = sorted({s.lang for s in train if s.lang})

    def _dev_f1(self, prediction) -> dict:
        logits, gold_ids = prediction
        gold, pred = self._decode(logits, gold_ids)
        return {"f1": entity_scores(gold, pred)["f1"]}

    # -- prediction
    def _logits(self, sentences: Sequence[Sentence]):
        with tempfile.TemporaryDirectory() as out:
            trainer = Trainer(model=self.model, args=_trainer_args(out, seed=self.seed),
                              data_collator=DataCollatorForTokenClassification(self.backbone.tokenizer))
            blank = [Sentence(s.tokens, ["O"] * len(s.tokens), s.lang) for s in sentences]  # marks first subwords
            output = trainer.predict(self._encode(blank))
        return output.predictions, output.label_ids

    def _decode(self, logits, label_ids) -> tuple[list[list[str]], list[list[str]]]:
        gold, pred = [], []
        for row_logits, row_ids in zip(logits, label_ids):
            keep = row_ids != IGNORE
            gold.append([self.labels[j] for j in row_ids[keep]])
            pred.append(repair_iob2([self.labels[j] for j in row_logits.argmax(-1)[keep]]))
        return gold, pred

    def predict(self, sentences: Sequence[Sentence]) -> list[list[str]]:
        logits, label_ids = self._logits(sentences)
        _, pred = self._decode(logits, label_ids)
        return [p + ["O"] * (len(s.tokens) - len(p)) for p, s in zip(pred, sentences)]  # truncated words: O

    def predict_proba(self, sentences: Sequence[Sentence]) -> list[np.ndarray]:
        logits, label_ids = self._logits(sentences)
        probs = torch.softmax(torch.from_numpy(np.asarray(logits, np.float32)), dim=-1).numpy()
        return [row[ids != IGNORE] for row, ids in zip(probs, label_ids)]
