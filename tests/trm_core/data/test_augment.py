"""Augmentations keep puzzles valid and unique (hypothesis over seeds, all three sizes) and mazes intact."""

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trm_core.data import augment, maze, sudoku

_PUZZLES = {size: [sudoku.generate_puzzle(size, random.Random(size * 10 + i))[:2] for i in range(3)] for size in (4, 6, 9)}


def _batch(size):
    ps, ss = zip(*_PUZZLES[size])
    x = sudoku.encode(np.stack(ps)).reshape(len(ps), -1).astype(np.int64)
    y = sudoku.encode(np.stack(ss)).reshape(len(ss), -1).astype(np.int64)
    return x, y


@settings(max_examples=15, deadline=None)
@given(size=st.sampled_from([4, 6, 9]), seed=st.integers(0, 2**31 - 1))
def test_augmented_sudoku_stays_valid_and_unique(size, seed):
    x, y = _batch(size)
    ax, ay = augment.augment_batch(x, y, "sudoku", size, np.random.default_rng(seed))
    for i in range(len(x)):
        p, s = sudoku.decode(ax[i]), sudoku.decode(ay[i])
        assert sudoku.is_valid_solution(s)
        assert sudoku.agrees(p, s)
        assert (ax[i] == 1).sum() == (x[i] == 1).sum()  # blanks stay blanks, never relabelled
        res = sudoku.solve(p)
        assert res.n_solutions == 1 and (res.solution == s).all()


def test_augmentation_changes_boards_and_covers_transpose():
    x, y = _batch(9)
    rng = np.random.default_rng(0)
    pos = augment.sudoku_positions(200, 9, rng)
    assert (np.sort(pos, axis=1) == np.arange(81)).all()  # each row is a permutation
    # a transposed sample's first output row reads one input column
    transposed = (pos.reshape(200, 9, 9)[:, 0, :] % 9 == pos.reshape(200, 9, 9)[:, 0, :1] % 9).all(axis=1)
    assert 20 < int(transposed.sum()) < 180
    ax, _ = augment.augment_batch(x, y, "sudoku", 9, rng)
    assert not np.array_equal(ax, x)


def test_six_by_six_is_never_transposed():
    pos = augment.sudoku_positions(300, 6, np.random.default_rng(1)).reshape(300, 6, 6)
    rows = pos // 6
    # every output row reads from a single input row: no transpose happened
    assert (rows == rows[:, :, :1]).all()


def test_token_maps_fix_pad_and_blank():
    maps = augment.sudoku_token_maps(50, 9, np.random.default_rng(2))
    assert (maps[:, :2] == np.array([0, 1])).all()
    assert (np.sort(maps[:, 2:], axis=1) == np.arange(2, 11)).all()


def test_maze_dihedral_keeps_tokens_and_path():
    x, y = maze.generate_maze(11, random.Random(0), 5, 121)
    table = augment.dihedral_table(11)
    assert len({tuple(t.tolist()) for t in table}) == 8
    for k in range(8):
        ax, ay = x[table[k]], y[table[k]]
        assert sorted(ax.tolist()) == sorted(x.tolist())
        maze.check_pair(maze.to_text(ax), maze.to_text(ay))  # still a maze with its S-to-G path


@pytest.mark.parametrize("k", range(8))
def test_dihedral_table_rows_are_permutations(k):
    assert (np.sort(augment.dihedral_table(7)[k]) == np.arange(49)).all()
