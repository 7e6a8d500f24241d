"""Training extras as small plugins (flair-style hooks), not flags inside the loop.

A hook sees the tagger and the epoch record after every epoch and may ask the
loop to stop by returning True.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Protocol

import torch
from torch import nn

__all__ = ["AVERAGED_EPOCHS", "CHECKPOINTS", "CheckpointAverage", "EarlyStopping", "EpochLog", "TrainHook", "checkpoint_keeper",
           "warn_if_collapsed"]

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


class CheckpointAverage:
    """Keep the mean of the trainable weights of the last ``k`` epochs (``k=1``: the last epoch).

    Checkpoint averaging (Vaswani et al. 2017; Izmailov et al. 2018) trades the dev-set
    choice of one epoch -- noisy when the dev set is another language than the test set,
    as in zero-shot transfer -- for a flatter point between the last epochs. It never stops
    training early. Only trainable parameters are kept, so the fast path's copies are small.
    """

    def __init__(self, k: int, trainable_state: Callable[[], dict[str, torch.Tensor]]):
        self.trainable_state = trainable_state
        self.states: deque[dict[str, torch.Tensor]] = deque(maxlen=k)
        self.best_epoch: int | None = None

    def on_epoch_end(self, tagger, record: dict) -> bool:
        self.states.append(self.trainable_state())
        self.best_epoch = record["epoch"]
        return False

    def restore(self, model: nn.Module) -> None:
        if len(self.states) < 2:
            return  # the model already holds the last epoch's weights
        mean = {name: torch.stack([state[name].float() for state in self.states]).mean(0).to(tensor.dtype)
                for name, tensor in self.states[-1].items()}
        model.load_state_dict(mean, strict=False)


AVERAGED_EPOCHS = 3
"""How many final epochs the ``average`` checkpoint policy averages."""

CHECKPOINTS = ("best", "last", "average")
"""Which weights a training run keeps: the best dev-F1 epoch (early stopping), the last
epoch, or the mean of the last :data:`AVERAGED_EPOCHS` epochs."""


def checkpoint_keeper(policy: str, patience: int | None, trainable_state: Callable[[], dict[str, torch.Tensor]],
                      metric: str = "dev_f1"):
    """The hook that keeps a training run's final weights under ``policy`` (:data:`CHECKPOINTS`);
    ``best`` ranks epochs by the record's ``metric``."""
    if policy == "best":
        return EarlyStopping(patience, trainable_state, metric)
    return CheckpointAverage(1 if policy == "last" else AVERAGED_EPOCHS, trainable_state)


def warn_if_collapsed(history: list[dict], metric: str = "dev_f1") -> bool:
    """Warn when the dev score was 0 after every epoch: the model tags no entity at all (it
    collapsed to ``O``, e.g. all layers trained at too high a learning rate). Such a model
    still saves and loads, so without this line it would silently teach its students nothing."""
    scores = [record[metric] for record in history if metric in record]
    if not scores or any(scores):
        return False
    log.warning("dev %s 0.00 after each of %d epochs: the model finds no entity (training collapsed to O; "
                "a lower learning rate may help)", metric.removeprefix("dev_").replace("f1", "F1"), len(scores))
    return True
