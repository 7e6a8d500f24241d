"""Distillation losses: ``nn.Module(word_logits, word_targets)`` with a ``citation``.

Following sentence-transformers, every loss is a module that cites its source; they live in
a registry under versioned names (``kl.v1``), so a result row records exactly which
objective produced it and a changed loss gets a new name instead of a new meaning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from xner.registry import resolve_name

if TYPE_CHECKING:
    from xner.distillation.student import DistillConfig

__all__ = ["LOSSES", "CrossEntropyLoss", "KLDistillLoss", "MSEDistillLoss", "distill_loss_name", "make_loss"]

WU_2020 = (
    "Wu, Q., Lin, Z., Karlsson, B., Lou, J.-G., Huang, B. (2020). Single-/Multi-Source "
    "Cross-Lingual NER via Teacher-Student Learning on Unlabeled Data in Target Language. ACL."
)


class MSEDistillLoss(nn.Module):
    """Mean squared error between student and teacher label distributions (Wu et al. 2020)."""

    citation = WU_2020

    def forward(self, word_logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(torch.softmax(word_logits, dim=-1), teacher_probs.float())


class KLDistillLoss(nn.Module):
    """KL(teacher || student) at temperature T, scaled by T^2 (Hinton et al. 2015)."""

    citation = "Hinton, G., Vinyals, O., Dean, J. (2015). Distilling the Knowledge in a Neural Network."

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, word_logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
        log_student = torch.log_softmax(word_logits / self.temperature, dim=-1)
        return F.kl_div(log_student, teacher_probs.float(), reduction="batchmean") * self.temperature**2


class CrossEntropyLoss(nn.CrossEntropyLoss):
    """Cross-entropy on hard labels (gold tags, or argmax pseudo-labels)."""

    citation = "Standard supervised token classification (Devlin et al. 2019)."


LOSSES: dict[str, type[nn.Module]] = {
    "mse.v1": MSEDistillLoss,
    "kl.v1": KLDistillLoss,
    "ce.v1": CrossEntropyLoss,
}


def make_loss(name: str, temperature: float = 1.0) -> nn.Module:
    """A loss by registry name (``mse``, ``kl``, ``ce`` or a versioned ``mse.v1``)."""
    key = resolve_name("loss", name, LOSSES)
    return KLDistillLoss(temperature) if key.startswith("kl.") else LOSSES[key]()


def distill_loss_name(config: "DistillConfig") -> str:
    """The versioned loss a config trains with (``ce.v1`` for hard labels): results record
    it, since the loss changes what a student learns (MSE can stall at all-O, KL does not)."""
    return resolve_name("loss", "ce" if config.hard else config.loss, LOSSES)
