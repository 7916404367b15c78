"""The real command lines with tiny budgets: train, eval, bench; bad input is one line and exit 2."""

import json
import os
import subprocess
import sys

import pytest

from trm_core.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TINY = ["data.n_train=100", "data.n_test=16", "model.hidden_size=32", "train.batch_size=8", "train.steps=4",
        "train.eval_interval=2", "train.log_interval=2", "recursion.n_supervision=2", "train.cpu_threads=1"]


def run(*args, timeout=120):
    env = {**os.environ, "PYTHONPATH": ROOT, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "trm_core", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_run")
    result = run("train", "sudoku4_tiny", "--set", *TINY, "--out", str(out), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    return out, result


def test_train_writes_run_files(trained):
    out, result = trained
    final = json.loads(result.stdout.strip().splitlines()[-1])
    assert final["step"] == 4
    assert json.loads((out / "final.json").read_text())["step"] == 4
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "eval/exact_acc" in x] == [2, 4]
    assert (out / "config.yaml").exists()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_00000002", "step_00000004"]


def test_eval_and_resume_from_a_checkpoint(trained, tmp_path):
    out, _ = trained
    ckpt = out / "checkpoints" / "step_00000004"
    result = run("eval", str(ckpt), "--limit", "8")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["step"] == 4 and metrics["eval/n_puzzles"] == 8 and 0 <= metrics["eval/cell_acc"] <= 1
    more = run("train", "sudoku4_tiny", "--set", *TINY, "train.steps=6", "--out", str(tmp_path), "--resume", str(ckpt))
    assert more.returncode == 0, more.stderr
    assert json.loads((tmp_path / "final.json").read_text())["step"] == 6


def test_bench_prints_table_and_json():
    result = run("bench", "train", "--preset", "sudoku4_tiny", "--set", "train.batch_size=8", "--steps", "2",
                 "--warmup", "1", "--variants", "eager_fp32,eager_bf16", "--peak-tflops", "100,0.5")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    fp32 = summary["results"]["eager_fp32"]
    assert fp32["puzzle_steps_per_s"] > 0
    # TFLOP/s is the analytic FLOPs of a puzzle-step times the measured rate
    assert fp32["tflops"] == pytest.approx(fp32["puzzle_steps_per_s"] * summary["flops_per_puzzle_step"] / 1e12)
    assert fp32["mfu"] == pytest.approx(fp32["tflops"] / 0.5)  # fp32 variants against the fp32 peak
    bf16 = summary["results"]["eager_bf16"]  # bf16 is measured on CPU too now (trm_core/train/bench.py)
    assert bf16["puzzle_steps_per_s"] > 0 and bf16["mfu"] == pytest.approx(bf16["tflops"] / 100)
    assert summary["n_params"] > 0 and summary["flops_per_puzzle_step"] > 0
    assert "puzzle-steps/s" in result.stdout


def test_bad_flag_is_one_line_exit_2_in_a_real_process():
    result = run("train", "sudoku4_tiny", "--out", "x", "--bogus")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "unrecognized arguments: --bogus" in lines[0]


@pytest.mark.parametrize("args, message", [
    (["train", "sudoku4_tiny", "--out", "x", "--set", "optim.lrr=1"], "did you mean 'optim.lr'"),
    (["train", "sudoku4_tiny", "--out", "x", "--set", "train.steps=abc"], "train.steps must be int"),
    (["train", "nope_preset", "--out", "x"], "neither a preset"),
    (["train", "sudoku4_tiny", "--out", "x", "--device", "tpu"], "device must be auto, cpu"),
    (["eval", "/nonexistent/ckpt"], "not found"),
    (["train", "sudoku4_tiny", "--out", "x", "--set", "recursion.chains=0"], "recursion.chains > 0 must hold"),
    (["train", "sudoku4_tiny", "--out", "x", "--set", "recursion.carry_h=best"],
     "recursion.carry_h must name a carry policy (all, copy, top1), but got 'best'"),
    (["train", "sudoku4_tiny", "--out", "x", "--set", "recursion.init_sigma_l=-1"], "recursion.init_sigma_l >= 0 must hold"),
    (["train", "sudoku4_tiny", "--out", "x", "--set", "recursion.damping=1"], "0 <= recursion.damping < 1 must hold"),
    (["train", "sudoku4_tiny", "--out", "x", "--set", "recursion.eval_noise_beta=-2"], "recursion.eval_noise_beta must be -1"),
    (["train", "sudoku4_tiny", "--out", "x", "--set", "recursion.cgar_stages=2x1"], "recursion.cgar_stages must be like"),
    (["train", "sudoku4_tiny", "--out", "x", "--set", "recursion.cgar_stages=0.2:2x1"], "must start at progress 0"),
    (["train", "sudoku4_tiny", "--out", "x", "--set", "model.swiglu=bounded"], "model.swiglu must be one of standard, sic"),
    (["train", "sudoku4_tiny", "--out", "x", "--set", "loss.chain_loss=max"], "loss.chain_loss must name a chain reduction (mean, wta)"),
    (["train", "sudoku4_tiny", "--out", "x", "--set", "optim.name=muon_adam"], "did you mean 'muon_adamw'"),
    (["train", "sudoku4_tiny", "--out", "x", "--set", "data.hint_fraction=0.5"], "needs data.hint_k >= 1"),
    (["eval", "/nonexistent/ckpt", "--limit", "-1"], "--limit must be >= 0"),
    (["bench", "train", "--preset", "sudoku4_tiny", "--variants", "fast"], "--variants must be from"),
    (["bench", "train", "--preset", "sudoku4_tiny", "--peak-tflops", "fast"], "--peak-tflops must be two positive"),
    (["bench", "train", "--preset", "sudoku4_tiny", "--peak-tflops", ""], "--peak-tflops must be two positive"),
    (["bench", "train", "--preset", "sudoku4_tiny", "--peak-tflops", "100,0"], "but got '100,0'"),
])
def test_bad_input_is_one_line_exit_2(args, message, cli_error):
    line = cli_error(main, args)
    assert message in line, line


def test_mfu_peaks_come_from_the_device_name_or_the_flag(monkeypatch):
    import torch

    from trm_core.train.bench import peak_tflops

    assert peak_tflops(torch.device("cpu")) is None  # no MFU on a CPU unless a peak is given
    assert peak_tflops(torch.device("cpu"), "10,2") == {"bfloat16": 10.0, "float32": 2.0}
    names = {"NVIDIA H100 PCIe": 756.5, "NVIDIA H100 80GB HBM3": 989.4, "NVIDIA GeForce RTX 5090": 209.5}
    for name, bf16 in names.items():
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None, name=name: name)
        assert peak_tflops(torch.device("cuda"))["bfloat16"] == bf16
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some Future GPU")
    assert peak_tflops(torch.device("cuda")) is None
