"""Puzzle generation and training-batch speed (not part of the test suite).

    python benchmarks/bench_data.py [--seconds 10] [--full]

Prints puzzles/s of the unique-solution generator by board size (and 9x9 with min_rating 1, the
issue's target: 2,000 such puzzles in under 2 minutes on one core), ratios to 9x9, and the time of
`TrainStream.sample(768)`. `--full` also times the real build of 1,000 + 1,000 rated 9x9 puzzles.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trm_core.data import builders, store, sudoku  # noqa: E402
from trm_core.data.stream import TrainStream  # noqa: E402

CASES = [("4x4", 4, 0), ("6x6", 6, 0), ("9x9", 9, 0), ("9x9 min_rating 1", 9, 1)]


def puzzles_per_s(size: int, min_rating: int, seconds: float) -> tuple[float, float]:
    """(puzzles/s, mean rating) generating for about `seconds`."""
    rng = random.Random(0)
    n, ratings, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 3:
        _, _, r = sudoku.generate_puzzle(size, rng, min_rating=min_rating)
        n, ratings = n + 1, ratings + r
    return n / (time.perf_counter() - t0), ratings / n


def sample_ms(size: int, n: int = 768, reps: int = 50) -> float:
    with tempfile.TemporaryDirectory() as d:
        ds = store.load_dataset(store.build_cached(builders.sudoku_spec(size, 64, 8, seed=0), d))
        stream = TrainStream(ds, seed=0)
        stream.sample(n)
        t0 = time.perf_counter()
        for _ in range(reps):
            stream.sample(n)
        return (time.perf_counter() - t0) / reps * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="time per generator case")
    ap.add_argument("--full", action="store_true", help="also time the 1,000 + 1,000 rated 9x9 build")
    args = ap.parse_args()
    print(f"cpu: {os.cpu_count()} cores visible, 1 used; load average {os.getloadavg()[0]:.2f}")
    rows = [(name, size, *puzzles_per_s(size, mr, args.seconds)) for name, size, mr in CASES]
    base = rows[2][2]
    print(f"\n{'case':<18} {'puzzles/s':>10} {'x 9x9':>7} {'mean rating':>12} {'2,000 take (s)':>15}")
    for name, _, rate, mean_rating in rows:
        print(f"{name:<18} {rate:>10.1f} {rate / base:>7.2f} {mean_rating:>12.2f} {2000 / rate:>15.1f}")
    print(f"\n{'TrainStream.sample(768)':<26} {'ms':>6}")
    for size in (4, 6, 9):
        print(f"{f'{size}x{size}':<26} {sample_ms(size):>6.2f}")
    if args.full:
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            store.build_cached(builders.sudoku_spec(9, 1000, 1000, seed=0, min_rating=1), d)
            print(f"\nbuild 1,000 + 1,000 9x9, min_rating 1: {time.perf_counter() - t0:.1f} s (target < 120 s)")


if __name__ == "__main__":
    main()
