"""Run directories through the real `python -m trm_core train` (issue 16 item 2, issue 13 faults 5 and 7):
a directory that holds a run is refused unless resumed or overwritten; `--resume RUN_DIR` takes the
latest readable checkpoint (a corrupt newer one is set aside); SIGINT/SIGTERM save a checkpoint at
the current step; a checkpoint that cannot be written (file size limit, as on a full disk) is one
line, exit 2, and leaves no partial checkpoint."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trm_core.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[3]
TINY = ["data.n_train=100", "data.n_test=16", "model.hidden_size=32", "train.batch_size=8", "train.steps=4",
        "train.eval_interval=2", "train.log_interval=2", "recursion.n_supervision=2", "train.cpu_threads=1",
        "train.eval_max_puzzles=8"]


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}


def run(*args, timeout=180, preexec_fn=None):
    return subprocess.run([sys.executable, "-m", "trm_core", *args], capture_output=True, text=True, timeout=timeout,
                          env=_env(), cwd=ROOT, preexec_fn=preexec_fn)


def one_line_2(proc, *words):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def steps_logged(run_dir: Path) -> list[int]:
    return [json.loads(x)["step"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def snapshot(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "a"
    proc = run("train", "sudoku4_tiny", "--set", *TINY, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def test_a_run_dir_is_refused_then_resumed_or_overwritten(first_run, tmp_path):
    run_dir = tmp_path / "a"
    shutil.copytree(first_run, run_dir)
    before = snapshot(run_dir)
    one_line_2(run("train", "sudoku4_tiny", "--set", *TINY, "--out", str(run_dir)),
               str(run_dir), "already holds a run", f"--resume {run_dir}", "--overwrite")
    assert snapshot(run_dir) == before  # nothing written

    more = run("train", "sudoku4_tiny", "--set", *TINY, "train.steps=6", "--resume", str(run_dir))  # --out: the run
    assert more.returncode == 0, more.stderr
    assert json.loads((run_dir / "final.json").read_text())["step"] == 6
    assert steps_logged(run_dir) == [2, 2, 4, 4, 6, 6]  # a log line and an eval line per step, none repeated
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step_00000004", "step_00000006"]
    ev = run("eval", str(run_dir))  # eval takes the run directory too: its latest checkpoint
    assert ev.returncode == 0 and json.loads(ev.stdout.strip().splitlines()[-1])["step"] == 6, ev.stderr

    again = run("train", "sudoku4_tiny", "--set", *TINY, "train.steps=2", "--out", str(run_dir), "--overwrite")
    assert again.returncode == 0, again.stderr
    assert steps_logged(run_dir) == [2, 2]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step_00000002"]


def test_out_that_is_a_file_unwritable_or_foreign_is_one_line(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("mine\n")
    one_line_2(run("train", "sudoku4_tiny", "--set", *TINY, "--out", str(f)), str(f), "is a file")
    one_line_2(run("train", "sudoku4_tiny", "--set", *TINY, "--out", "/proc/x"), "/proc/x")
    one_line_2(run("train", "sudoku4_tiny", "--set", *TINY, "--out", str(tmp_path), "--overwrite"),
               "not a trm_core run", "notes.txt")
    one_line_2(run("train", "sudoku4_tiny", "--set", *TINY), "--out")
    assert f.read_text() == "mine\n" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(first_run, tmp_path):
    run_dir = tmp_path / "a"
    shutil.copytree(first_run, run_dir)
    latest = run_dir / "checkpoints" / "step_00000004" / "checkpoint.pt"
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])  # truncated, as by a crash mid-copy
    one_line_2(run("eval", str(latest)), str(latest), "cannot be read")
    proc = run("train", "sudoku4_tiny", "--set", *TINY, "train.steps=6", "--resume", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    assert f"warning: skipping checkpoint {latest} cannot be read" in proc.stderr
    assert json.loads((run_dir / "final.json").read_text())["step"] == 6
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == ["corrupt_step_00000004", "step_00000004", "step_00000006"], names
    assert load_checkpoint(run_dir / "checkpoints" / "step_00000006")["step"] == 6
    assert steps_logged(run_dir) == [2, 2, 4, 4, 6, 6]  # the lines logged after step 2 went with the corrupt checkpoint


def _limit_file_size(max_bytes: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as ENOSPC would
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))
    return apply


def test_checkpoint_that_cannot_be_written_leaves_no_partial_files(first_run, tmp_path):
    run_dir = tmp_path / "a"
    shutil.copytree(first_run, run_dir)
    size = (run_dir / "checkpoints" / "step_00000004" / "checkpoint.pt").stat().st_size
    before = {p: p.read_bytes() for p in (run_dir / "checkpoints").rglob("*.pt")}
    proc = run("train", "sudoku4_tiny", "--set", *TINY, "train.steps=6", "--resume", str(run_dir),
               preexec_fn=_limit_file_size(size // 2))
    line = one_line_2(proc, "cannot write checkpoint", str(run_dir / "checkpoints" / "step_00000006"), "previous checkpoints are kept")
    assert "File too large" in line
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step_00000002", "step_00000004"]
    assert {p: p.read_bytes() for p in (run_dir / "checkpoints").rglob("*.pt")} == before
    assert json.loads((run_dir / "final.json").read_text())["step"] == 4  # the old final.json, whole


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_saves_a_checkpoint_at_the_current_step(tmp_path, sig):
    run_dir = tmp_path / "r"
    long = [*TINY, "train.steps=100000", "train.eval_interval=100000", "train.log_interval=1"]
    proc = subprocess.Popen([sys.executable, "-m", "trm_core", "train", "sudoku4_tiny", "--set", *long, "--out", str(run_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if (run_dir / "metrics.jsonl").exists() and len((run_dir / "metrics.jsonl").read_text().splitlines()) >= 3:
                break
            time.sleep(0.1)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert f"stopped by {signal.Signals(sig).name} at step" in err and "Traceback" not in err, err
    (ckpt,) = (run_dir / "checkpoints").iterdir()  # no periodic checkpoint was due: this one is from the signal
    step = load_checkpoint(ckpt)["step"]
    assert step >= 3 and ckpt.name == f"step_{step:08d}"
    if sig == signal.SIGTERM:
        more = run("train", "sudoku4_tiny", "--set", *TINY, f"train.steps={step + 2}", "--resume", str(run_dir))
        assert more.returncode == 0, more.stderr
        assert json.loads((run_dir / "final.json").read_text())["step"] == step + 2
        logged = steps_logged(run_dir)
        assert logged == sorted(logged) and logged[-1] == step + 2


# ---- issue 26: finished runs, mismatched resumes, missing data, progress in a log, background SIGINT ----


def test_resume_of_a_finished_run_says_so_and_changes_nothing(first_run, tmp_path):
    """Item 4: it appended a second final evaluation to metrics.jsonl; now nothing is written, in
    place or into a new --out."""
    run_dir = tmp_path / "a"
    shutil.copytree(first_run, run_dir)
    before = snapshot(run_dir)
    for extra in ([], ["--out", str(tmp_path / "branch")]):
        proc = run("train", "sudoku4_tiny", "--set", *TINY, "--resume", str(run_dir), *extra)
        assert proc.returncode == 0, proc.stderr
        assert f"nothing to train: {run_dir} already finished at step 4 (train.steps=4)" in proc.stderr, proc.stderr
        assert json.loads(proc.stdout.strip().splitlines()[-1])["step"] == 4
    budget = run("train", "sudoku4_tiny", "--set", *TINY, "train.steps=6", "train.time_budget_s=0.001", "--resume", str(run_dir))
    assert budget.returncode == 0 and "its time budget (train.time_budget_s=0.001) is spent" in budget.stderr, budget.stderr
    assert snapshot(run_dir) == before and not (tmp_path / "branch").exists()
    more = run("train", "sudoku4_tiny", "--set", *TINY, "train.steps=6", "--resume", str(run_dir))  # raised: it trains
    assert more.returncode == 0 and steps_logged(run_dir)[-1] == 6, more.stderr


def test_a_resume_that_does_not_fit_leaves_no_out_directory(first_run, tmp_path):
    """Item 5: a checkpoint of another model shape is one line, exit 2, and the new --out is not left behind."""
    out = tmp_path / "new"
    one_line_2(run("train", "sudoku4_tiny", "--set", *TINY, "model.hidden_size=64", "train.steps=6",
                   "--resume", str(first_run), "--out", str(out)), "checkpoint")
    assert not out.exists()


def test_missing_data_names_the_complete_build_command(tmp_path):
    one_line_2(run("train", "sudoku4_tiny", "--set", *TINY, f"data.path={tmp_path}/d4", "--out", str(tmp_path / "r")),
               f"data.path={tmp_path}/d4 does not exist; build it with: python -m trm_core data build sudoku --size 4"
               f" --train 100 --test 16 --seed 0 --out {tmp_path}/d4")
    assert not (tmp_path / "r").exists()


def test_a_log_file_gets_a_progress_line_at_the_interval(tmp_path):
    """Item 6: without a terminal the bar is off; `--progress-every` lines report the logged step."""
    log = tmp_path / "train.log"
    with open(log, "w") as f:  # a file, as `... > train.log 2>&1`
        proc = subprocess.run([sys.executable, "-m", "trm_core", "train", "sudoku4_tiny", "--set", *TINY,
                               "train.steps=400", "train.eval_interval=400", "train.log_interval=10",
                               "--out", str(tmp_path / "r"), "--progress-every", "0.3"],
                              stdout=f, stderr=subprocess.STDOUT, env=_env(), cwd=ROOT, timeout=300)
    text = log.read_text()
    assert proc.returncode == 0, text
    steps = [int(m) for m in re.findall(r"^progress: step (\d+)/400 \(\d+%\), loss [0-9.]+", text, re.M)]
    assert len(steps) >= 2 and steps == sorted(steps) and steps[-1] > steps[0], text
    assert re.search(r"^progress: step \d+/400 .*, ~\d+ s left$", text, re.M), text
    quiet = subprocess.run([sys.executable, "-m", "trm_core", "train", "sudoku4_tiny", "--set", *TINY,
                            "--out", str(tmp_path / "q"), "--progress-every", "0"], capture_output=True, text=True,
                           env=_env(), cwd=ROOT, timeout=300)
    assert quiet.returncode == 0 and "progress:" not in quiet.stderr


def _status_bit(pid: int, field: str, sig: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    raise AssertionError(field)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads signal masks from /proc (Linux)")
def test_sigint_to_a_background_train_of_a_script_is_not_ignored(tmp_path):
    """Item 10. A shell without job control starts `cmd &` with SIGINT ignored, and Python keeps that:
    `train` ignored SIGINT until its stop handler was installed, about a second after torch was
    loaded (more on a loaded machine), so a SIGINT in that window was lost and the run trained to the
    end with exit 0. Now SIGINT is honoured from the start: one sent as soon as torch is loaded stops
    the run (exit 130)."""
    premise = subprocess.run(["sh", "-c", "grep SigIgn /proc/self/status & wait"], capture_output=True, text=True)
    assert int(premise.stdout.split()[1], 16) >> (signal.SIGINT - 1) & 1  # the shell ignores SIGINT for `cmd &`
    cmd = " ".join([sys.executable, "-m", "trm_core", "train", "sudoku4_tiny", "--set", *TINY, "train.steps=3000",
                    "--out", str(tmp_path / "r")])
    shell = subprocess.Popen(["sh", "-c", f"{cmd} > {tmp_path}/log 2>&1 & echo $!; wait $!; echo rc=$?"],
                             stdout=subprocess.PIPE, text=True, env=_env(), cwd=ROOT, start_new_session=True)
    try:
        pid = int(shell.stdout.readline())
        deadline = time.time() + 60
        while "libtorch" not in Path(f"/proc/{pid}/maps").read_text():  # before: SIGINT still ignored here
            assert time.time() < deadline, (tmp_path / "log").read_text()
            time.sleep(0.005)
        assert not _status_bit(pid, "SigIgn", signal.SIGINT)
        os.kill(pid, signal.SIGINT)
        out, _ = shell.communicate(timeout=120)
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
    assert out.strip().endswith("rc=130"), (out, (tmp_path / "log").read_text())
    assert not (tmp_path / "r" / "final.json").exists()
