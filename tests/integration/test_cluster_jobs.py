"""`python -m sweeper submit` on a real two-node Ray cluster on loopback (clusters/README.md).

The module starts `ray start --head --block` and a second node joined with `ray start --address
--block`, both on 127.0.0.1, each with the CPUs and the custom resource clusters/local-2node.yaml
gives it, token authentication on with a token made for the test (RAY_AUTH_TOKEN), every port
chosen free. Each `ray start --block` runs in its own process group, which the fixture kills (TERM,
then KILL) even when a test fails. The sweep: search_spaces/quickstart.yaml shrunk with --set to 2
trials of 200 steps, submitted from a working directory holding only the spec, so relative storage
and aim.repo must reach the job as absolute paths under that directory. One trial starts on each
node; the second node is preempted after its trial's first checkpoint (`sweeper preempt-node`: the
trial gets SIGTERM and saves the step it reached; then the node's processes get SIGTERM), and that
trial must finish on the head from that step.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests
import yaml

from sweeper.aim.repo import query_runs
from sweeper.run.table import read_table

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
LAYOUT = yaml.safe_load((ROOT / "clusters" / "local-2node.yaml").read_text())  # nodes, resources, host
RAY = str(Path(sys.executable).parent / "ray")
# 200 steps (about 15 s of training here): long enough that the second node's worker is up before the
# head's trial ends, else Tune reuses the head's actor for both trials.
STEPS = 200
SHRINK = ["search.num_samples=2", f"train.steps={STEPS}", "train.eval_interval=10", "train.log_interval=10",
          "scheduler=none", "data.n_train=64", "data.n_test=32", "optim.warmup_steps=2",
          "train.cpu_threads=1", "time_budget_s=300"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_ports() -> list[str]:
    """Every port a node opens, chosen free, so two nodes on one machine (and other Rays) never clash."""
    names = ("--node-manager-port", "--object-manager-port", "--dashboard-agent-grpc-port",
             "--dashboard-agent-listen-port", "--metrics-export-port", "--runtime-env-agent-port")
    return [f"{name}={free_port()}" for name in names]


def stop_group(proc: subprocess.Popen) -> None:
    """TERM the process group of a `ray start --block`, KILL it if it lingers."""
    if proc.poll() is None or _group_alive(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.time() + 15
        while time.time() < deadline and _group_alive(proc.pid):
            time.sleep(0.3)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def wait_for(what: str, check, timeout_s: float, procs) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{what}: `ray start` exited with {p.returncode}")
        with contextlib.suppress(requests.RequestException):
            if check():
                return
        time.sleep(0.5)
    raise TimeoutError(f"{what}: not ready after {timeout_s:.0f}s")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    token = secrets.token_hex(16)
    # One temp dir per node (short: Ray's socket paths must fit 107 bytes). Shared, the nodes would share
    # runtime_resources/, and the second node unpacking the job's working_dir would replace the driver's cwd.
    temps = [tempfile.mkdtemp(prefix="rayc", dir="/tmp") for _ in range(2)]
    logs = tmp_path_factory.mktemp("cluster_logs")
    env = dict(os.environ, RAY_AUTH_MODE=LAYOUT["auth_mode"], RAY_AUTH_TOKEN=token, RAY_USAGE_STATS_ENABLED="0",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
               PATH=os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", ""))))
    gcs, dash = free_port(), free_port()
    url = f"http://127.0.0.1:{dash}"
    headers = {"Authorization": f"Bearer {token}"}
    procs: list[subprocess.Popen] = []

    def start(name: str, args: list[str]) -> None:
        node = LAYOUT["nodes"][name]
        out = open(logs / f"{name}.log", "w")
        procs.append(subprocess.Popen([RAY, "start", "--block", f"--node-ip-address={LAYOUT['host']}",
                                       f"--num-cpus={node['num_cpus']}", f"--num-gpus={node['num_gpus']}",
                                       f"--resources={json.dumps(node['resources'])}", "--disable-usage-stats",
                                       *node_ports(), *args],
                                      env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))

    def alive_nodes() -> list[dict]:
        r = requests.get(f"{url}/api/v0/nodes?limit=100", headers=headers, timeout=5)
        return [n for n in r.json()["data"]["result"]["result"] if n["state"] == "ALIVE"] if r.ok else []

    t0 = time.time()
    try:
        start("head", ["--head", f"--port={gcs}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
                       f"--ray-client-server-port={free_port()}", f"--temp-dir={temps[0]}"])
        wait_for("head node", lambda: len(alive_nodes()) == 1, 90, procs)
        start("worker", [f"--address=127.0.0.1:{gcs}", f"--temp-dir={temps[1]}"])
        wait_for("second node", lambda: len(alive_nodes()) == 2, 90, procs)
        nodes = alive_nodes()
        yield {"url": url, "token": token, "env": env, "headers": headers, "logs": logs, "start_s": time.time() - t0,
               "nodes": {n["node_id"]: n for n in nodes}, "worker_proc": procs[1],
               "worker_node": next(n["node_id"] for n in nodes if not n["is_head_node"])}
    finally:
        for p in reversed(procs):  # the worker node first
            stop_group(p)
        for temp in temps:
            shutil.rmtree(temp, ignore_errors=True)


def sweeper(args: list[str], cwd: Path, env: dict, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sweeper", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def node_of_pids(cluster) -> dict[int, str]:
    """pid -> node id of the cluster's worker processes (Ray's state API)."""
    r = requests.get(f"{cluster['url']}/api/v0/workers?limit=1000&detail=1", headers=cluster["headers"], timeout=10)
    return {w["pid"]: w["node_id"] for w in r.json()["data"]["result"]["result"] if w.get("pid")}


def preempt_and_stop(cluster) -> subprocess.CompletedProcess:
    """Stop the second node as a preempted one is stopped: `sweeper preempt-node` (its trials get SIGTERM
    and save the step they reached), then the node's own processes get SIGTERM (the pod's termination)."""
    r = subprocess.run([sys.executable, "-m", "sweeper", "preempt-node", "--node-id", cluster["worker_node"],
                        "--grace", "60"], env=cluster["env"], capture_output=True, text=True, timeout=120)
    stop_group(cluster["worker_proc"])
    return r


def stop_second_node_after_a_checkpoint(cluster, sweep: Path, submit: subprocess.Popen) -> dict:
    """Once the trial on the second node has reported step >= 10 (a checkpoint), preempt and stop that node."""
    deadline = time.time() + 300
    while time.time() < deadline and submit.poll() is None:
        try:
            times = json.loads((sweep / "trial_times.json").read_text())
        except (OSError, ValueError):
            times = {}
        for tid, t in times.items():
            if 10 <= (t.get("last_step") or 0) < STEPS and t.get("pid"):
                with contextlib.suppress(requests.RequestException, KeyError, ValueError):
                    if node_of_pids(cluster).get(t["pid"]) == cluster["worker_node"]:
                        return {"trial": tid, "pid": t["pid"], "step": t["last_step"], "preempt": preempt_and_stop(cluster)}
        time.sleep(0.2)
    return {}


@pytest.fixture(scope="module")
def submitted(cluster, tmp_path_factory):
    """The sweep's 2 trials start one per node; the second node is stopped once its trial has a
    checkpoint, and Tune retries that trial on the head (failure.max_retries: 1 in quickstart.yaml)."""
    work = tmp_path_factory.mktemp("work")
    shutil.copy(ROOT / "search_spaces" / "quickstart.yaml", work / "quickstart.yaml")
    sweep = work / "runs" / "sweeps" / "quickstart"
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "sweeper", "submit", "quickstart.yaml", "--address", cluster["url"],
                             "--set", *SHRINK], cwd=work, env=cluster["env"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        killed = stop_second_node_after_a_checkpoint(cluster, sweep, proc)
        out, err = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            stop_group(proc)
    r = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return {"work": work, "r": r, "wall_s": time.time() - t0, "sweep": sweep, "killed": killed}


def test_job_succeeds_with_absolute_paths(cluster, submitted):
    r = submitted["r"]
    assert r.returncode == 0, f"stdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-3000:]}"
    assert "job raysubmit_" in r.stdout and "SUCCEEDED" in r.stdout
    assert cluster["token"] not in r.stdout + r.stderr
    work = submitted["work"]
    assert f"storage={work}/runs/sweeps" in r.stdout and f"aim.repo={work}/runs/aim" in r.stdout
    record = json.loads((submitted["sweep"] / "sweep.json").read_text())
    assert record["status"] == "finished" and record["total_trials"] == 2 and record["address"] == "auto"
    print(f"cluster start {cluster['start_s']:.1f}s, submit to end {submitted['wall_s']:.1f}s")


def test_trials_ran_on_both_nodes_and_the_stopped_one_moved(cluster, submitted):
    """The trial on the stopped node (seen there by Ray's state API while it ran) went on on the head
    from its checkpoint: a new worker whose first report is past step 10, no step reported twice."""
    killed = submitted["killed"]
    assert killed, ("no trial reached a checkpoint on the second node before the sweep ended: "
                    + (submitted["sweep"] / "trial_times.json").read_text())
    head_pids = {pid for pid, node in node_of_pids(cluster).items() if node != cluster["worker_node"]}
    tune_dir = submitted["sweep"] / "tune"
    rows = {d.name.removeprefix("trial_"): [json.loads(line) for line in (d / "result.json").read_text().splitlines()]
            for d in tune_dir.glob("trial_*")}
    assert len(rows) == 2
    other = next(tid for tid in rows if tid != killed["trial"])
    assert {r["pid"] for r in rows[other]} <= head_pids  # the other trial ran on the head
    moved = rows[killed["trial"]]
    steps = [r["step"] for r in moved]
    assert steps == sorted(set(steps)) and steps[-1] == STEPS, steps
    new_worker = [r for r in moved if r["pid"] != killed["pid"]]
    assert new_worker and {r["pid"] for r in new_worker} <= head_pids, moved
    assert new_worker[0]["iterations_since_restore"] == 1 and new_worker[0]["step"] > 10, moved
    # SIGTERM (preempt-node) reached the trial between two evaluations: it saved the step it was on,
    # and the head went on from that step, not from its last evaluation's checkpoint.
    preempt = killed["preempt"]
    assert preempt.returncode == 0 and f"pid {killed['pid']}: exited after" in preempt.stdout, preempt.stdout + preempt.stderr
    print(preempt.stdout)  # what each worker did, and how long it took (pytest -s)
    reached = max(r["step"] for r in moved if r["pid"] == killed["pid"])  # its preempted result, or an evaluation's
    # >=: a SIGTERM that lands between an evaluation's report and the next step stops the trainer at that
    # evaluation, whose checkpoint Tune has (no preempted row), as in test_sigterm_to_a_worker_saves_the_step_it_reached
    assert reached >= killed["step"] and all(r["trial/preempted"] == "SIGTERM" for r in moved if r.get("trial/preempted")
                                            ), moved
    assert {r["trial/resumed_at_step"] for r in new_worker} == {reached}, [
        (r["step"], r["pid"], r.get("trial/preempted"), r.get("trial/resumed_at_step")) for r in moved]
    table = read_table(submitted["sweep"] / "results.csv").set_index("trial_id")
    assert table.loc[killed["trial"], "retries"] == 1 and table.loc[killed["trial"], "step"] == STEPS


def test_results_and_aim_runs_complete(submitted):
    df = read_table(submitted["sweep"] / "results.csv")
    assert len(df) == 2 and set(df["status"]) == {"done"}, df.to_dict("records")
    runs = query_runs(submitted["work"] / "runs" / "aim", "quickstart")
    assert len(runs) == 2
    assert all(("exact_acc", "eval") in run["metrics"] for run in runs)


def test_jobs_lists_and_stop_refuses_unknown(cluster, submitted):
    r = sweeper(["jobs", "--address", cluster["url"]], submitted["work"], cluster["env"], 60)
    assert r.returncode == 0 and "SUCCEEDED" in r.stdout and "sweeper run quickstart.yaml" in r.stdout
    r = sweeper(["stop", "raysubmit_nope", "--address", cluster["url"]], submitted["work"], cluster["env"], 60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no job 'raysubmit_nope'" in r.stderr


@pytest.mark.parametrize("token", ["wrong", None])
def test_bad_token_is_one_line(cluster, submitted, token):
    env = {k: v for k, v in cluster["env"].items() if k not in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    env["HOME"] = str(submitted["work"])  # no ~/.ray/auth_token either
    if token:
        env["RAY_AUTH_TOKEN"] = token
    else:
        env.pop("RAY_AUTH_MODE")
    r = sweeper(["submit", "quickstart.yaml", "--address", cluster["url"]], submitted["work"], env, 60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert ("refused the token" if token else "requires a token") in r.stderr
    assert cluster["token"] not in r.stdout + r.stderr


def test_unwritable_storage_is_one_line(cluster, submitted):
    """The job's own preflight refuses a storage path the head cannot write; submit exits 2 with its line."""
    blocker = submitted["work"] / "a_file"
    blocker.write_text("")
    r = sweeper(["submit", "quickstart.yaml", "--address", cluster["url"], "--set", *SHRINK,
                 f"storage={blocker}/sweeps"], submitted["work"], cluster["env"], 120)
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    assert r.stderr.startswith("error: storage:") and r.stderr.count("\n") == 1, r.stderr


def test_stop_interrupts_the_sweep_cleanly(cluster, submitted):
    """`sweeper stop JOB`: Ray sends SIGTERM to the sweep, which stops its trials and records
    `interrupted` (resumable) before Ray's SIGKILL (RAY_JOB_STOP_WAIT_TIME_S, set by submit)."""
    import re

    work = submitted["work"]
    r = sweeper(["submit", "quickstart.yaml", "--address", cluster["url"], "--no-wait", "--name", "stopme", "--set",
                 *SHRINK, "train.steps=2000"], work, cluster["env"], 60)
    assert r.returncode == 0, r.stderr
    job = re.search(r"job (raysubmit_\w+) submitted", r.stdout).group(1)
    times_file = work / "runs" / "sweeps" / "stopme" / "trial_times.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        with contextlib.suppress(OSError, ValueError):
            if any((t.get("last_step") or 0) >= 10 for t in json.loads(times_file.read_text()).values()):
                break
        time.sleep(0.3)
    else:
        raise AssertionError("no trial reported a step within 120 s")
    r = sweeper(["stop", job, "--address", cluster["url"]], work, cluster["env"], 60)
    assert r.returncode == 0 and "stop requested" in r.stdout, r.stderr
    deadline = time.time() + 90
    while time.time() < deadline:
        status = requests.get(f"{cluster['url']}/api/jobs/{job}", headers=cluster["headers"], timeout=10).json()["status"]
        if status in ("STOPPED", "FAILED", "SUCCEEDED"):
            break
        time.sleep(0.5)
    assert status == "STOPPED"
    record = json.loads((work / "runs" / "sweeps" / "stopme" / "sweep.json").read_text())
    assert record["status"] == "interrupted", record
