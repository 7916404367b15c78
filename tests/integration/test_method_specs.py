"""The shipped CPU method specs run end to end (real Ray, Optuna, Aim), shrunk with --set, and the
GPU specs pass --dry-run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sweep_helpers import check_dry_run

from sweeper.aim.repo import query_runs
from sweeper.cli import main
from sweeper.spec import load_spec

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SHRINK = ["train.steps=6", "train.eval_interval=3", "train.log_interval=3", "train.eval_max_puzzles=20",
          "data.n_train=120", "data.n_test=30", "model.hidden_size=32", "scheduler=none", "seeds=[0]",
          "train.compile=false"]  # the CPU presets compile; six steps would not repay it


def run_shrunk(spec: str, tmp: Path, *extra: str) -> Path:
    name = Path(spec).stem
    sets = SHRINK + [f"storage={tmp / 'sweeps'}", f"aim.repo={tmp / 'aim'}", *extra]
    args = [a for kv in sets for a in ("--set", kv)]
    assert main(["run", str(ROOT / "search_spaces" / spec), *args]) == 0
    return tmp / "sweeps" / name


def test_wta_cpu_spec_runs_and_records_chain_metrics(ray_cluster, tmp_path):
    d = run_shrunk("wta_cpu.yaml", tmp_path, "search.num_samples=2", "train.batch_rows=16")
    csv = pd.read_csv(d / "results.csv")
    assert len(csv) == 2 and set(csv["status"]) == {"done"}
    first = csv[csv["param:recursion.chains"] == 4]  # the spec's first point: K = 4
    assert len(first) == 1 and first["train/win_rate/3"].notna().all()
    runs = query_runs(tmp_path / "aim", "wta_cpu")
    k4 = [r for r in runs if r["hparams"]["recursion.chains"] == 4]
    assert k4 and ("win_rate/0", "train") in k4[0]["metrics"] and ("chain_cos", "train") in k4[0]["metrics"]


def test_methods_cpu_spec_runs_with_conditional_methods(ray_cluster, tmp_path):
    all_on = ("search.points_to_evaluate=[{recursion.latent_init: normal, recursion.damping: 0.05, "
              "recursion.depth_schedule: cgar, data.hint_fraction: 0.3, recursion.chains: 2}]")
    d = run_shrunk("methods_cpu.yaml", tmp_path, "search.num_samples=3", all_on)
    csv = pd.read_csv(d / "results.csv")
    assert len(csv) == 3 and set(csv["status"]) == {"done"}
    every_method = csv[(csv["param:recursion.depth_schedule"] == "cgar") & (csv["param:recursion.chains"] == 2)]
    assert len(every_method) >= 1
    # SIC's winner-take-all: each puzzle trains exactly one of its K = 2 chains, so the chains' win shares sum to 1
    shares = every_method["train/win_rate/0"] + every_method["train/win_rate/1"]
    assert shares.to_numpy() == pytest.approx(1.0)
    for _, row in csv.iterrows():
        assert pd.notna(row["param:recursion.init_sigma_l"]) == (row["param:recursion.latent_init"] == "normal")
        assert pd.notna(row["param:loss.step_weighting"]) == (row["param:recursion.depth_schedule"] == "cgar")


@pytest.mark.parametrize("spec", ["wta.yaml", "eqr.yaml", "wta_cpu.yaml", "methods_cpu.yaml", "baseline.yaml"])
def test_shipped_specs_pass_dry_run(spec, capsys):
    """The plan printed is the spec's (sweep_helpers.check_dry_run): on this CPU machine a GPU spec
    says it cannot start and names its CPU counterpart."""
    path = str(ROOT / "search_spaces" / spec)
    assert main(["run", path, "--dry-run"]) == 0
    check_dry_run(capsys.readouterr().out, load_spec(path))
