"""Training throughput benchmark (same as `python -m trm_core bench train ...`).

    python benchmarks/bench_train.py --preset sudoku_extreme_trm [--set k=v ...] [--steps N]

Prints, per variant (eager / compiled x fp32 / bf16; bf16 on CUDA only), puzzle-steps/s (batch x
ACT steps per second), the ratio to eager fp32 and the achieved TFLOP/s from the analytic FLOP
count, then one JSON line. How it measures: the real training step (refill, forward, loss,
backward, optimiser, EMA) on random puzzles of the preset's shape, after `--warmup` untimed steps
(which also absorb torch.compile), synchronising the GPU before and after the timed steps.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from trm_core.cli import main  # noqa: E402
from trm_core.errors import run_cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_cli(main, ["bench", "train", *sys.argv[1:]]))
