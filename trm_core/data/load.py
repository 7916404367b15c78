"""A run's data: the dataset, its training stream, and the held-out puzzles that evaluations score
(`load_data`); shared by the trainer and the test-time engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from trm_core.config import TRMConfig
from trm_core.data.store import build_from_config, load_dataset
from trm_core.data.stream import TrainStream
from trm_core.errors import UserError
from trm_core.rng import derive_seed


@dataclass
class EvalSet:
    """Held-out puzzles: (N, cells) inputs and labels, (N,) puzzle identifiers."""

    inputs: np.ndarray
    labels: np.ndarray
    puzzle_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.inputs)

    def subset(self, n: int, seed: int) -> "EvalSet":
        """A seeded random subset of n puzzles (in their original order); itself when n >= len."""
        if n <= 0 or n >= len(self):
            return self
        idx = np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False))
        return EvalSet(self.inputs[idx], self.labels[idx], self.puzzle_ids[idx])


PUBLIC_DATA = {
    "maze": "python -m trm_core data build maze-csv --csv train.csv --test-csv test.csv --out DIR",
    "sudoku-extreme": "python -m trm_core data build sudoku-extreme --csv train.csv --test-csv test.csv "
                      "--subsample 1000 --seed 0 --out DIR",
}
"""How to build each task's public dataset, for the refusal above."""


@dataclass
class Data:
    dataset: Any
    stream: Any
    """The TrainStream (the run's `data` stream)."""
    eval_set: EvalSet
    """What periodic evaluations use: a seeded subset of data.eval_split (train.eval_max_puzzles)."""
    final_set: Optional[EvalSet]
    """The whole split for the final evaluation, when eval_set is a subset of it and final_eval is on."""


def load_data(cfg: TRMConfig) -> Data:
    d = cfg.data
    if not d.generated_ok and not d.path:
        build = PUBLIC_DATA.get(d.task, "python -m trm_core data build ...")
        raise UserError(f"{cfg.name} is defined on a public dataset and does not train on generated puzzles: "
                        f"data.path must name a dataset directory built from it (`{build}`), but data.path is empty")
    dataset = load_dataset(build_from_config(d))
    stream = TrainStream(dataset, seed=cfg.seed, augment=d.augment, sampling=d.sampling, hint_k=d.hint_k,
                         hint_fraction=d.hint_fraction)
    split = d.eval_split
    full = EvalSet(np.array(dataset.inputs(split)), np.array(dataset.labels(split)),
                   np.array(dataset.puzzle_ids(split)))
    # the subset depends on the dataset's seed only, so every trial of a sweep scores the same puzzles
    subset = full.subset(cfg.train.eval_max_puzzles, derive_seed(d.data_seed, "eval_subset"))
    final = full if (subset is not full and cfg.train.final_eval) else None
    return Data(dataset, stream, subset, final)
