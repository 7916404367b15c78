"""Training batches with on-the-fly augmentation.

`TrainStream` is what the trainer calls every step: `.sample(n)` draws n training puzzles (with
replacement) and augments them in one vectorised numpy pass (augment.py). Everything random comes
from one `numpy.random.Generator` (PCG64) seeded with `seed`, so a stream is a pure function of
(dataset, seed, the sequence of n's); `state_dict()` captures the generator's state (plain ints)
so a resumed run continues exactly.

`AugmentedPuzzles` is the same data as a `torch.utils.data.Dataset` for DataLoader users.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from trm_core.data import augment
from trm_core.data.store import PuzzleDataset, load_dataset


def _task_kind(meta: dict[str, Any]) -> str:
    return "maze" if meta["task"] == "maze" else "sudoku"


class TrainStream:
    """Random augmented training batches: `sample(n) -> (inputs, labels)`, LongTensor (n, seq_len) on CPU."""

    def __init__(self, dataset: PuzzleDataset | str, seed: int, augment: bool = True, split: str = "train"):
        if not isinstance(dataset, PuzzleDataset):
            dataset = load_dataset(dataset)
        self.meta = dataset.meta
        self.kind = _task_kind(self.meta)
        self.side = int(self.meta["board_size"])
        self.augment = augment
        self.seed = int(seed)
        self.inputs = np.array(dataset.inputs(split))  # uint8 in memory; batches become int64
        self.labels = np.array(dataset.labels(split))
        self.rng = np.random.default_rng(self.seed)
        self.n_sampled = 0

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n puzzles drawn uniformly with replacement, each with its own random augmentation."""
        idx = self.rng.integers(0, len(self), n)
        x, y = self.inputs[idx].astype(np.int64), self.labels[idx].astype(np.int64)
        if self.augment:
            x, y = augment.augment_batch(x, y, self.kind, self.side, self.rng)
        self.n_sampled += n
        return torch.from_numpy(x), torch.from_numpy(y)

    def state_dict(self) -> dict[str, Any]:
        """Plain data to resume from: seed, samples drawn, the RNG state (a dict of ints and strings)."""
        return {"seed": self.seed, "n_sampled": self.n_sampled, "augment": self.augment,
                "rng": copy.deepcopy(self.rng.bit_generator.state)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a state_dict: the next samples equal those of the uninterrupted stream."""
        self.seed = int(state["seed"])
        self.n_sampled = int(state["n_sampled"])
        self.augment = bool(state.get("augment", self.augment))
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
