"""`python -m sweeper ensemble`: a real small sweep (Ray, Optuna, Aim, the 4x4 tiny trainer), then its
best configurations' final checkpoints as one test-time ensemble.

The checkpoints the ensemble must use are found here from results.csv and the trial folders, and its
numbers are compared with `python -m trm_core eval CKPT_1 ... CKPT_C` run as a separate process on
the same checkpoints with the same flags."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from report_helpers import trial, write_sweep
from sweep_helpers import good, write_spec

from sweeper.cli import main
from sweeper.report.ensemble_view import accuracy_table

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
STEPS = 150
FLAGS = ["--depth", "2,4", "--select", "last,halt_first,prob_avg,majority,top1_converged,oracle", "--limit", "24"]


@pytest.fixture(scope="module")
def swept(ray_cluster, tmp_path_factory):
    """3 configurations x seeds 0, 1 (150 steps each: some puzzles solved, so the rules differ), no
    scheduler: every trial ends with a checkpoint."""
    d = tmp_path_factory.mktemp("ens")
    raw = good()
    raw.update(name="ens", seeds=[0, 1], scheduler="none", storage=str(d / "sweeps"),
               aim={"repo": str(d / "aim"), "experiment": "ens"})
    raw["base"]["overrides"].update({"train.steps": STEPS, "train.eval_interval": 50, "train.log_interval": 50})
    raw["space"] = {"optim.lr": {"type": "float", "low": 3e-3, "high": 1e-2, "log": True}}
    raw["search"] = {"sampler": "random", "seed": 0, "num_samples": 3, "max_concurrent": 2}
    assert main(["run", write_spec(d / "ens.yaml", raw)]) == 0
    return {"dir": d, "storage": str(d / "sweeps"), "sweep_dir": d / "sweeps" / "ens"}


def expected_checkpoints(sweep_dir: Path, top: int) -> list[tuple[str, int, str]]:
    """(config_id, seed, checkpoint) of the `top` configurations with the best mean eval/exact_acc over
    their seeds, from results.csv and the trial folders: every trial ended at train.steps, and its
    final checkpoint is the last one it reported to Tune (checkpoint_NNNNNN, one per evaluation)."""
    t = pd.read_csv(sweep_dir / "results.csv", dtype={"trial_id": str, "config_id": str})
    assert (t["status"] == "done").all() and (t["step"] == STEPS).all()
    means = t.groupby("config_id")["eval/exact_acc"].mean()
    best = means.sort_values(ascending=False).index[:top]
    out = []
    for cfg in best:
        for _, row in t[t["config_id"] == cfg].sort_values("seed").iterrows():
            trial_dir = next(sweep_dir.glob(f"**/trial_{row['trial_id']}"))
            last = sorted(trial_dir.glob("checkpoint_*"))[-1]
            assert torch.load(last / "checkpoint.pt", weights_only=True)["step"] == STEPS
            out.append((cfg, int(row["seed"]), str(last)))
    return out, means


def ensemble(swept, *extra) -> int:
    return main(["ensemble", "ens", "--storage", swept["storage"], *extra])


def only_dir(sweep_dir: Path, pattern: str = "top*") -> list[Path]:
    return sorted((sweep_dir / "ensembles").glob(pattern))


def test_ensemble_numbers_equal_trm_core_eval_on_the_same_checkpoints(swept, tmp_path, capsys):
    assert ensemble(swept, "--top", "2", *FLAGS) == 0
    out = capsys.readouterr().out
    [folder] = only_dir(swept["sweep_dir"], "top2-*")
    data = json.loads((folder / "ensemble.json").read_text())
    members = data["ensemble"]["members"]
    expected, means = expected_checkpoints(swept["sweep_dir"], 2)
    # the same checkpoints; configurations best first (a tie in the mean may come in either order)
    assert sorted(expected) == sorted((m["group"], m["seed"], m["checkpoint"]) for m in members)
    order = [means[m["group"]] for m in members]
    assert order == sorted(order, reverse=True) and len(members) == 4
    assert [c["path"] for c in data["checkpoints"]] == [m["checkpoint"] for m in members]

    ref = tmp_path / "eval.json"
    proc = subprocess.run([sys.executable, "-m", "trm_core", "eval", *[m["checkpoint"] for m in members], *FLAGS,
                           "--json", str(ref)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    want = json.loads(ref.read_text())["results"]
    assert 0 < max(r["exact_acc"] for r in want if not r["ceiling"]) < 1  # informative: some solved, not all
    keys = ("depth", "breadth", "rule", "exact_acc", "cell_acc", "avg_nfe", "selection_failures")
    assert [{k: r[k] for k in keys} for r in data["results"]] == [{k: r[k] for k in keys} for r in want]
    # the whole-ensemble prefix is the same table; one checkpoint alone is each checkpoint's own number
    full = [r for r in data["by_checkpoints"] if r["checkpoints"] == 4]
    assert [{k: r[k] for k in keys} for r in full] == [{k: r[k] for k in keys} for r in want]
    alone = [r for r in data["by_checkpoints"] if r["checkpoints"] == 1 and r["rule"] == "last" and r["depth"] == 4]
    per_ckpt = [v for v in data["diagnostics"]["views"] if v["depth"] == 4][0]["checkpoint_exact_acc"]
    assert alone[0]["exact_acc"] == pytest.approx(per_ckpt[0])
    # the terminal shows the table with the one-checkpoint row and every rule
    assert "one checkpoint alone (its first member; mean ± std of 4)" in out and "oracle (ceiling)" in out

    table = pd.read_csv(folder / "ensemble.csv")
    assert sorted(table["checkpoints"].unique()) == [1, 2, 3, 4] and set(table["members"]) == {1, 2, 3, 4}
    assert len(table) == 4 * 2 * 6 and (folder / "ensemble.parquet").exists()
    for name in ("accuracy_vs_members", "accuracy_vs_nfe_by_members", "accuracy_vs_depth"):
        assert (folder / "plots" / f"{name}.png").stat().st_size > 1000


def test_the_same_command_reuses_the_result_and_other_flags_make_another(swept, capsys):
    assert ensemble(swept, "--top", "2", *FLAGS) == 0  # the first test may not have run (-k): make sure it exists
    capsys.readouterr()
    [folder] = only_dir(swept["sweep_dir"], "top2-*")
    stamp = (folder / "ensemble.json").stat().st_mtime_ns
    (folder / "ensemble.csv").unlink()  # a derived file that went missing is written again from the JSON
    assert ensemble(swept, "--top", "2", *FLAGS) == 0
    out = capsys.readouterr().out
    assert out.startswith("reused: ") and (folder / "ensemble.json").stat().st_mtime_ns == stamp
    assert (folder / "ensemble.csv").exists()
    assert ensemble(swept, "--top", "1", "--depth", "3", "--breadth", "1,2", "--limit", "24", "--select",
                    "last,majority") == 0
    assert len(only_dir(swept["sweep_dir"])) == 2
    [one] = only_dir(swept["sweep_dir"], "top1-*")
    data = json.loads((one / "ensemble.json").read_text())
    assert len(data["checkpoints"]) == 2 and {m["seed"] for m in data["ensemble"]["members"]} == {0, 1}
    assert len({m["group"] for m in data["ensemble"]["members"]}) == 1
    # NFE: a checkpoint alone is its first member, 3 steps; majority reads 2 checkpoints x 2 restarts x 3 steps
    rows = {r[0].split(" (")[0]: r for r in accuracy_table(data).rows}
    assert rows["one checkpoint alone"][-1] == "3" and rows["majority"][-1] == "12.0"
    assert ensemble(swept, "--top", "9", *FLAGS) == 0  # more than the 3 configurations: the top-3 ensemble
    assert [d.name.split("-")[0] for d in only_dir(swept["sweep_dir"])] == ["top1", "top2", "top3"]


def test_report_has_an_ensemble_section_and_aim_a_run_tagged_ensemble(swept, capsys):
    assert ensemble(swept, "--top", "2", *FLAGS) == 0
    assert main(["report", "ens", "--storage", swept["storage"]]) == 0
    md = (swept["sweep_dir"] / "report" / "report.md").read_text()
    assert "## Ensembles of the sweep's checkpoints" in md
    [folder] = only_dir(swept["sweep_dir"], "top2-*")
    data = json.loads((folder / "ensemble.json").read_text())
    majority = [r for r in data["results"] if r["rule"] == "majority" and r["depth"] == 4][0]["exact_acc"]
    row = [line for line in md.splitlines() if line.startswith("| majority |")][0]
    assert f"{majority:.4f}" in row
    assert "accuracy_vs_members.png" in md and "one checkpoint alone" in md
    import aim  # Aim's SDK, read directly: query_runs lists trial runs only

    runs = [r for r in aim.Repo.from_path(str(swept["dir"] / "aim")).iter_runs() if "ensemble" in r.tags]
    folders = only_dir(swept["sweep_dir"])
    assert len(runs) == len(folders) >= 1
    hashes = {json.loads((d / "aim_run.json").read_text())["hash"] for d in folders}
    assert {r.hash for r in runs} == hashes
    for run in runs:
        assert {"sweep:ens", "phase:ensemble"} <= set(run.tags) and run.experiment == "ens"
        folder = next(d for d in folders if run.name.endswith(d.name))
        data = json.loads((folder / "ensemble.json").read_text())
        big_d = max(data["settings"]["depths"])
        want = {r["rule"]: r["exact_acc"] for r in data["results"] if r["depth"] == big_d}
        assert {k: v["exact_acc"] for k, v in run["ensemble"].items() if isinstance(v, dict)} == want


@pytest.mark.parametrize("case", ["no_final_trial", "missing_checkpoint", "bad_flag"])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, case):
    rows = [trial("a0", "cfg-aaaa", 0, "error", None, {"optim.lr": 1e-3}, step=5, error="boom"),
            trial("a1", "cfg-aaaa", 1, "stopped_early", 0.5, {"optim.lr": 1e-3}, step=30)]
    if case != "no_final_trial":
        rows.append(trial("b0", "cfg-bbbb", 0, "done", 0.9, {"optim.lr": 2e-3}))
    write_sweep(tmp_path, "bad", rows)
    extra = ["--depth", "0"] if case == "bad_flag" else []
    proc = subprocess.run([sys.executable, "-m", "sweeper", "ensemble", "bad", "--storage", str(tmp_path), *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith("error: ")
    want = {"no_final_trial": "has no trial trained to the end (1 error, 1 stopped_early)",
            "missing_checkpoint": "trial b0 (cfg-bbbb, seed 0, search) ended at step 100, but",
            "bad_flag": "--depth must be >= 1, but got 0"}[case]
    assert want in line, line
    assert not (tmp_path / "bad" / "ensembles").exists()  # nothing written
