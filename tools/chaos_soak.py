"""A chaos soak: a real sweep of >= 16 trials under a seeded schedule of faults, then a check that
nothing was lost (docs/RELIABILITY.md, "Chaos soak").

    python tools/chaos_soak.py [--configs 8] [--seeds 2] [--steps 300] [--faults 8] [--window-s 240]
                               [--seed 0] [--out runs/soak]

The sweep runs through the real command line (`python -m sweeper run`, embedded Ray, real Optuna and
Aim). At moments drawn from --seed over the first --window-s seconds, one fault each:

  sigkill_worker  SIGKILL a running trial's worker (Tune retries it from its last checkpoint)
  sigterm_worker  SIGTERM a running trial's worker (it saves the step it reached: sweeper/run/preempt.py)
  kill_driver     SIGKILL the sweep's driver, then `python -m sweeper resume NAME`
  aim_readonly    the Aim repo refuses writes for --outage-s (a read-only bind mount as root, else chmod)
  disk_full       the results directory's file system (a tmpfs of --storage-mb, when this user may
                  mount one) is filled for --outage-s

When the driver ends for any reason but a finished sweep, it is resumed (a user's `sweeper resume`);
at the end `sweeper aim-sync` (what the Aim warning tells the user to run) and `sweeper report`.
Checks: every configuration x seed done exactly once; each results.csv row links an Aim run that
exists; Optuna's study holds one COMPLETE trial per configuration; no checkpoint is partial (no
temp directory left, every checkpoint loads); `sweeper report` exits 0. Prints the seed, the fault
schedule, what each fault hit, and one line per check; exit code 0 when every check holds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
GAP_S = 8.0
"""Seconds between two faults at least (a fault that waited for a target must not land with the next)."""
FAULTS = ("sigkill_worker", "sigterm_worker", "kill_driver", "aim_readonly", "disk_full")


def spec(out: Path, storage: Path, configs: int, seeds: int, steps: int) -> Path:
    """A tiny sweep: `configs` random configurations x `seeds` seeds, two trials at a time, retries enough
    for every fault the schedule can throw at one trial."""
    raw = {
        "name": "soak", "metric": "eval/exact_acc", "mode": "max", "seeds": list(range(seeds)),
        "base": {"preset": "sudoku4_tiny", "overrides": {
            "train.steps": steps, "train.eval_interval": max(steps // 6, 1), "train.log_interval": max(steps // 6, 1),
            "train.batch_size": 16, "model.hidden_size": 32, "data.n_train": 200, "data.n_test": 50,
            "optim.warmup_steps": 5}},
        "space": {"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
                  "recursion.n_inner": {"type": "int", "low": 1, "high": 3}},
        "search": {"sampler": "tpe", "seed": 0, "num_samples": configs, "max_concurrent": 2},
        "scheduler": "none", "resources": {"cpu": 1, "gpu": 0},
        "failure": {"max_retries": 20},
        "storage": str(storage), "aim": {"repo": str(out / "aim"), "experiment": "soak"},
    }
    path = out / "soak.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


class Soak:
    def __init__(self, args):
        self.args, self.out = args, Path(args.out).resolve()
        self.rng = random.Random(args.seed)
        self.storage = self.out / "sweeps"
        self.sweep = self.storage / "soak"
        self.aim = self.out / "aim"
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
                    "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
        self.driver: subprocess.Popen | None = None
        self.lock = threading.Lock()
        self.log: list[str] = []
        self.tmpfs = False
        self.hits = 0
        self.groups: list[int] = []
        self.finished = False
        """Faults that hit something (a running worker or driver, an outage while the sweep ran)."""
        self.outages: list[threading.Thread] = []

    def say(self, line: str) -> None:
        line = f"[{time.time() - self.t0:6.1f}s] {line}"
        self.log.append(line)
        print(line, flush=True)

    # -- the sweep's driver ----------------------------------------------------------------------
    def start(self, *args: str) -> None:
        log = open(self.out / f"driver_{len(list(self.out.glob('driver_*.log')))}.log", "w")
        with self.lock:
            self.driver = subprocess.Popen([sys.executable, "-m", "sweeper", *args], cwd=self.out, env=self.env,
                                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            self.groups.append(self.driver.pid)  # its process group: the driver and the Ray it started

    def status(self) -> str:
        try:
            return json.loads((self.sweep / "sweep.json").read_text()).get("status", "")
        except (OSError, ValueError):
            return ""

    def running_trials(self) -> list[tuple[str, int]]:
        try:
            times = json.loads((self.sweep / "trial_times.json").read_text())
        except (OSError, ValueError):
            return []
        return [(tid, t["pid"]) for tid, t in times.items() if t.get("pid") and "ended_at" not in t
                and is_worker(t["pid"])]  # (a pid of a trial that a killed driver left behind may be gone)

    # -- faults ------------------------------------------------------------------------------------
    def schedule(self) -> list[tuple[float, str]]:
        kinds = [k for k in self.args.kinds.split(",") if k]
        # every kind at least once when there are enough faults, the rest drawn; moments spread over the window
        picks = (kinds * (self.args.faults // len(kinds) + 1))[: self.args.faults] if self.args.faults >= len(kinds) \
            else self.rng.sample(kinds, self.args.faults)
        self.rng.shuffle(picks)
        moments = sorted(self.rng.uniform(0.1, 1.0) * self.args.window_s for _ in picks)
        return list(zip(moments, picks))

    def inject(self, kind: str) -> None:
        if kind in ("sigkill_worker", "sigterm_worker"):
            trials = self.wait_for(self.running_trials)
            if not trials:
                self.say(f"{kind}: no trial running, nothing hit")
                return
            tid, pid = self.rng.choice(trials)
            sig = signal.SIGKILL if kind == "sigkill_worker" else signal.SIGTERM
            try:
                os.kill(pid, sig)
                self.hits += 1
                self.say(f"{kind}: trial {tid} (worker pid {pid})")
            except ProcessLookupError:
                self.say(f"{kind}: trial {tid}'s worker {pid} had already gone")
        elif kind == "kill_driver":
            self.wait_for(self.running_trials)  # a driver that runs trials (not one still starting Ray)
            with self.lock:
                driver = self.driver
            if driver is None or driver.poll() is not None:
                self.say("kill_driver: no driver running")
                return
            os.kill(driver.pid, signal.SIGKILL)
            self.hits += 1
            self.say(f"kill_driver: SIGKILL to the driver (pid {driver.pid})")
        elif kind == "aim_readonly":
            self.outage("aim_readonly", self.aim_readonly)
        elif kind == "disk_full":
            if not self.tmpfs:
                self.say("disk_full: skipped (the results directory is not a size-limited tmpfs: mounting one needs root)")
                return
            self.outage("disk_full", self.fill_disk)

    def wait_for(self, find, timeout_s: float = 60.0):
        """What `find` returns once it is something (a fault that would hit nothing waits for a target:
        the sweep may be between a driver's end and its resume), or [] after `timeout_s`."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            found = find()
            if found or self.finished:
                return found
            time.sleep(0.2)
        return []

    def outage(self, kind: str, make) -> None:
        """Start an outage now and end it --outage-s later (in its own thread: the schedule goes on)."""
        if self.driver is None or self.driver.poll() is not None:
            self.say(f"{kind}: no driver running, nothing hit")
            return
        undo = make()
        self.hits += 1
        self.say(f"{kind}: for {self.args.outage_s:g} s")

        def end():
            time.sleep(self.args.outage_s)
            undo()
            self.say(f"{kind}: over")

        t = threading.Thread(target=end, daemon=True)
        t.start()
        self.outages.append(t)

    def aim_readonly(self):
        path = str(self.aim)
        if os.geteuid() == 0:  # root writes through permission bits: a read-only bind mount instead
            subprocess.run(["mount", "--bind", path, path], check=True)
            subprocess.run(["mount", "-o", "remount,bind,ro", path], check=True)
            return lambda: subprocess.run(["umount", path], check=True)
        modes = {p: p.stat().st_mode for p in [self.aim, *self.aim.rglob("*")]}
        for p in modes:
            p.chmod(modes[p] & ~0o222)
        return lambda: [p.chmod(m) for p, m in modes.items() if p.exists()]

    def fill_disk(self):
        filler = self.storage / ".soak_filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        return lambda: filler.unlink(missing_ok=True)

    # -- the run -----------------------------------------------------------------------------------
    def run(self) -> int:
        a = self.args
        if self.out.exists():
            shutil.rmtree(self.out)
        self.storage.mkdir(parents=True)
        self.tmpfs = a.storage_mb > 0 and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={a.storage_mb}m", "tmpfs", str(self.storage)],
            capture_output=True).returncode == 0
        path = spec(self.out, self.storage, a.configs, a.seeds, a.steps)
        self.t0 = time.time()
        plan = self.schedule()
        print(f"chaos soak: seed {a.seed}; {a.configs} configurations x {a.seeds} seeds = {a.configs * a.seeds} trials"
              f" of {a.steps} steps; results on {'a ' + str(a.storage_mb) + ' MB tmpfs' if self.tmpfs else 'disk'}")
        print("fault schedule: " + ", ".join(f"{t:.0f}s {k}" for t, k in plan), flush=True)
        try:
            self.start("run", str(path))
            faults = threading.Thread(target=self._faults, args=(plan,), daemon=True)
            faults.start()
            resumes = self._drive()
            faults.join()
            for t in self.outages:
                t.join()
            return self.check(resumes, len(plan))
        finally:
            for group in self.groups:  # what a killed driver's Ray left behind, and a driver still running
                try:
                    os.killpg(group, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            if self.tmpfs:
                shutil.copytree(self.storage, self.out / "sweeps_kept", dirs_exist_ok=True)
                subprocess.run(["umount", "-l", str(self.storage)])

    def _faults(self, plan) -> None:
        last = -GAP_S
        for at, kind in plan:  # at the planned moment, and GAP_S after the previous fault at the earliest
            time.sleep(max(0.0, at - (time.time() - self.t0), last + GAP_S - (time.time() - self.t0)))
            last = time.time() - self.t0
            try:
                self.inject(kind)
            except Exception as exc:  # a fault that could not be made is reported, the soak goes on
                self.say(f"{kind}: could not inject ({exc})")

    def _drive(self) -> int:
        """Wait for the driver; resume it until the sweep finishes (and the fault window is over)."""
        resumes = 0
        while True:
            with self.lock:
                driver = self.driver
            code = driver.wait()
            status = self.status()
            if status == "finished" and code == 0:
                self.finished = True
                self.say(f"driver exited 0, sweep finished ({resumes} resumes)")
                return resumes
            if resumes >= self.args.max_resumes:
                self.say(f"driver exited {code} with the sweep {status or 'unstarted'}: giving up after {resumes} resumes")
                return resumes
            resumes += 1
            self.say(f"driver exited {code} (sweep {status or 'unstarted'}): sweeper resume soak")
            time.sleep(5.0)  # as a user would, after reading the error (a full disk: after freeing space)
            self.start("resume", "soak", "--storage", str(self.storage))

    # -- what must hold at the end ---------------------------------------------------------------
    def check(self, resumes: int, planned: int) -> int:
        sys.path.insert(0, str(ROOT))
        from sweeper.aim.repo import query_runs
        from sweeper.run.table import read_table
        from trm_core.checkpoint import load_checkpoint

        sync = subprocess.run([sys.executable, "-m", "sweeper", "aim-sync", "soak", "--storage", str(self.storage)],
                              cwd=self.out, env=self.env, capture_output=True, text=True)
        report = subprocess.run([sys.executable, "-m", "sweeper", "report", "soak", "--storage", str(self.storage),
                                 "--no-aim"], cwd=self.out, env=self.env, capture_output=True, text=True)
        a, results = self.args, []
        for name, proc in (("aim-sync", sync), ("report", report)):
            for line in proc.stderr.strip().splitlines()[-3:]:
                print(f"{name}: {line[:300]}")

        def check(name: str, ok: bool, detail: str = "") -> None:
            results.append(ok)
            print(f"check {'ok  ' if ok else 'FAIL'} {name}" + (f": {detail}" if detail else ""), flush=True)

        table = read_table(self.sweep / "results.csv")
        pairs = table.groupby(["config_id", "seed"]).size()
        check("every configuration x seed done exactly once",
              len(table) == a.configs * a.seeds and (pairs == 1).all() and set(table["status"]) == {"done"},
              f"{len(table)} rows, statuses {dict(table['status'].value_counts())}, retries {int(table['retries'].sum())}")
        runs = {r["hash"]: r for r in query_runs(self.aim, "soak")}
        linked = [row_run_is_its_trial(self.aim, r.aim_run, r.trial_id) for r in table.itertuples()]
        unlisted = sum(h not in runs for h in table["aim_run"].dropna())
        check("each results.csv row links its Aim run", all(linked) and len(runs) <= len(table),
              f"{sum(linked)} of {len(table)} rows link a run of their trial; Aim's index lists {len(runs)} runs of"
              f" the sweep ({unlisted} linked runs not in the index yet: `aim up` indexes them); aim-sync exit"
              f" {sync.returncode}")
        study = optuna_study(self.sweep)
        complete = [t for t in study.trials if t.state.name == "COMPLETE"]
        distinct = {tuple(sorted(t.params.items())) for t in complete}
        check("Optuna: one COMPLETE trial per configuration", len(complete) == len(distinct) == a.configs,
              f"{len(complete)} complete, {len(distinct)} distinct")
        temps = [p for p in self.sweep.rglob(".tmp_step_*")]
        bad = []
        checkpoints = [c for c in self.sweep.rglob("checkpoint.pt") if c.parent.name.startswith(("checkpoint_", "step_"))]
        for ck in checkpoints:
            try:
                load_checkpoint(ck.parent)
            except Exception as exc:
                bad.append(f"{ck}: {exc}")
        set_aside = list(self.sweep.rglob("partial_checkpoint_*"))
        check("no partial checkpoint", not temps and not bad, f"{len(checkpoints)} read whole, {len(temps)} temp dirs,"
              f" {len(bad)} unreadable; {len(set_aside)} copies cut short set aside as partial_checkpoint_*")
        check("sweeper report runs", report.returncode == 0, (report.stderr.strip().splitlines() or [""])[-1][:200])
        print(f"soak: {time.time() - self.t0:.0f} s; {self.hits} of {planned} faults hit the running sweep; {resumes}"
              f" resumes; {int(table['retries'].sum())} trial retries; "
              + ("nothing lost" if all(results) else "CHECKS FAILED"))
        return 0 if all(results) else 1


def row_run_is_its_trial(repo: Path, run_hash, trial_id: str) -> bool:
    """The run a results.csv row names exists in the repo's storage and is that trial's (read from the run
    itself, not from Aim's index, which may not have folded it in yet)."""
    import aim

    from sweeper.aim.runs import close_run

    if not isinstance(run_hash, str) or not aim.Repo.from_path(str(repo)).run_exists(run_hash):
        return False
    run = aim.Run(run_hash=run_hash, repo=str(repo), system_tracking_interval=None, capture_terminal_logs=False)
    try:
        return (run.get("sweep") or {}).get("trial_id") == trial_id
    finally:
        close_run(run)


def is_worker(pid: int) -> bool:
    """A live Ray worker process (its title is `ray::...`)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::")
    except OSError:
        return False


def optuna_study(sweep: Path):
    """The Optuna study inside the newest searcher state Tune saved."""
    import ray.cloudpickle as pickle

    newest = sorted((sweep / "tune").glob("searcher-state-*.pkl"))[-1]
    state = pickle.loads(newest.read_bytes())  # our own soak's file, just written
    return next(v for v in state.values() if type(v).__name__ == "Study")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", type=int, default=8)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--steps", type=int, default=600, help="training steps per trial (the sweep must outlast the window)")
    p.add_argument("--faults", type=int, default=8)
    p.add_argument("--kinds", default=",".join(FAULTS), help="comma-separated fault kinds")
    p.add_argument("--window-s", type=float, default=240.0, help="faults happen within this many seconds")
    p.add_argument("--outage-s", type=float, default=10.0, help="how long the Aim and disk outages last")
    p.add_argument("--storage-mb", type=int, default=512, help="size of the results tmpfs (0: no tmpfs)")
    p.add_argument("--max-resumes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/soak")
    args = p.parse_args(argv)
    bad = sorted(set(k for k in args.kinds.split(",") if k) - set(FAULTS)) or not args.kinds.strip(",")
    small = [f"--{k.replace('_', '-')}" for k in ("configs", "seeds", "steps", "faults") if getattr(args, k) < 1]
    if bad or small or not args.window_s > 0:
        what = (f"--kinds must be among {', '.join(FAULTS)}, but got {args.kinds!r}" if bad else
                f"{small[0]} must be at least 1" if small else f"--window-s must be > 0, but got {args.window_s:g}")
        print(f"error: {what}", file=sys.stderr)
        return 2
    return Soak(args).run()


if __name__ == "__main__":
    sys.exit(main())
