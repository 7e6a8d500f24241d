"""Accuracy with a percentile bootstrap confidence interval over examples.

The document tasks' counterpart of :func:`xner.metrics.bootstrap_f1`: examples are resampled
with replacement (Koehn 2004), each resample's accuracy is the mean of its correct flags.

>>> accuracy_scores([True, True, False, True], n_resamples=200)["accuracy"]
75.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from xner.errors import XnerError

__all__ = ["accuracy_scores"]


def accuracy_scores(correct: Sequence[bool] | np.ndarray, *, n_resamples: int = 1000, seed: int = 0,
                    confidence: float = 0.95) -> dict:
    """``{"accuracy", "accuracy_lo", "accuracy_hi", "examples"}``, accuracies on the 0-100 scale.

    Args:
        correct: one flag per example.
        n_resamples: bootstrap samples (the same seed gives the same interval).
        confidence: coverage of the interval.
    """
    if n_resamples < 1:
        raise XnerError(f"n_resamples must be at least 1, got {n_resamples}")
    flags = np.asarray(correct, dtype=np.float64)
    n = len(flags)
    if n == 0:
        raise XnerError("no examples to score")
    point = 100.0 * float(flags.mean())
    rng = np.random.default_rng(seed)
    resampled = 100.0 * flags[rng.integers(0, n, size=(n_resamples, n))].mean(axis=1)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(resampled, [tail, 100.0 - tail])
    return {"accuracy": point, "accuracy_lo": float(low), "accuracy_hi": float(high), "examples": n}
