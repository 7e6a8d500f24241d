"""xner on a CUDA GPU: training, the cached-feature fast path, moving models between GPU and
CPU, and a whole study. Skipped without a GPU (CI has none); on a GPU machine: ``pytest -m gpu``.

The rest of the suite pins the CPU (``tests/conftest.py``); these tests unpin it. On the GPU
training and prediction run in bf16 autocast, so numbers are compared with tolerances.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_study_kinds import run as run_tiny_study
from test_tagger import LABELS, easy_corpus, train_tagger

from xner.models.tagger import Tagger

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")]


@pytest.fixture(autouse=True)
def on_gpu(monkeypatch, tmp_path):
    monkeypatch.setenv("XNER_DEVICE", "cuda")
    monkeypatch.setenv("XNER_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def data():
    return {"train": easy_corpus(96, seed=1), "test": easy_corpus(40, seed=3)}


def test_a_tagger_trains_and_predicts_on_the_gpu_in_bf16(data):
    tagger = train_tagger(data["train"])
    assert tagger.device.type == "cuda" and {p.device.type for p in tagger.model.parameters()} == {"cuda"}
    history = tagger.metadata["trainings"][0]["history"]
    assert history[-1]["loss"] < history[0]["loss"] and tagger.evaluate(data["test"])["f1"] > 90


def test_the_fast_path_on_the_gpu_matches_the_full_forward(data):
    tagger = train_tagger(data["train"], train_layers=1)
    fast = tagger.predict_proba(data["test"])  # bottom layer read from the feature cache
    tagger.n_frozen = 0
    for x, y in zip(fast, tagger.predict_proba(data["test"])):
        np.testing.assert_allclose(x, y, atol=3e-2)  # bf16 features vs bf16 forward


def test_a_model_trained_on_the_gpu_predicts_the_same_on_the_cpu(data, tmp_path, monkeypatch):
    tagger = train_tagger(data["train"], train_layers=1)
    gpu = tagger.predict_proba(data["test"], precision="fp32")
    tagger.save(tmp_path / "model", compact=True)
    monkeypatch.setenv("XNER_DEVICE", "cpu")
    moved = Tagger.load(tmp_path / "model")
    assert moved.device.type == "cpu"
    for x, y in zip(gpu, moved.predict_proba(data["test"], precision="fp32")):
        np.testing.assert_allclose(x, y, atol=1e-4)


def test_a_study_on_the_gpu_agrees_with_the_cpu(data_root, tmp_path, monkeypatch):
    gpu = run_tiny_study(data_root, tmp_path / "gpu")
    monkeypatch.setenv("XNER_DEVICE", "cpu")
    cpu = run_tiny_study(data_root, tmp_path / "cpu")
    columns = ["kind", "source", "target", "volume", "seed", "perturbation"]
    both = gpu.frame().merge(cpu.frame(), on=columns, suffixes=("_gpu", "_cpu"))
    assert len(both) == len(cpu.frame()) == 8 and [r.error for r in gpu.records("failed")] == []
    assert (both["f1_gpu"] - both["f1_cpu"]).abs().mean() < 5
