"""Inference precision: ``auto`` picked from the CPU's flags, and every mode's F1 on real data.

The slow tests are the guarantee the precision modes rest on: a model trained on real WikiANN
Spanish tags the real test sentences in bf16 and in int8 within 0.5 F1 of fp32.
"""

from __future__ import annotations

import pytest
import torch

from xner.errors import XnerError
from xner.models import device

CPU = torch.device("cpu")


@pytest.mark.parametrize(("flags", "expected"), [
    ({"avx512_vnni", "avx512_bf16"}, "bf16"),  # int8 units, but auto never picks int8 (see device.py)
    ({"amx_int8", "amx_bf16"}, "bf16"),
    ({"avx512_vnni"}, "fp32"),
    (set(), "fp32"),
])
def test_auto_precision_follows_the_cpu_flags(monkeypatch, flags, expected):
    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(device.torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert device.inference_precision(CPU, "auto") == expected


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_explicit_precisions_are_kept(precision):
    assert device.inference_precision(CPU, precision) == precision


@pytest.mark.parametrize(("where", "precision", "message"), [
    ("cpu", "int4", r"unknown precision 'int4'; valid: auto, bf16, fp32, int8"),
    ("cuda", "int8", r"precision 'int8' runs on the CPU"),
])
def test_bad_precisions_are_one_line_errors(where, precision, message):
    with pytest.raises(XnerError, match=message):
        device.inference_precision(torch.device(where), precision)


def test_cpu_flags_are_read_from_the_kernel():
    flags = device.cpu_flags()
    assert isinstance(flags, frozenset)
    if "fpu" in open("/proc/cpuinfo").read():  # a Linux x86 machine
        assert "fpu" in flags


@pytest.fixture(scope="module")
def real_f1(tmp_path_factory):
    """WikiANN es: the embedded model, top 2 layers trained on 1,000 sentences, tags 2,000 test
    sentences with the whole network (the ``xner predict`` path) in each precision."""
    from conftest import REAL_DATA

    if not REAL_DATA:
        pytest.skip("real data absent: set XNER_DATA_DIR")
    pytest.importorskip("onnxruntime")
    from xner.data import load_split, nested_subset
    from xner.metrics import entity_scores
    from xner.models.tagger import Tagger, TrainConfig

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XNER_CACHE", str(tmp_path_factory.mktemp("cache")))
        train = nested_subset(load_split("es", "train", data_dir=REAL_DATA), 1000, 0)
        test = load_split("es", "test", data_dir=REAL_DATA)[:2000]
        tagger = Tagger.create("embedded", labels=("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"))
        tagger.fit(train, config=TrainConfig(epochs=2, lr=3e-4, train_layers=2, patience=None, precision="fp32"))
        gold = [list(s.tags) for s in test]
        return {precision: entity_scores(gold, tagger.predict(test, precision=precision, cache=False))["f1"]
                for precision in ("fp32", "bf16", "int8")}


@pytest.mark.slow
def test_bf16_stays_within_half_an_f1_point_of_fp32_on_real_data(real_f1):
    assert real_f1["fp32"] > 60, real_f1  # a model worth comparing
    assert abs(real_f1["bf16"] - real_f1["fp32"]) <= 0.5, real_f1


@pytest.mark.slow
def test_int8_stays_within_half_an_f1_point_of_fp32_on_real_data(real_f1):
    assert abs(real_f1["int8"] - real_f1["fp32"]) <= 0.5, real_f1
