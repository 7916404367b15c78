"""Device choice, CPU threads, autocast."""

import contextlib

import pytest
import torch

from trm_core.errors import UserError
from trm_core import runtime
from trm_core.train import loop
from trm_core.runtime import autocast_factory, resolve_device, set_cpu_threads


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device("auto").type == expected  # auto: cuda > mps > cpu
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


@pytest.mark.parametrize("native", [False, True])
def test_autocast_only_where_asked(monkeypatch, native):
    monkeypatch.setattr(runtime, "native_bf16_cpu", lambda: native)
    auto = autocast_factory(torch.device("cpu"), "auto")
    assert (auto is contextlib.nullcontext) == (not native)  # auto: bf16 where the CPU has it natively
    assert autocast_factory(torch.device("cpu"), "float32") is contextlib.nullcontext
    with autocast_factory(torch.device("cpu"), "bfloat16")():
        assert torch.is_autocast_enabled("cpu")
        assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.bfloat16  # matmuls run in bf16
    with auto():
        assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == (torch.bfloat16 if native else torch.float32)


def test_native_bf16_detection_agrees_with_the_cpu_flags():
    runtime.native_bf16_cpu.cache_clear()
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    assert runtime.native_bf16_cpu() == (" avx512_bf16" in flags or " amx_bf16" in flags)


def test_public_train_is_the_loop():
    from trm_core.train import train

    assert train is loop.train


def test_precision_modes():
    from trm_core.runtime import forward_dtype

    cpu = torch.device("cpu")
    assert autocast_factory(cpu, "bfloat16", "reference") is contextlib.nullcontext
    assert forward_dtype(cpu, "bfloat16", "reference") == torch.bfloat16
    assert forward_dtype(cpu, "bfloat16", "amp") == torch.float32
    assert forward_dtype(cpu, "float32", "reference") == torch.float32


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


@pytest.mark.parametrize("precision", ["amp", "reference"])
def test_bf16_step_stays_within_its_bound_of_fp32(precision):
    """One training step's loss and gradient in bf16 against fp32 on the same weights and batch: the loss
    within 1% (relative) and the gradient's direction within cosine 0.99 (bf16 keeps ~3 significant digits;
    later steps diverge further once a discrete halting decision flips, so the bound is on one step)."""
    import copy

    from trm_core.config import load_config
    from trm_core.model import build_model
    from trm_core.train.loss import supervision_loss
    from trm_core.runtime import forward_dtype

    cfg = load_config("sudoku4_tiny", ["device=cpu", "train.cpu_threads=1"])
    torch.manual_seed(0)
    base = build_model(cfg)
    x = torch.randint(1, 6, (32, 16), generator=torch.Generator().manual_seed(1))
    y = torch.randint(2, 6, (32, 16), generator=torch.Generator().manual_seed(2))
    results = {}
    for dtype in ("float32", "bfloat16"):
        model = copy.deepcopy(base)
        model.forward_dtype = forward_dtype(torch.device("cpu"), dtype, precision)
        with autocast_factory(torch.device("cpu"), dtype, precision)():
            out = model(model.init_carry(32), x, 2, 2)
        loss = supervision_loss(out.logits, out.q_halt, y, torch.ones(32, dtype=torch.long), 4, cfg.loss).loss
        loss.backward()
        grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        results[dtype] = (float(loss.detach()), grad)
    (l32, g32), (l16, g16) = results["float32"], results["bfloat16"]
    assert abs(l16 - l32) / l32 < 0.01
    assert torch.nn.functional.cosine_similarity(g16, g32, dim=0) > 0.99
    assert l16 != l32  # bf16 really ran
