"""Where and how the trainer runs: device choice, CPU threads, autocast, seeding."""

from __future__ import annotations

import contextlib
import functools
import os
import random
import re
import shutil
import warnings
from typing import Callable

import numpy as np
import torch

from trm_core.errors import UserError


def resolve_device(name: str) -> torch.device:
    """auto: cuda > mps > cpu; otherwise cpu | cuda | cuda:N | mps, which must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", name):
        raise UserError(f"device must be auto, cpu, cuda, cuda:N or mps, but got '{name}'")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name} was asked for, but this PyTorch sees no CUDA GPU")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("device mps was asked for, but MPS is not available here")
    return torch.device(name)


def set_cpu_threads(device: torch.device, threads: int = 0) -> int:
    """Torch threads on CPU: `threads` if > 0, else $OMP_NUM_THREADS if set, else every usable core.

    The default does not depend on the machine's load, so a run is reproducible. On a shared
    machine, pin it (`train.cpu_threads=1` or OMP_NUM_THREADS=1): threads waiting on busy cores make
    small models several times slower than one thread. Sweep trials get their Ray CPU count.
    """
    if device.type != "cpu":
        return torch.get_num_threads()
    env = os.environ.get("OMP_NUM_THREADS", "")
    if threads <= 0:
        threads = int(env) if env.isdigit() and int(env) > 0 else len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    return threads


@functools.lru_cache(maxsize=None)
def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), detected once: there a bf16
    matmul runs several times faster than fp32 (see the README's Speed section); elsewhere bf16
    is emulated and slower than fp32."""
    cpu = torch.cpu
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(cpu, probe, None)
        try:
            if check is not None and check():
                return True
        except RuntimeError:  # a build without the probe's kernels
            pass
    try:  # the kernel's own view, for builds without the probes
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def uses_bf16(device: torch.device, dtype: str) -> bool:
    """train.dtype: bfloat16, or auto on CUDA and on CPUs with native bf16 (native_bf16_cpu)."""
    if dtype == "bfloat16":
        return True
    return dtype == "auto" and (device.type == "cuda" or (device.type == "cpu" and native_bf16_cpu()))


def autocast_factory(device: torch.device, dtype: str, precision: str = "amp"
                     ) -> Callable[[], contextlib.AbstractContextManager]:
    """A no-argument context factory: bf16 autocast under train.precision=amp when bf16 is used,
    else nothing (fp32, or the reference numerics, whose casts are explicit: `forward_dtype`)."""
    if not uses_bf16(device, dtype) or precision == "reference":
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def forward_dtype(device: torch.device, dtype: str, precision: str = "amp") -> torch.dtype:
    """The dtype of the model's forward and carry: bf16 under the reference numerics (TRM's
    forward_dtype), else float32 (with amp, autocast runs the matmuls in bf16)."""
    return torch.bfloat16 if uses_bf16(device, dtype) and precision == "reference" else torch.float32


@functools.lru_cache(maxsize=None)
def compiler_available() -> bool:
    """Whether torch.compile can build CPU kernels here: a C++ compiler ($CXX, g++, clang++ or c++)."""
    names = [os.environ.get("CXX", ""), "g++", "clang++", "c++"]
    return any(name and shutil.which(name) for name in names)


def can_compile(device: torch.device) -> bool:
    """train.compile's guard: on a CPU without a C++ compiler, warn once and train eager instead of
    failing in the middle of the first step (torch.compile's CPU backend builds C++ kernels)."""
    if device.type != "cpu" or compiler_available():
        return True
    warnings.warn("train.compile is on, but no C++ compiler (g++, clang++ or $CXX) was found: training eager",
                  RuntimeWarning, stacklevel=2)
    return False


def set_deterministic(on: bool, device: torch.device) -> None:
    """train.deterministic: PyTorch's deterministic algorithms; on CUDA also cuDNN and cuBLAS's
    fixed workspace (CUBLAS_WORKSPACE_CONFIG must be set before the first cuBLAS call)."""
    if not on:
        return
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
