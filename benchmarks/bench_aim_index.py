"""What indexing the Aim repo costs at the end of a sweep: the whole index rebuilt, or the sweep's runs.

A sweep ends by folding its runs into the repo's index (SDK queries and the UI list only indexed
runs). sweeper.aim_log.reindex(repo, hashes) indexes the sweep's runs as Aim's own indexer does;
reindex(repo) rebuilds the whole index from scratch (`aim storage reindex -y`), which costs in
proportion to every run the repo holds. This writes repos of N runs (each like a quickstart trial:
hparams, sweep attributes, 6 evaluations of two metrics), then times both, interleaved, in one run.

    python benchmarks/bench_aim_index.py [--runs 50,200] [--sweep 8] [--rounds 3] [--dir /tmp/bench_aim]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sweeper.aim_log import ensure_repo, reindex  # noqa: E402


def write_runs(repo: Path, n: int) -> list[str]:
    import aim

    hashes = []
    for i in range(n):
        run = aim.Run(repo=str(repo), experiment="bench", system_tracking_interval=None, capture_terminal_logs=False)
        run["sweep"] = {"name": f"s{i // 8}", "trial_id": str(i)}
        run["hparams"] = {"optim.lr": 1e-3, "model.hidden_size": 64, "seed": i % 4}
        for step in range(50, 301, 50):
            run.track(0.5, name="exact_acc", step=step, context={"subset": "eval"})
            run.track(1.0, name="loss", step=step, context={"subset": "train"})
        run.close()
        hashes.append(run.hash)
    return hashes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="50,200", help="repo sizes, comma-separated")
    ap.add_argument("--sweep", type=int, default=8, help="runs of the sweep that ends")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/bench_aim")
    args = ap.parse_args()
    print(f"| runs in repo | full rebuild (s) | the sweep's {args.sweep} runs (s) | ratio |")
    print("|---|---|---|---|")
    for n in (int(x) for x in args.runs.split(",")):
        repo = Path(args.dir) / f"repo{n}"
        shutil.rmtree(repo, ignore_errors=True)
        ensure_repo(repo)
        hashes = write_runs(repo, n)
        full, sweep = [], []
        for _ in range(args.rounds):
            t = time.perf_counter()
            reindex(repo)
            full.append(time.perf_counter() - t)
            t = time.perf_counter()
            reindex(repo, hashes[-args.sweep:])
            sweep.append(time.perf_counter() - t)
        f, s = statistics.median(full), statistics.median(sweep)
        print(f"| {n} | {f:.2f} | {s:.2f} | {f / s:.1f}x |")
        shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    main()
