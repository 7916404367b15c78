"""Training batches with on-the-fly augmentation.

`TrainStream` is what the trainer calls every step: `.sample(n)` draws n training puzzles and
augments them in one vectorised numpy pass (augment.py). Sampling is `epoch` (TRM: shuffled passes
over the training set, drawn without replacement; a new permutation when one is used up) or
`replacement` (uniform with replacement). With `hint_k` > 0, a share `hint_fraction` of the drawn
puzzles get `hint_k` of their blanks filled in from their solution (hint augmentation, Ren & Liu):
easier copies that share the solution. Everything random comes from one `numpy.random.Generator`
(PCG64) seeded with `seed`, so a stream is a pure function of (dataset, seed, options, the sequence
of n's); `state_dict()` captures it so a resumed run continues exactly.

`AugmentedPuzzles` is the same data as a `torch.utils.data.Dataset` for DataLoader users.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from trm_core.data import augment
from trm_core.data.store import PuzzleDataset, load_dataset
from trm_core.errors import UserError

SAMPLING = ("epoch", "replacement")


def _task_kind(meta: dict[str, Any]) -> str:
    return "maze" if meta["task"] == "maze" else "sudoku"


def fill_hints(x: np.ndarray, y: np.ndarray, rows: np.ndarray, k: int, rng: np.random.Generator,
               blank: int = 1) -> np.ndarray:
    """Copy of `x` where each row in `rows` has k random blanks (or all, if fewer) set to the solution."""
    x = x.copy()
    sub, sol = x[rows], y[rows]
    is_blank = sub == blank
    order = np.argsort(np.where(is_blank, rng.random(sub.shape), 2.0), axis=1)[:, :k]  # blanks first
    picked = np.take_along_axis(is_blank, order, axis=1)
    r = np.broadcast_to(np.arange(len(rows))[:, None], order.shape)
    sub[r[picked], order[picked]] = sol[r[picked], order[picked]]
    x[rows] = sub
    return x


class TrainStream:
    """Augmented training batches: `sample(n) -> (inputs, labels, puzzle_ids)`, LongTensors on CPU."""

    def __init__(self, dataset: PuzzleDataset | str, seed: int, augment: bool = True, split: str = "train",
                 sampling: str = "replacement", hint_k: int = 0, hint_fraction: float = 0.0):
        if not isinstance(dataset, PuzzleDataset):
            dataset = load_dataset(dataset)
        if sampling not in SAMPLING:
            raise UserError(f"data.sampling must be one of {', '.join(SAMPLING)}, but got '{sampling}'")
        self.meta = dataset.meta
        self.kind = _task_kind(self.meta)
        if hint_k and self.kind != "sudoku":
            raise UserError(f"data.hint_k fills Sudoku blanks; it does not apply to task {self.meta['task']}")
        self.side = int(self.meta["board_size"])
        self.augment, self.sampling = augment, sampling
        self.hint_k, self.hint_fraction = hint_k, hint_fraction
        self.seed = int(seed)
        self.inputs = np.array(dataset.inputs(split))  # uint8 in memory; batches become int64
        self.labels = np.array(dataset.labels(split))
        self.puzzle_ids = np.asarray(dataset.puzzle_ids(split), dtype=np.int64)
        self.rng = np.random.default_rng(self.seed)
        self.n_sampled = 0
        self.order = np.zeros(0, dtype=np.int64)  # the current epoch's permutation (epoch sampling)
        self.pos = 0
        self.epochs = 0

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def _indices(self, n: int) -> np.ndarray:
        if self.sampling == "replacement":
            return self.rng.integers(0, len(self), n)
        taken = []
        while n > 0:
            if self.pos >= len(self.order):
                self.order, self.pos = self.rng.permutation(len(self)), 0
                self.epochs += 1
            part = self.order[self.pos:self.pos + n]
            self.pos += len(part)
            n -= len(part)
            taken.append(part)
        return np.concatenate(taken) if taken else np.zeros(0, dtype=np.int64)

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """n puzzles (see the module docstring), each with its own random augmentation."""
        idx = self._indices(n)
        x, y = self.inputs[idx].astype(np.int64), self.labels[idx].astype(np.int64)
        if self.augment:
            x, y = augment.augment_batch(x, y, self.kind, self.side, self.rng)
        if self.hint_k:
            hinted = np.flatnonzero(self.rng.random(n) < self.hint_fraction)
            x = fill_hints(x, y, hinted, self.hint_k, self.rng)
        self.n_sampled += n
        return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(self.puzzle_ids[idx])

    def state_dict(self) -> dict[str, Any]:
        """Plain data to resume from: seed, options, the epoch position and the RNG state."""
        return {"seed": self.seed, "n_sampled": self.n_sampled, "augment": self.augment, "sampling": self.sampling,
                "order": torch.from_numpy(self.order.astype(np.int64)), "pos": self.pos, "epochs": self.epochs,
                "rng": copy.deepcopy(self.rng.bit_generator.state)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a state_dict: the next samples equal those of the uninterrupted stream."""
        self.seed = int(state["seed"])
        self.n_sampled = int(state["n_sampled"])
        self.augment = bool(state.get("augment", self.augment))
        self.sampling = state.get("sampling", self.sampling)
        if "order" in state:
            self.order = np.asarray(state["order"], dtype=np.int64)
            self.pos, self.epochs = int(state["pos"]), int(state["epochs"])
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = copy.deepcopy(state["rng"])


class AugmentedPuzzles(torch.utils.data.Dataset):
    """One split as a map-style Dataset; item i is (input, label) LongTensors, freshly augmented.

    Augmentation randomness comes from a numpy Generator seeded with (seed, epoch, index), so items
    are reproducible; call `set_epoch(e)` to get new augmentations each epoch.
    """

    def __init__(self, dataset: PuzzleDataset | str, split: str = "train", augment: bool = True, seed: int = 0):
        if not isinstance(dataset, PuzzleDataset):
            dataset = load_dataset(dataset)
        self.kind = _task_kind(dataset.meta)
        self.side = int(dataset.meta["board_size"])
        self.inputs = np.array(dataset.inputs(split))  # uint8 in memory; batches become int64
        self.labels = np.array(dataset.labels(split))
        self.augment, self.seed, self.epoch = augment, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.inputs[i : i + 1].astype(np.int64), self.labels[i : i + 1].astype(np.int64)
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, int(i)])
            x, y = augment.augment_batch(x, y, self.kind, self.side, rng)
        return torch.from_numpy(x[0].copy()), torch.from_numpy(y[0].copy())
