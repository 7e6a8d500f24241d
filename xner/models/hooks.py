"""Training extras as small plugins (flair-style hooks), not flags inside the loop.

A hook sees the tagger and the epoch record after every epoch and may ask the
loop to stop by returning True.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import torch
from torch import nn

__all__ = ["EarlyStopping", "EpochLog", "TrainHook"]

log = logging.getLogger("xner.train")


class TrainHook(Protocol):
    def on_epoch_end(self, tagger, record: dict) -> bool: ...


class EpochLog:
    """One log line per epoch: loss, throughput and, when there is a dev set, its score."""

    def on_epoch_end(self, tagger, record: dict) -> bool:
        dev = "".join(f" dev {key[4:].replace('f1', 'F1')} {value:.2f}" for key, value in record.items()
                      if key.startswith("dev_"))
        log.info("epoch %d: loss %.4f, %.0f sent/s%s", record["epoch"], record["loss"],
                 record["train_sentences_per_s"], dev)
        return False


class EarlyStopping:
    """Keep the weights of the best dev epoch; stop after ``patience`` epochs without gain.

    ``metric`` names the epoch record's dev score (``dev_f1``; ``dev_accuracy`` for document
    tasks). Without a dev set (no such score in the records) it keeps the last epoch.
    Only trainable parameters are copied, so the fast path's snapshot is small.
    """

    def __init__(self, patience: int | None, trainable_state: Callable[[], dict[str, torch.Tensor]],
                 metric: str = "dev_f1"):
        self.patience = patience
        self.metric = metric
        self.trainable_state = trainable_state
        self.best_f1 = float("-inf")
        self.best_epoch: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, tagger, record: dict) -> bool:
        if self.metric not in record:
            return False
        if record[self.metric] > self.best_f1:
            self.best_f1, self.best_epoch = record[self.metric], record["epoch"]
            self.best_state = self.trainable_state()
            return False
        return self.patience is not None and record["epoch"] - self.best_epoch >= self.patience

    def restore(self, model: nn.Module) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state, strict=False)
