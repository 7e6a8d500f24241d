"""Sentence representations of the pretrained encoder (for language identification).

Mean of the final-layer states over a sentence's subwords, as multilingual-e5 is
trained to be used. The states come from the frozen-feature cache with every
layer frozen, so a pool embedded once is never embedded again.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from xner.data.corpus import Sentence
from xner.models.backbone import Backbone
from xner.models.encoding import encode_corpus
from xner.models.features import frozen_features
from xner.models.split import num_layers

__all__ = ["sentence_vectors"]


def sentence_vectors(backbone: Backbone, sentences: Sequence[Sentence], max_length: int = 256) -> np.ndarray:
    """``[n_sentences, hidden]`` float32 mean-pooled final-layer states of the pretrained encoder."""
    model = backbone.token_classification_model(["O"])
    encoded = encode_corpus(sentences, backbone.tokenizer, max_length, backbone.normalize)
    pad = backbone.tokenizer.pad_token_id or 0
    features = frozen_features(model, encoded, num_layers(model), backbone.fingerprint, pad_id=pad)
    rows = encoded.sentence_rows  # a sentence longer than max_length: the mean over its windows
    return np.stack([np.concatenate([features.rows(r) for r in range(rows[s], rows[s + 1])]).astype(np.float32).mean(axis=0)
                     for s in range(encoded.n_sentences)])
