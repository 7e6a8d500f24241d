"""Split a token-classification encoder into a frozen bottom and a trainable top.

The fast path (``train_layers=K``) trains only the top K transformer layers and
the classification head. The bottom part (embeddings + the first L-K layers)
never changes, so its output is computed once per sentence and cached
(:mod:`xner.models.features`); training and prediction then run only the top.
Both halves share the very same ``nn.Module`` objects as the full model, so the
trained top is saved as an ordinary Hugging Face model.

Works for BERT-family encoders (BERT, mBERT, XLM-R, multilingual-e5) whose base
model exposes ``embeddings`` and ``encoder.layer``.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn
from transformers.masking_utils import create_bidirectional_mask

__all__ = ["TopLayers", "bottom_layers", "freeze_bottom", "num_layers"]


def num_layers(model: nn.Module) -> int:
    return len(model.base_model.encoder.layer)


@contextmanager
def bottom_layers(model: nn.Module, n_frozen: int):
    """Temporarily cut the encoder to its first ``n_frozen`` layers.

    Inside the block, ``model.base_model(...)`` returns the hidden states that
    the top layers take as input.
    """
    encoder = model.base_model.encoder
    full = encoder.layer
    encoder.layer = nn.ModuleList(list(full)[:n_frozen])
    try:
        yield model.base_model
    finally:
        encoder.layer = full


def freeze_bottom(model: nn.Module, n_frozen: int, freeze_embeddings: bool = True) -> None:
    """Freeze the embeddings (optionally) and the first ``n_frozen`` layers.

    Freezing the 250k-row word-embedding matrix alone halves a CPU training step
    of multilingual-e5-small (its AdamW update dominates), at little cost in F1;
    Wu et al. (2020) freeze embeddings and the bottom 3 layers of mBERT.
    """
    base = model.base_model
    if freeze_embeddings or n_frozen > 0:
        base.embeddings.requires_grad_(False)
    for layer in list(base.encoder.layer)[:n_frozen]:
        layer.requires_grad_(False)


class TopLayers(nn.Module):
    """The top ``k`` layers and the head of a token classifier, fed cached hidden states."""

    def __init__(self, model: nn.Module, k: int) -> None:
        super().__init__()
        self.config = model.config
        self.layers = nn.ModuleList(list(model.base_model.encoder.layer)[-k:] if k else [])
        self.dropout = model.dropout
        self.classifier = model.classifier

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits ``[batch, seq, labels]`` from bottom hidden states ``[batch, seq, hidden]``."""
        mask = create_bidirectional_mask(
            config=self.config, inputs_embeds=hidden, attention_mask=attention_mask
        )
        for layer in self.layers:
            hidden = layer(hidden, attention_mask=mask)
            if isinstance(hidden, tuple):  # older layer implementations return tuples
                hidden = hidden[0]
        return self.classifier(self.dropout(hidden))
