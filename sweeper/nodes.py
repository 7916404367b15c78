"""`python -m sweeper preempt-node [--node-id ID] [--grace S]`: stop a node's trials with their steps saved.

Ray's own node shutdown gives a trial nothing to save with: a raylet that gets SIGTERM (from `ray
stop`, from `ray start --block` stopping, from a Kubernetes pod's termination) sends its workers
SIGTERM and SIGKILL in the same millisecond (raylet.out: `Stop: sending SIGTERM to pgid=...` then
`sending SIGKILL`, Ray 2.60). So a preempted node's trials must get their SIGTERM before the raylet
does, as Kubernetes' preStop hook and a spot-termination handler allow. This command does that, on
the node that goes away:

1. it asks the cluster to drain the node (`ray drain-node`, reason PREEMPTION, deadline = now + the
   grace): Ray schedules nothing new there, so Tune retries the trials on other nodes;
2. it sends SIGTERM to the node's trial workers (the raylet's `ray::` children that are not idle):
   each finishes its step, writes a checkpoint there and reports it to Tune (sweeper.run.preempt);
3. it waits for them to exit, at most `--grace` seconds, and prints what each did.

Then stop the node as usual: `ray stop`, or let Kubernetes send the pod its SIGTERM (clusters/
kuberay-rayjob.yaml runs this as the worker pods' preStop hook). The grace must cover a trial's
`time/stop_grace_s` (results.csv: one step, one evaluation and one checkpoint write, as measured).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from trm_core.errors import UserError

DEFAULT_GRACE_S = 25.0
"""Kubernetes gives a pod 30 s by default (terminationGracePeriodSeconds); Ray's stop needs the rest."""


def add_node_commands(sub) -> None:
    p = sub.add_parser("preempt-node", help="SIGTERM this node's trials so each saves its step, then wait for them"
                                            " (run before stopping a node: a preStop hook, a spot notice)")
    p.add_argument("--node-id", help="the Ray node (hex id) on this machine; default: the only one here")
    p.add_argument("--grace", type=float, default=DEFAULT_GRACE_S, metavar="S",
                   help=f"seconds to wait for the trials to save and exit (default {DEFAULT_GRACE_S:g})")


def raylets() -> dict[str, tuple[int, str]]:
    """node id -> (raylet pid, GCS address) of the raylets running on this machine under this user."""
    found: dict[str, tuple[int, str]] = {}
    for proc in psutil.process_iter(["pid", "cmdline", "uids"]):
        cmd = proc.info.get("cmdline") or []
        if not cmd or not cmd[0].endswith("/raylet") or (proc.info["uids"] and proc.info["uids"].real != os.getuid()):
            continue
        args = dict(a[2:].split("=", 1) for a in cmd[1:] if a.startswith("--") and "=" in a)
        if args.get("node_id"):
            found[args["node_id"]] = (proc.info["pid"], args.get("gcs-address") or args.get("gcs_address") or "")
    return found


def pick_node(node_id: str | None) -> tuple[str, int, str]:
    here = raylets()
    if node_id is not None:
        if node_id not in here:
            raise UserError(f"--node-id must be a Ray node running on this machine ({', '.join(here) or 'none'}),"
                            f" but got {node_id!r}")
        return node_id, *here[node_id]
    if len(here) != 1:
        raise UserError(f"preempt-node needs the Ray node to stop: {len(here)} run on this machine"
                        + (f" ({', '.join(here)}): give --node-id" if here else " (start one with `ray start`)"))
    (nid, (pid, gcs)), = here.items()
    return nid, pid, gcs


RAY_SERVICES = ("ray::IDLE", "ray::DashboardAgent", "ray::RuntimeEnvAgent", "ray::JobSupervisor")
"""Process titles of the raylet's children that are not trials: an idle worker, and Ray's own services
(a raylet fate-shares with its agents: a SIGTERM to one ends the node at once, trials unsaved)."""


def trial_workers(raylet_pid: int) -> list:
    """The raylet's worker processes that hold a task or an actor (title `ray::NAME`), not Ray's services."""
    workers = []
    for child in psutil.Process(raylet_pid).children(recursive=True):
        try:
            title = (child.cmdline() or [""])[0]
        except psutil.Error:
            continue
        if title.startswith("ray::") and not title.startswith(RAY_SERVICES):
            workers.append(child)
    return workers


def drain(node_id: str, gcs: str, grace_s: float) -> str:
    """Ask GCS to drain the node for preemption (Ray's own CLI); returns a problem, or '' when accepted."""
    ray_cli = str(Path(sys.executable).parent / "ray")
    cmd = [ray_cli, "drain-node", "--node-id", node_id, "--reason", "DRAIN_NODE_REASON_PREEMPTION",
           "--reason-message", "sweeper preempt-node", "--deadline-remaining-seconds", str(int(grace_s) + 1)]
    if gcs:
        cmd += ["--address", gcs]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    lines = [line for line in (r.stderr + r.stdout).splitlines() if line.strip()]
    return "" if r.returncode == 0 else (lines[-1] if lines else f"exit code {r.returncode}")


def cmd_preempt_node(args) -> int:
    if not args.grace > 0:
        raise UserError(f"--grace must be a number of seconds > 0, but got {args.grace:g}")
    node_id, raylet_pid, gcs = pick_node(args.node_id)
    problem = drain(node_id, gcs, args.grace)
    print(f"node {node_id[:12]}: " + (f"drain refused ({problem}); retries may land on it" if problem else
                                      "draining (no new trials start here)"))
    workers = trial_workers(raylet_pid)
    t0 = time.monotonic()
    for w in workers:
        try:
            w.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    print(f"SIGTERM to {len(workers)} trial worker(s): {', '.join(str(w.pid) for w in workers) or 'none'};"
          f" waiting up to {args.grace:g} s for their checkpoints")
    exited: dict[int, float] = {}
    _, alive = psutil.wait_procs(workers, timeout=args.grace,
                                 callback=lambda w: exited.setdefault(w.pid, time.monotonic() - t0))
    for pid, after in sorted(exited.items(), key=lambda kv: kv[1]):
        print(f"  pid {pid}: exited after {after:.1f} s")
    for w in alive:
        print(f"  pid {w.pid}: still running after {args.grace:g} s (it resumes from its last checkpoint)")
    print("now stop the node (`ray stop`, or the pod's SIGTERM)")
    return 0 if not alive else 1


COMMANDS = {"preempt-node": cmd_preempt_node}
