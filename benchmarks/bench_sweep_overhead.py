"""Sweep overhead on a real sweep: wall time against the trials' own time at the sweep's concurrency.

    python benchmarks/bench_sweep_overhead.py                                   # the quickstart
    python benchmarks/bench_sweep_overhead.py search_spaces/quickstart.yaml --set search.num_samples=4
    python benchmarks/bench_sweep_overhead.py --repeat 3                        # three sweeps, one table
    python benchmarks/bench_sweep_overhead.py --repeat 3 --ray embedded,started # side by side, interleaved

A sweep (embedded Ray, Optuna, Aim: `sweeper.runner.run_sweep`, the same call as `python -m sweeper
run`) is timed from the call to its return. Per trial, from the sweep's own records
(trial_times.json, results.csv): Tune's start and end of the trial, and the trainer's own
`time/elapsed_s` (its training loop, evaluations and checkpoints; not process start, imports, data
loading or model set-up). Printed, per sweep:

- overhead = wall / (sum of trial times / concurrency) - 1, with trial time measured two ways:
  Tune's start-to-end (what the scheduler sees) and the trainer's own elapsed time (what the
  trial would cost with no platform around it; the issue's "trials' own times");
- start-up (call -> first trial started) and tail (last trial ended -> return);
- trial start latency (median): Tune starting a trial -> the trainer's clock starting (worker,
  imports, dataset, model, first compile), from the first result's arrival minus its elapsed time;
- slot gap (median): a trial ending -> the next trial starting in the freed slot;
- first start: the slowest trial start latency, the first trial in a slot (its worker imports
  torch and Ray Tune);
- end idle: wall seconds (slot-seconds / concurrency) that slots sat idle at the end with no
  trial left to start, i.e. the last trials running alone: the sweep's shape, not the platform;
  `overhead_vs_own_no_end_idle` is the overhead without it.

`--ray embedded,started` alternates the sweep's own Ray (what `python -m sweeper run` starts and
stops) with a Ray started before the sweep (`ray start --head --block`, local, token auth, the
same CPUs), which the sweep joins with `--address`, as each of a series of sweeps on a started
workstation does. Each such sweep gets a fresh `ray start`, not counted in its time and stopped
before the next sweep, so no sweep shares the machine with an idle second Ray.

Not part of the test suite. On a shared machine the figures move with the load: run --repeat 3
and quote the range.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TQDM_DISABLE", "1")


def one_sweep(spec_file: str, sets: list[str], workdir: Path, name: str, address: str | None = None) -> dict:
    from sweeper import resources
    from sweeper.results import read_table
    from sweeper.runner import run_sweep
    from sweeper.spec import load_spec

    spec = load_spec(spec_file, [*sets, f"storage={workdir / 'sweeps'}", f"aim.repo={workdir / 'aim'}", f"name={name}"])
    (spec.storage / spec.name).mkdir(parents=True)
    conc = resources.concurrency(spec, [resources.detect_local()])
    t0 = time.time()
    record = run_sweep(spec, address=address, out=io.StringIO())
    t_end = time.time()
    d = spec.storage / spec.name
    times = json.loads((d / "trial_times.json").read_text())
    table = read_table(d / "results.csv").set_index("trial_id")
    rows = [(tid, t) for tid, t in times.items() if "started_at" in t and "ended_at" in t]
    tune_s = [t["ended_at"] - t["started_at"] for _, t in rows]
    own_s = [float(table.loc[tid, "time/elapsed_s"]) for tid, _ in rows if tid in table.index]
    latency = [t["first_result_at"] - t["first_elapsed_s"] - t["started_at"] for _, t in rows
               if "first_result_at" in t and "first_elapsed_s" in t]
    starts = sorted(t["started_at"] for _, t in rows)
    ends = sorted(t["ended_at"] for _, t in rows)
    gaps = [s - e for s, e in zip(starts[conc:], ends) if s >= e]  # the i-th end frees the slot of the (i+conc)-th start
    wall = t_end - t0
    end_idle = end_idle_s(sorted((t["started_at"], t["ended_at"]) for _, t in rows), conc)
    per_trial = [{"trial": tid, "start": round(t["started_at"] - t0, 1), "tune_s": round(t["ended_at"] - t["started_at"], 1),
                  "own_s": round(float(table.loc[tid, "time/elapsed_s"]), 1) if tid in table.index else None,
                  "latency_s": round(t["first_result_at"] - t["first_elapsed_s"] - t["started_at"], 2)
                  if "first_result_at" in t else None, "status": table.loc[tid, "status"] if tid in table.index else None,
                  "step": int(table.loc[tid, "step"]) if tid in table.index else None} for tid, t in rows]
    return {"per_trial": per_trial, "ray": "started" if address else "embedded",
        "status": record["status"], "trials": len(rows), "concurrency": conc, "wall_s": wall,
        "tune_sum_s": sum(tune_s), "own_sum_s": sum(own_s),
        "overhead_vs_tune": wall / (sum(tune_s) / conc) - 1, "overhead_vs_own": wall / (sum(own_s) / conc) - 1,
        "startup_s": starts[0] - t0, "tail_s": t_end - ends[-1],
        "start_latency_s": statistics.median(latency) if latency else float("nan"),
        "slot_gap_s": statistics.median(gaps) if gaps else float("nan"),
        "first_start_s": max(latency) if latency else float("nan"),
        "end_idle_s": end_idle, "overhead_vs_own_no_end_idle": (wall - end_idle) / (sum(own_s) / conc) - 1,
        "best": (record.get("best") or {}).get("mean"), "phases_s": record.get("phases_s"),
    }


def end_idle_s(trials: list[tuple[float, float]], conc: int) -> float:
    """Seconds of wall time that the sweep's slots sat idle at its end because no trial was left to
    start (slot-seconds / concurrency): the shape of the sweep (its last trial running alone), not
    the platform. Each trial, in start order, takes the slot freed first."""
    slots = [float("-inf")] * conc
    for start, end in trials:
        slots[slots.index(min(slots))] = end
    last = max(slots)
    return sum(last - e for e in slots if e > float("-inf")) / conc


@contextlib.contextmanager
def started_ray(cpus: int, workdir: Path):
    """`ray start --head --block` in its own process group (token auth, a free port, no dashboard);
    yields its address and stops the group however the block ends."""
    import socket

    from sweeper.preflight import check_address
    from trm_core.errors import UserError

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Token auth with the machine's token (~/.ray/auth_token), the one the embedded sweeps use: a
    # driver keeps the first token it loads, so a second token would lock the next sweep out.
    os.environ["RAY_AUTH_MODE"] = "token"
    temp = tempfile.mkdtemp(prefix="rayb", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    log = open(workdir / "ray_start.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
                             f"--port={port}", f"--num-cpus={cpus}",
                             "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"ray start exited with {proc.returncode}: see {workdir / 'ray_start.log'}")
            try:
                check_address(address, timeout_s=1.0)  # the sweeper's own probe of --address
                break
            except UserError:
                if time.time() > deadline:
                    raise RuntimeError("ray start: the head did not listen within 120 s") from None
                time.sleep(0.5)
        time.sleep(3)  # the raylet registers after the GCS listens
        yield address
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", nargs="?", default=str(ROOT / "search_spaces" / "quickstart.yaml"))
    ap.add_argument("--set", dest="sets", nargs="+", action="extend", default=[], metavar="KEY=VALUE")
    ap.add_argument("--repeat", type=int, default=1, help="sweeps to run one after the other")
    ap.add_argument("--per-trial", action="store_true", help="also print each trial's times")
    ap.add_argument("--ray", default="embedded",
                    help="embedded | started | embedded,started (alternated): the sweep's own Ray or one started before")
    args = ap.parse_args()
    modes = args.ray.split(",")
    if not modes or not set(modes) <= {"embedded", "started"}:
        ap.error(f"--ray must be embedded, started or embedded,started; got {args.ray!r}")
    os.environ.setdefault("TRM_DATA_CACHE", str(Path(tempfile.gettempdir()) / "trm_bench_cache"))
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_overhead_") as tmp:
        from sweeper import resources

        for i in range(args.repeat):
            for mode in modes:
                if mode == "embedded":
                    results.append(one_sweep(args.spec, args.sets, Path(tmp), f"bench{i}-{mode}"))
                    continue
                with started_ray(int(resources.detect_local().cpu), Path(tmp)) as address:
                    results.append(one_sweep(args.spec, args.sets, Path(tmp), f"bench{i}-{mode}", address))
    cols = [("ray", "{}"), ("status", "{}"), ("trials", "{}"), ("concurrency", "{}"), ("wall_s", "{:.1f}"), ("tune_sum_s", "{:.1f}"),
            ("own_sum_s", "{:.1f}"), ("overhead_vs_tune", "{:+.1%}"), ("overhead_vs_own", "{:+.1%}"),
            ("startup_s", "{:.1f}"), ("tail_s", "{:.1f}"), ("start_latency_s", "{:.2f}"), ("slot_gap_s", "{:.2f}"),
            ("first_start_s", "{:.2f}"), ("end_idle_s", "{:.1f}"),
            ("overhead_vs_own_no_end_idle", "{:+.1%}"), ("best", "{:.3f}")]
    table = [[k for k, _ in cols]] + [[f.format(r[k]) if r[k] is not None else "-" for k, f in cols] for r in results]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    print(f"spec {args.spec} {' '.join(args.sets)}; load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for row in table:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
    for i, r in enumerate(results):
        print(f"sweep {i} driver phases (s): " + ", ".join(f"{k} {v}" for k, v in (r["phases_s"] or {}).items()))
        if args.per_trial:
            for t in sorted(r["per_trial"], key=lambda t: t["start"]):
                print("   ", t)
    for r in results:
        r.pop("per_trial")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
