"""Where and how the trainer runs: device choice, CPU threads, autocast, seeding."""

from __future__ import annotations

import contextlib
import os
import random
import re
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
    """Torch threads on CPU: `threads` if > 0, else $OMP_NUM_THREADS if set, else the idle cores.

    Idle cores = cores minus the 1-minute load average (at least 1), read once at start: on a shared
    machine, threads that wait on busy cores make small models several times slower than one thread.
    """
    if device.type != "cpu":
        return torch.get_num_threads()
    cores = len(os.sched_getaffinity(0))
    env = os.environ.get("OMP_NUM_THREADS", "")
    if threads <= 0:
        threads = int(env) if env.isdigit() and int(env) > 0 else max(1, min(cores, round(cores - os.getloadavg()[0])))
    torch.set_num_threads(threads)
    return threads


def autocast_factory(device: torch.device, dtype: str) -> Callable[[], contextlib.AbstractContextManager]:
    """A no-argument context factory: bf16 autocast (auto on CUDA, or when asked), else nothing."""
    use_bf16 = dtype == "bfloat16" or (dtype == "auto" and device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
