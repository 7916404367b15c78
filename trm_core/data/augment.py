"""Validity-preserving augmentations, vectorised over a batch (numpy).

Each augmentation is a per-sample *position permutation* `idx` (n, seq_len) applied as a gather
on the flattened grid (`out[b, k] = x[b, idx[b, k]]`), plus, for Sudoku, a per-sample *token map*
(n, vocab) applied as a second gather (`out = map[b, out[b, k]]`).

Sudoku (side N, boxes r x c): rows are permuted by shuffling the N/r bands and the r rows inside
each band, columns by shuffling the N/c stacks and the c columns inside each stack; square boxes
(4x4, 9x9) are also transposed with p = 0.5 (a 6x6 transpose would turn 2x3 boxes into 3x2 ones).
Digits 1..N are relabelled by a random permutation; PAD (0) and blank (1) map to themselves.

Maze (square side S): the 8 symmetries of the square (rotations and reflections); tokens unchanged.

This is numpy, single-threaded on purpose: torch's multi-threaded small ops were 30x slower than
numpy on a busy 2-core machine (thread contention), and a batch of 768 takes ~1-3 ms here.
"""

from __future__ import annotations

import functools

import numpy as np

from trm_core.data.sudoku import BOX_SHAPES


def _randperm_rows(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """n independent random permutations of range(k), shape (n, k)."""
    return rng.random((n, k)).argsort(axis=1)


def _grouped_perm(n: int, size: int, group: int, rng: np.random.Generator) -> np.ndarray:
    """(n, size) permutations that shuffle size/group blocks of `group` lines and the lines within each."""
    n_blocks = size // group
    block_order = _randperm_rows(n, n_blocks, rng)  # (n, n_blocks)
    within = rng.random((n, n_blocks, group)).argsort(axis=2)  # (n, n_blocks, group)
    return (block_order[:, :, None] * group + within).reshape(n, size)


def sudoku_positions(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """(n, size*size) gather indices: band/row and stack/column shuffles, transpose if boxes are square."""
    box_rows, box_cols = BOX_SHAPES[size]
    rows = _grouped_perm(n, size, box_rows, rng)
    cols = _grouped_perm(n, size, box_cols, rng)
    idx = rows[:, :, None] * size + cols[:, None, :]  # (n, size, size)
    if box_rows == box_cols:
        flip = rng.random(n) < 0.5
        idx = np.where(flip[:, None, None], idx.transpose(0, 2, 1), idx)
    return idx.reshape(n, size * size)


def sudoku_token_maps(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """(n, size+2) token maps: PAD->PAD, blank->blank, digit tokens 2..size+1 permuted."""
    digits = _randperm_rows(n, size, rng) + 2
    fixed = np.broadcast_to(np.array([0, 1]), (n, 2))
    return np.concatenate([fixed, digits], axis=1)


@functools.lru_cache(maxsize=None)
def dihedral_table(side: int) -> np.ndarray:
    """(8, side*side) gather indices of the 8 symmetries of a square grid; row 0 is the identity."""
    base = np.arange(side * side).reshape(side, side)
    tables = []
    for k in range(4):
        rot = np.rot90(base, k)
        tables += [rot, rot.T]
    out = np.stack([t.reshape(-1) for t in tables])
    out.flags.writeable = False
    return out


def maze_positions(n: int, side: int, rng: np.random.Generator) -> np.ndarray:
    """(n, side*side) gather indices of a random dihedral symmetry per sample."""
    return dihedral_table(side)[rng.integers(0, 8, n)]


def apply(x: np.ndarray, positions: np.ndarray, token_map: np.ndarray | None = None) -> np.ndarray:
    """Gather positions (and map tokens) of a (n, seq_len) batch."""
    out = np.take_along_axis(x, positions, axis=1)
    if token_map is not None:
        out = np.take_along_axis(token_map, out.astype(np.int64), axis=1)
    return out


def augment_batch(inputs: np.ndarray, labels: np.ndarray, task: str, side: int, rng: np.random.Generator):
    """The same random augmentation applied to each (input, label) pair of a (n, seq_len) batch."""
    n = inputs.shape[0]
    if task == "maze":
        pos = maze_positions(n, side, rng)
        return apply(inputs, pos), apply(labels, pos)
    pos = sudoku_positions(n, side, rng)
    tmap = sudoku_token_maps(n, side, rng)
    return apply(inputs, pos, tmap), apply(labels, pos, tmap)
