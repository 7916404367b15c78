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


def test_precision_modes():
    from trm_core.train.runtime import forward_dtype

    cpu = torch.device("cpu")
    assert autocast_factory(cpu, "bfloat16", "reference") is contextlib.nullcontext
    assert forward_dtype(cpu, "bfloat16", "reference") == torch.bfloat16
    assert forward_dtype(cpu, "bfloat16", "amp") == torch.float32
    assert forward_dtype(cpu, "auto", "reference") == torch.float32  # auto is fp32 off CUDA


def test_reference_precision_trains_on_cpu_bf16(tmp_path):
    from trm_core.config import load_config
    from trm_core.train import train

    cfg = load_config("sudoku4_tiny", ["data.n_train=100", "data.n_test=16", "model.hidden_size=32", "train.batch_size=8",
                                       "train.steps=3", "train.eval_interval=3", "train.dtype=bfloat16",
                                       "train.precision=reference", "train.cpu_threads=1", "device=cpu",
                                       "train.checkpoint_carry=full"])
    final = train(cfg, out_dir=tmp_path)
    assert torch.isfinite(torch.tensor(final["train/loss"]))
    ckpt = torch.load(tmp_path / "checkpoints" / "step_00000003" / "checkpoint.pt", weights_only=True)
    assert ckpt["batch"]["z_h"].dtype == torch.bfloat16  # the carry is kept in bf16, as TRM keeps it
    assert ckpt["model"]["lm_head.weight"].dtype == torch.float32  # fp32 weights, cast at use
