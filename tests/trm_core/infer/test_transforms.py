"""Member transforms: every inverse restores the board, Sudokus stay valid, names that do not apply fail."""

import random

import numpy as np
import pytest
import torch

from trm_core.data import maze, sudoku
from trm_core.errors import UserError
from trm_core.infer.members import Members
from trm_core.infer.transforms import DIHEDRAL, TRANSFORMS, Task, applicable, build_transforms, parse_names

SUDOKU = {size: [sudoku.generate_puzzle(size, random.Random(size + i))[:2] for i in range(3)] for size in (4, 6, 9)}
MAZES = [maze.generate_maze(9, random.Random(i), *maze.default_path_range(9)) for i in range(3)]


def sudoku_batch(size):
    ps, ss = zip(*SUDOKU[size])
    enc = lambda a: sudoku.encode(np.stack(a)).reshape(len(a), -1).astype(np.int64)  # noqa: E731
    return enc(ps), enc(ss)


def every_transform(task, repeats=3):
    names = [n for n in applicable(task) for _ in range(repeats)]
    return build_transforms(",".join(names), task, seed=7)


@pytest.mark.parametrize("size", [4, 6, 9])
def test_every_sudoku_transform_is_inverted_exactly_and_keeps_the_puzzle_valid(size):
    task = Task("sudoku", size, size + 2)
    x, y = sudoku_batch(size)
    transforms = every_transform(task)
    assert {t.name for t in transforms} >= {"identity", "bands", "digits", "cycle", "augment"}
    assert ("transpose" in {t.name for t in transforms}) == (size != 6)  # 6x6 boxes are 2x3
    for t in transforms:
        tx, ty = t.apply(x), t.apply(y)
        assert np.array_equal(t.invert(tx), x) and np.array_equal(t.invert(ty), y), t.name
        for i in range(len(x)):
            p, s = sudoku.decode(tx[i]), sudoku.decode(ty[i])
            assert sudoku.is_valid_solution(s) and sudoku.agrees(p, s), t.name
            assert (tx[i] == 1).sum() == (x[i] == 1).sum()  # blanks stay blanks


def test_every_maze_transform_is_inverted_exactly_and_keeps_walls_under_the_path():
    task = Task("maze", 9, maze.VOCAB_SIZE)
    x = np.stack([m[0] for m in MAZES]).astype(np.int64)
    y = np.stack([m[1] for m in MAZES]).astype(np.int64)
    transforms = every_transform(task)
    assert set(DIHEDRAL) <= {t.name for t in transforms}
    for t in transforms:
        tx, ty = t.apply(x), t.apply(y)
        assert np.array_equal(t.invert(tx), x) and np.array_equal(t.invert(ty), y), t.name
        assert np.array_equal(tx == 1, ty == 1)  # the same walls in input and label


def test_dihedral_names_are_the_geometry_they_say():
    side = 5
    grid = np.arange(side * side).reshape(side, side)
    expect = {"identity": grid, "transpose": grid.T, "rot90": np.rot90(grid), "rot180": np.rot90(grid, 2),
              "rot270": np.rot90(grid, 3), "flip_lr": grid[:, ::-1], "flip_ud": grid[::-1], "antitranspose": np.rot90(grid, 2).T}
    task = Task("maze", side, side * side)  # tokens are the cell numbers here
    for t in build_transforms(",".join(DIHEDRAL), task):
        assert np.array_equal(t.apply(grid.reshape(1, -1))[0], expect[t.name].reshape(-1)), t.name


def test_cycle_members_shift_digits_by_their_rank():
    task = Task("sudoku", 4, 6)
    shifts = [t.tokens[2:] - 2 for t in build_transforms("cycle,cycle,cycle", task)]
    assert [list(s) for s in shifts] == [[1, 2, 3, 0], [2, 3, 0, 1], [3, 0, 1, 2]]
    assert list(build_transforms("cycle", task)[0].tokens[:2]) == [0, 1]  # PAD and blank stay


def test_counts_names_and_seeds():
    s6, mz = Task("sudoku", 6, 8), Task("maze", 9, 6)
    assert parse_names("4", s6) == ["identity", "augment", "augment", "augment"]
    assert parse_names("8", mz) == list(DIHEDRAL)
    a, b = build_transforms("3", s6, seed=1), build_transforms("3", s6, seed=1)
    assert all(np.array_equal(p.positions, q.positions) and np.array_equal(p.tokens, q.tokens) for p, q in zip(a, b))
    c = build_transforms("3", s6, seed=2)
    assert not all(np.array_equal(p.tokens, q.tokens) for p, q in zip(a[1:], c[1:]))


@pytest.mark.parametrize("spec, task, message", [
    ("transpose", Task("sudoku", 6, 8), "'transpose' does not apply to sudoku 6x6"),
    ("rot90", Task("sudoku", 9, 11), "applies to maze only"),
    ("identity,digits", Task("maze", 9, 6), "'digits' does not apply to maze 9x9"),
    ("transpos", Task("sudoku", 4, 6), "did you mean 'transpose'"),
    ("0", Task("sudoku", 4, 6), "--transforms must be >= 1"),
    ("9", Task("maze", 9, 6), "must be <= 8 for a maze"),
    (",", Task("sudoku", 4, 6), "a count or a comma list"),
])
def test_transforms_that_do_not_apply_are_one_line_errors(spec, task, message):
    with pytest.raises(UserError, match=message):
        build_transforms(spec, task)


def test_answers_and_probabilities_map_back_to_the_puzzle():
    task = Task("sudoku", 4, 6)
    x, _ = sudoku_batch(4)
    transforms = build_transforms("identity,augment,augment,transpose,digits", task, seed=3)
    stack = lambda arrays: torch.as_tensor(np.stack(arrays))  # noqa: E731
    members = Members(stack([t.apply(x) for t in transforms]), stack([t.apply(x) for t in transforms]),
                      torch.zeros(len(x), dtype=torch.long), stack([t.positions_inv for t in transforms]),
                      stack([t.tokens for t in transforms]), stack([t.tokens_inv for t in transforms]))
    g = torch.Generator().manual_seed(0)
    for i, tf in enumerate(transforms):
        seen = members.inputs[i]
        probs = torch.rand(seen.shape[0], seen.shape[1], task.vocab, generator=g)
        tidx = torch.full((seen.shape[0],), i)
        pred, back = members.to_puzzle_space(tidx, seen, probs)
        assert torch.equal(pred, torch.as_tensor(x)), tf.name  # the member's view of the puzzle maps back to it
        # probabilities follow the same map: argmax then map == map then argmax
        via_pred, _ = members.to_puzzle_space(tidx, probs.argmax(-1), probs)
        assert torch.equal(back.argmax(-1), via_pred), tf.name


def test_registry_lists_every_transform():
    assert set(TRANSFORMS.names()) == {"identity", "transpose", "bands", "digits", "cycle", "augment", "dihedral",
                                       *DIHEDRAL}
