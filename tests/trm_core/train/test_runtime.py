"""Device choice, CPU threads, autocast."""

import contextlib

import pytest
import torch

from trm_core.errors import UserError
from trm_core.train import loop
from trm_core.train.runtime import autocast_factory, resolve_device, set_cpu_threads


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(UserError, match="device must be auto, cpu, cuda, cuda:N or mps, but got 'gpu'"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA GPU"):
            resolve_device("cuda:0")


def test_cpu_threads_respect_config_then_env(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert set_cpu_threads(torch.device("cpu")) == 1 == torch.get_num_threads()
        assert set_cpu_threads(torch.device("cpu"), threads=2) == 2
        monkeypatch.delenv("OMP_NUM_THREADS")
        import os

        assert set_cpu_threads(torch.device("cpu")) == len(os.sched_getaffinity(0))
    finally:
        torch.set_num_threads(before)


def test_autocast_only_where_asked():
    assert autocast_factory(torch.device("cpu"), "auto") is contextlib.nullcontext
    assert autocast_factory(torch.device("cpu"), "float32") is contextlib.nullcontext
    with autocast_factory(torch.device("cpu"), "bfloat16")():
        assert torch.is_autocast_enabled("cpu")


def test_public_train_is_the_loop():
    from trm_core.train import train

    assert train is loop.train
