"""int8 inference on the CPU: a network exported to ONNX, its weights quantized to int8.

PyTorch's own dynamic quantization (``torch.ao.quantization.quantize_dynamic``) is deprecated
and, on a 2-core AVX512-VNNI CPU, ran the multilingual-e5-small encoder only 1.5x faster than
fp32 (slower than bf16 autocast), so int8 goes through ONNX Runtime. Its classic dynamic
quantization (``quantize_dynamic``: int8 weights per channel, each activation tensor quantized
per batch with one scale) was the fastest, but cost F1: -1.48 on the 10,000 WikiANN es test
sentences and -1.37 on MasakhaNER swa for a model at 70 and 45 F1 (one scale for a whole
activation tensor cannot hold a transformer's outlier channels). Here the weights of every
MatMul are int8 in blocks of 32 along the input axis with a scale each (MatMulNBits, 8 bits,
symmetric), and ``accuracy_level`` 4 quantizes the activations to int8 per block of 32 too,
then multiplies in int8: on the same model and sentences F1 moved by +0.06 and -0.15 (blocks
of 64: -1.36 and -0.35; fp32 activations, level 0: +0.01 on 2,000 es sentences). The network
(a full tagger, a cached-feature top, or the frozen bottom) is exported once, quantized, and kept under
``$XNER_CACHE/onnx/<key>.onnx``, written under a temporary name and renamed when complete, so
that concurrent processes can only duplicate the export, never read half of it.

Example:
    >>> run = int8_network(model, ("input_ids", "attention_mask"), key)  # doctest: +SKIP
    >>> run(ids, mask).shape  # doctest: +SKIP
    torch.Size([2, 5, 7])
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import uuid
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from xner.errors import XnerError
from xner.paths import cache_dir

__all__ = ["int8_network"]

_FORMAT = "ort-matmulnbits-int8-block32-acc4.v3"
_OPSET = 17
_SESSIONS: dict[Path, object] = {}

QUANTIZATION: dict = {"bits": 8, "block_size": 32, "is_symmetric": True, "accuracy_level": 4,
                      "op_types_to_quantize": ("MatMul",)}
"""Options of ONNX Runtime's weight-only quantizer (``DefaultWeightOnlyQuantConfig``)."""


def int8_network(module: nn.Module, names: Sequence[str], key: str) -> Callable[..., torch.Tensor]:
    """``module`` as an int8 ONNX Runtime session: ``run(*tensors) -> first output``.

    The export happens at the first call (traced with its inputs), unless an earlier
    process already left the quantized model in the cache.

    Args:
        module: a network whose ``forward(*tensors)`` returns one tensor (batch and
            sequence axes first in inputs and output).
        names: the input names, one per tensor.
        key: identifies the weights (e.g. a tagger's fingerprint plus which part): the
            exported model is reused by every later call with the same key.

    Raises:
        XnerError: ONNX Runtime is not installed.
    """
    path = cache_dir() / "onnx" / (hashlib.blake2b(f"{_FORMAT}|{key}".encode(), digest_size=12).hexdigest() + ".onnx")
    input_names = list(names)

    def run(*tensors: torch.Tensor) -> torch.Tensor:
        session = _SESSIONS.get(path)
        if session is None:
            if not path.is_file():
                _export_quantized(module, tensors, input_names, path)
            session = _SESSIONS[path] = _session(path)
        feed = {name: tensor.cpu().numpy() for name, tensor in zip(input_names, tensors)}
        return torch.from_numpy(session.run(None, feed)[0])

    return run


def _session(path: Path):
    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _export_quantized(module: nn.Module, example: Sequence[torch.Tensor], names: Sequence[str], path: Path) -> None:
    """Export ``module`` to ONNX (fp32) and write its block-quantized int8 copy to ``path``."""
    _onnxruntime()
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    path.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    plain, quantized = path.with_name(f".{token}.fp32.onnx"), path.with_name(f".{token}.int8.onnx")
    axes = {name: {0: "batch", 1: "length"} for name in (*names, "output")}
    module.eval()
    logging.disable(logging.WARNING)  # the quantizer's advice to pre-process, on the root logger
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python branches
            torch.onnx.export(module, tuple(example), str(plain), input_names=list(names), output_names=["output"],
                              dynamic_axes=axes, opset_version=_OPSET, dynamo=False)
            quantizer = MatMulNBitsQuantizer(onnx.load(str(plain)), algo_config=DefaultWeightOnlyQuantConfig(**QUANTIZATION))
            quantizer.process()
            quantizer.model.save_model_to_file(str(quantized), use_external_data_format=False)
        os.replace(quantized, path)
    finally:
        logging.disable(logging.NOTSET)
        plain.unlink(missing_ok=True)
        quantized.unlink(missing_ok=True)


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise XnerError("precision 'int8' needs ONNX Runtime: pip install onnxruntime onnx") from None
    return onnxruntime
