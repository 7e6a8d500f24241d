"""Device, precision and seeding: GPU when present, else every CPU core; seeded and deterministic."""

from __future__ import annotations

import contextlib
import functools
import os
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from xner.errors import XnerError, one_of

__all__ = [
    "DEVICE_VARIABLE", "PRECISIONS", "autocast", "autocast_dtype", "autocast_to", "compute_threads", "cpu_flags",
    "default_device",
    "inference_precision", "kernel_precision", "seed_everything", "training_kernels", "use_all_cores",
]


DEVICE_VARIABLE = "XNER_DEVICE"
"""Environment variable that pins the device (``cpu``, ``cuda``, ``cuda:1``): bit-reproducible
CPU numbers on a GPU machine, or one chosen GPU of several."""


def default_device() -> torch.device:
    """``$XNER_DEVICE`` when set, else the GPU when present, else the CPU."""
    requested = os.environ.get(DEVICE_VARIABLE, "").strip()
    if not requested:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise XnerError(f"{DEVICE_VARIABLE}={requested!r} is not a device: use cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise XnerError(f"{DEVICE_VARIABLE}={requested!r}: xner runs on cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise XnerError(f"{DEVICE_VARIABLE}={requested!r}: no CUDA GPU is available here")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise XnerError(f"{DEVICE_VARIABLE}={requested!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return device


def use_all_cores() -> int:
    """Set torch's intra-op threads to the cores this process may use (affinity aware).

    A scheduler that shares the machine between workers (xner's process pool, Ray)
    says how many threads each gets through ``OMP_NUM_THREADS``; that wins.
    """
    requested = os.environ.get("OMP_NUM_THREADS", "")
    if requested.isdigit() and int(requested) > 0:
        cores = int(requested)
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if torch.get_num_threads() != cores:
        torch.set_num_threads(cores)
    return cores


def compute_threads() -> int:
    """The threads torch computes with on CPU, recorded with every study run: bf16 sums split
    across threads, so a rerun matches a run's numbers to the digit on as many threads."""
    return torch.get_num_threads()


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch so that the same config and seed give the same numbers on CPU."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    use_all_cores()


def autocast(device: torch.device, precision: str = "auto"):
    """Mixed precision on GPU (bf16 where supported, else fp16); fp32 on CPU unless asked.

    Args:
        precision: ``auto`` | ``mixed`` (``auto``, plus bf16 on CPUs that compute it
            natively: 1.5x faster top-layer training there at equal F1, while other CPUs,
            which would emulate it slowly, stay in fp32) | ``fp32`` | ``bf16`` | ``fp16``.
    """
    return autocast_to(device, autocast_dtype(device, precision))


def autocast_to(device: torch.device | str, dtype: torch.dtype | None):
    """Autocast to ``dtype`` on ``device`` (``None``: no autocast, fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The dtype matrix products run in under :func:`autocast` (``None``: fp32)."""
    if precision == "mixed":
        precision = inference_precision(device, "auto")
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


@contextlib.contextmanager
def training_kernels(model: nn.Module, device: torch.device, precision: str):
    """Eager attention while a model trains in bf16 on a CPU.

    PyTorch's CPU flash-attention backward is slow for sentence-length inputs in bf16:
    eager attention makes a top-4-layer training step of multilingual-e5-small 1.5-1.9x
    faster there (``benchmarks/train_speed.py``). Prediction keeps SDPA (faster forward),
    and fp32 training is left untouched (bit-identical to earlier xner versions).
    """
    switch = device.type == "cpu" and autocast_dtype(device, precision) is not None
    previous = getattr(model.config, "_attn_implementation", None)
    if switch and previous != "eager":
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if switch and previous not in (None, "eager"):
            model.set_attn_implementation(previous)


def kernel_precision(device: torch.device, precision: str) -> str:
    """The precision the kernels run in: ``int8``, or autocast's dtype (``auto`` and
    ``mixed`` resolved as in training) as ``fp32``/``bf16``/``fp16``."""
    if precision == "int8":
        return precision
    dtype = autocast_dtype(device, precision)
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


PRECISIONS = ("auto", "fp32", "bf16", "int8")
"""Inference precisions a user picks from (``xner predict/evaluate --precision``); training and
autocast also take ``mixed`` and ``fp16`` (:func:`autocast_dtype`)."""

# CPU instructions that make bf16 matrix products fast (/proc/cpuinfo flag names).
_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def inference_precision(device: torch.device, precision: str = "auto") -> str:
    """The precision prediction runs in (``fp32``, ``bf16``, ``fp16`` or ``int8``).

    ``auto`` picks by the hardware: the GPU's mixed-precision dtype on a GPU; on a CPU, bf16
    where it computes bf16 natively (AVX512-BF16, AMX-BF16), else fp32. int8 (ONNX Runtime,
    block-quantized, :mod:`xner.models.int8`) holds F1 as bf16 does (within 0.5 on WikiANN es
    and MasakhaNER swa) but is asked for, never picked: on an AVX512-BF16 CPU it is no faster
    than bf16, and ``auto`` is also what studies predict in, whose numbers must not change
    with a machine's int8 units.

    Raises:
        XnerError: an unknown precision, or int8 on a GPU.
    """
    if precision not in (*PRECISIONS, "mixed", "fp16"):
        raise one_of("precision", precision, PRECISIONS)
    if precision == "int8" and device.type != "cpu":
        raise XnerError("precision 'int8' runs on the CPU (ONNX Runtime); on a GPU use auto, bf16 or fp16")
    if precision not in ("auto", "mixed"):
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if _cpu_has_bf16() else "fp32"


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's instruction-set flags as Linux reports them (empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return frozenset(line.partition(":")[2].split())


def _cpu_has_bf16() -> bool:
    """bf16 matrix instructions, by the CPU flags or oneDNN's own check (no /proc/cpuinfo)."""
    if cpu_flags() & _BF16_FLAGS:
        return True
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
