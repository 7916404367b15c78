"""Tiny checkpoints for the engine's tests, trained here for a few steps.

A few CPU steps do not teach the halting head anything, so `noisy` and `plain` get a random halt
head (weights and bias set after training): q_halt then crosses 0 at different steps for different
rows, which is what the ACT queue and halt_first need to be exercised. The engine does not care
whether q_halt was learned.
"""

from pathlib import Path

import pytest
import torch

from trm_core.config import load_config
from trm_core.train import train

TINY = ["data.n_train=64", "data.n_test=32", "model.hidden_size=32", "train.batch_size=16", "train.steps=4",
        "train.eval_interval=4", "train.log_interval=4", "recursion.n_supervision=4", "train.cpu_threads=1",
        "device=cpu", "optim.warmup_steps=0", "train.compile=false"]


def _train(root: Path, preset: str, *extra: str) -> Path:
    train(load_config(preset, TINY + list(extra)), out_dir=root)
    return root / "checkpoints" / "step_00000004"


def _random_halt_head(ckpt: Path, out: Path, seed: int) -> Path:
    data = torch.load(ckpt / "checkpoint.pt", map_location="cpu", weights_only=True)
    g = torch.Generator().manual_seed(seed)
    for weights in (data["model"], data["ema"]["model"] if data.get("ema") else {}):
        if "q_head.weight" in weights:
            weights["q_head.weight"].copy_(torch.randn(weights["q_head.weight"].shape, generator=g) * 0.3)
            weights["q_head.bias"].copy_(torch.tensor([-1.0, -1.0]))
    out.mkdir(parents=True)
    torch.save(data, out / "checkpoint.pt")
    return out


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """noisy: random init (EqR's normal) and path noise 0.05 at evaluation; plain: TRM's fixed init,
    no noise; board6: a 6x6 model (another board)."""
    root = tmp_path_factory.mktemp("infer_ckpts")
    noisy = _train(root / "noisy", "sudoku4_tiny", "seed=0", "recursion.latent_init=normal", "recursion.noise_beta=0.05")
    plain = _train(root / "plain", "sudoku4_tiny", "seed=1")
    board6 = _train(root / "board6", "sudoku6_small", "data.n_train=64", "data.n_test=16")
    return {"noisy": _random_halt_head(noisy, root / "noisy_halting", 0),
            "plain": _random_halt_head(plain, root / "plain_halting", 1),
            "plain_trained_head": plain, "board6": board6}
