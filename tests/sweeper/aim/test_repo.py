"""The Aim repo on a real repo: several processes indexing at once (under index_lock), a phase's end
indexing only its own runs, and a run closed after its repo refused a write."""

from __future__ import annotations

import aim
import pytest

from sweeper.aim.repo import query_runs, reindex

_WRITE_RUNS = """
import sys
import aim
repo = sys.argv[1]
for i in range(9):
    run = aim.Run(repo=repo, experiment="x", system_tracking_interval=None, capture_terminal_logs=False)
    run["sweep"] = {"name": f"s{i % 3}", "trial_id": str(i)}
    run.track(1.0, name="exact_acc", step=0, context={"subset": "eval"})
    run.close()
"""

_REINDEX = "import sys\nfrom sweeper.aim.repo import reindex\nfor _ in range(2):\n    reindex(sys.argv[1])\n"


def test_sweeps_that_index_one_repo_at_once_leave_every_run_listed(tmp_path):
    """Three sweeps that end together each rebuild the shared repo's index (three processes, real Aim).
    Without sweeper.aim.repo.index_lock one of them failed on RocksDB's lock, another hung, and the
    index could lose runs, which queries and the UI then do not list (CI, three sweeps of one spec)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from sweeper.aim.repo import ensure_repo

    repo = ensure_repo(tmp_path / "aim")
    root = str(Path(__file__).resolve().parents[3])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
    subprocess.run([sys.executable, "-c", _WRITE_RUNS, str(repo)], env=env, check=True, timeout=300)
    procs = [subprocess.Popen([sys.executable, "-c", _REINDEX, str(repo)], env=env, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    try:
        errors = [p.communicate(timeout=300)[1] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    assert [len(query_runs(repo, f"s{i}")) for i in range(3)] == [3, 3, 3]


def test_reindex_of_given_runs_adds_them_and_keeps_the_rest(tmp_path):
    """A sweep's end indexes its own runs only: they become visible, runs indexed before stay, and
    a run nobody indexed is not listed yet (so the test sees which runs each call indexed)."""
    import aim

    from sweeper.aim.repo import ensure_repo

    repo = ensure_repo(tmp_path / "aim")

    def write(name: str) -> str:
        run = aim.Run(repo=str(repo), experiment="x", system_tracking_interval=None, capture_terminal_logs=False)
        run["sweep"] = {"name": name, "trial_id": "0"}
        run.close()
        return run.hash

    first = write("a")
    reindex(repo, [first])
    second, third = write("b"), write("c")
    reindex(repo, [second, "0" * 24])  # a hash with no run (e.g. a deleted one) is skipped
    assert [len(query_runs(repo, name)) for name in "abc"] == [1, 1, 0]
    reindex(repo)  # the full rebuild lists every run
    assert [len(query_runs(repo, name)) for name in "abc"] == [1, 1, 1]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # Aim's thread dies: the point
def test_a_run_whose_repo_refused_a_write_still_closes(tmp_path):
    """Aim 3.29: once the repo refuses a write, the run's status-reporter thread dies and run.close()
    waits for it forever. close_run drops such a reporter and still closes the run: its end time is
    written and its lock released (the repo is writable again by then, as after an outage)."""
    import shutil
    import time

    from sweeper.aim.runs import close_run

    repo = tmp_path / "aim"
    run = aim.Run(repo=str(repo), experiment="x", system_tracking_interval=None, capture_terminal_logs=False)
    run.track(1.0, name="loss", step=1)
    check_ins = repo / ".aim" / "check_ins"
    shutil.rmtree(check_ins)
    check_ins.write_text("")  # the reporter's next write fails (NotADirectoryError), as on a read-only repo
    run._checkins._check_in(expect_next_in=1, flush=True)
    deadline = time.time() + 30
    while run._resources._checkins.thread.is_alive() and time.time() < deadline:
        time.sleep(0.1)
    assert not run._resources._checkins.thread.is_alive()  # the failure Aim's thread cannot survive
    check_ins.unlink()
    check_ins.mkdir()
    t0 = time.time()
    close_run(run, timeout_s=20)
    assert time.time() - t0 < 20
    reindex(repo, [run.hash])
    assert aim.Run(run_hash=run.hash, repo=str(repo), read_only=True).end_time is not None
    aim.Run(run_hash=run.hash, repo=str(repo)).close()  # its lock was released: it opens for writing
