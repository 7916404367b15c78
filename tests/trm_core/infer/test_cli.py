"""`python -m trm_core eval` with test-time flags: one table, JSON, plots; bad input is one line, exit 2."""

import json
import os
import subprocess
import sys

import pytest

from trm_core.cli import main
from trm_core.errors import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_engine_prints_one_table_and_writes_json_and_plots(checkpoints, tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    args = ["eval", str(checkpoints["noisy"]), str(checkpoints["plain"]), "--depth", "2,4", "--breadth", "2",
            "--transforms", "2", "--act", "--select", "halt_first,prob_avg,majority,top1_converged,oracle",
            "--json", str(tmp_path / "tts.json"), "--plot", str(tmp_path / "plots"), "--limit", "8",
            "--set", "train.cpu_threads=1"]
    result = subprocess.run([sys.executable, "-m", "trm_core", *args], capture_output=True, text=True, timeout=300,
                            env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "exact acc" in out and "avg NFE" in out and "oracle (ceiling)" in out and "halt_first" in out
    data = json.loads((tmp_path / "tts.json").read_text())
    assert len(data["results"]) == 2 * 5 and data["settings"]["act"] and data["n_puzzles"] == 8
    assert data["transforms"] == ["identity", "augment"] and len(data["checkpoints"]) == 2
    for row in data["results"]:  # the table shows the JSON's numbers
        assert f"{row['exact_acc']:.4f}" in out
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == ["accuracy_vs_depth.png", "accuracy_vs_nfe.png", "halting.png", "residuals.png"]
    assert all((tmp_path / "plots" / n).stat().st_size > 1000 for n in names)


@pytest.mark.parametrize("extra, message", [
    (["--depth", "0"], "--depth must be >= 1, but got 0"),
    (["--breadth", "4,0"], "--breadth must be >= 1, but got 0"),
    (["--depth", "a"], "must be an integer or a comma list"),
    (["--select", "halt_first,majorty"], "--select must name a selection rule ("),
    (["--select", "halt_frist"], "did you mean 'halt_first'"),
    (["--transforms", "rot90"], "'rot90' does not apply to sudoku 4x4: it applies to maze only"),
    (["--transforms", "0"], "--transforms must be >= 1"),
    (["--max-batch", "-1"], "--max-batch must be >= 1 (or 0: by device), but got -1"),
    (["--noise-beta", "-1"], "--noise-beta must be >= 0"),
    (["--json", "/nonexistent/dir/x.json"], "its directory does not exist"),
    (["--set", "data.board_size=6", "--depth", "2"], "every checkpoint must be of the puzzles' task and board"),
    (["--limit", "-1", "--depth", "2"], "--limit must be >= 0"),
])
def test_bad_input_is_one_line_exit_2(checkpoints, cli_error, extra, message):
    line = cli_error(main, ["eval", str(checkpoints["plain"]), *extra, "--set", "train.cpu_threads=1"])
    assert message in line, line


def test_a_checkpoint_of_another_board_is_one_line_exit_2(checkpoints, cli_error):
    line = cli_error(main, ["eval", str(checkpoints["plain"]), str(checkpoints["board6"]), "--set", "train.cpu_threads=1"])
    assert "board6" in line and "is a sudoku model (vocabulary 8, 36 cells), but the puzzles are sudoku 4x4" in line


def test_plain_eval_is_still_the_trainers_evaluation(checkpoints, capsys):
    assert run_cli(main, ["eval", str(checkpoints["plain"]), "--limit", "8", "--set", "train.cpu_threads=1"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["eval/n_puzzles"] == 8 and "eval/halted_exact_acc" in metrics


@pytest.mark.parametrize("flag, path, message", [
    ("--plot", "/proc/nope", "--plot /proc/nope: cannot write there"),
    ("--json", "/proc/x.json", "--json /proc/x.json: cannot write there"),
])
def test_an_output_path_that_cannot_be_written_fails_before_the_rollout(checkpoints, flag, path, message):
    """Issue 26 item 5: `--plot /proc/nope` was a traceback after the whole rollout. Now one line, exit 2,
    before it: with a depth of a million steps the rollout alone would run for hours (timeout 120 s)."""
    env = {**os.environ, "PYTHONPATH": ROOT, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "trm_core", "eval", str(checkpoints["plain"]), "--depth", "1000000",
                             flag, path, "--set", "train.cpu_threads=1"], capture_output=True, text=True, timeout=120,
                            env=env, cwd=ROOT)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}") and "Traceback" not in result.stderr, lines


def test_the_plot_folder_probe_leaves_nothing_behind(checkpoints, tmp_path, cli_error):
    """The up-front check creates the --plot folder to probe it and removes what it created, so a run
    refused afterwards (here: a bad --limit) leaves no empty folders."""
    cli_error(main, ["eval", str(checkpoints["plain"]), "--depth", "2", "--plot", str(tmp_path / "a" / "b"),
                     "--json", str(tmp_path / "r.json"), "--limit", "-1"])
    assert list(tmp_path.iterdir()) == []
