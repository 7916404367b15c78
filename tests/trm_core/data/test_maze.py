"""Maze-Unique: perfect mazes, unique shortest paths, encoding, de-duplication, the public CSV loader."""

import random

import numpy as np
import pytest

from trm_core.data import builders, maze, store
from trm_core.errors import UserError


def test_carved_mazes_are_perfect():
    for seed in range(5):
        grid = maze.carve_maze(15, random.Random(seed))
        assert maze.is_perfect(grid)
        assert (grid[0] == maze.WALL).all() and (grid[:, -1] == maze.WALL).all()
    loop = maze.carve_maze(9, random.Random(0))
    loop[1:8, 1:8] = maze.OPEN  # an open room has cycles
    assert not maze.is_perfect(loop)


def test_generated_pair_encoding_and_unique_path():
    x, y = maze.generate_maze(30, random.Random(1), 30, 900)
    assert x.shape == (900,) and x.dtype == np.uint8
    assert set(np.unique(x)) <= {1, 2, 3, 4} and (x == maze.START).sum() == 1 and (x == maze.GOAL).sum() == 1
    assert (y == maze.PATH).sum() >= 29  # path of >= 30 steps has >= 29 cells between S and G
    grid = x.reshape(30, 30)
    start = tuple(np.argwhere(grid == maze.START)[0])
    goal = tuple(np.argwhere(grid == maze.GOAL)[0])
    dist, count = maze.bfs(grid, start)
    assert count[goal] == 1 and dist[goal] == (y == maze.PATH).sum() + 1
    maze.check_pair(maze.to_text(x), maze.to_text(y))


def test_bfs_counts_two_paths_in_a_loop():
    grid = np.full((5, 5), maze.WALL, np.uint8)
    grid[1:4, 1:4] = maze.OPEN
    grid[2, 2] = maze.WALL  # a ring around the centre
    _, count = maze.bfs(grid, (1, 1))
    assert count[(3, 3)] == 2 and count[(1, 3)] == 1


def test_build_maze_dedup_and_determinism(tmp_path):
    spec = builders.maze_spec(7, 25, 25, seed=0, min_path=2, max_path=49)  # tiny mazes collide often
    path = store.build_cached(spec, tmp_path)
    ds = store.load_dataset(path, verify=True)
    assert ds.meta["vocab_size"] == 6 and ds.meta["seq_len"] == 49
    rows = np.concatenate([ds.inputs("train"), ds.inputs("test")])
    assert len({r.tobytes() for r in rows}) == 50
    again = store.build_cached(spec, tmp_path / "again")
    assert store.read_meta(again)["content_hash"] == ds.meta["content_hash"]


def test_maze_params_checked():
    with pytest.raises(UserError, match="size"):
        builders.maze_spec(3, 1, 1, seed=0)
    with pytest.raises(UserError, match="min_path"):
        builders.maze_spec(9, 1, 1, seed=0, min_path=10, max_path=5)


def _write(tmp_path, rows, header="source,question,answer,rating"):
    f = tmp_path / "maze.csv"
    f.write_text("\n".join([header, *rows]) + "\n")
    return f


def test_maze_csv_roundtrip_and_errors(tmp_path):
    x, y = maze.generate_maze(9, random.Random(3), 4, 81)
    q, a = maze.to_text(x), maze.to_text(y)
    loaded = maze.load_maze_csv(_write(tmp_path, [f"gen,{q},{a},0"]))
    assert loaded["board_size"] == 9 and (loaded["inputs"][0] == x).all() and (loaded["labels"][0] == y).all()
    stray = a.replace(" ", "o", 1)  # an 'o' off the path
    broken = a.replace("o", " ", 1)  # a gap in the path
    cases = [("not one of", q[:-1] + "x", a), ("square length", q[:-1], a), ("S-to-G", q, broken),
             ("S-to-G", q, stray), ("disagrees", q, a.replace("#", " ", 1)), ("must not contain path", a, a),
             ("one S and one G", q.replace("G", " "), a)]
    for what, bad_q, bad_a in cases:
        row = f"gen,{bad_q},{bad_a},0"
        with pytest.raises(UserError, match=f"maze.csv: line 3: .*{what}"):
            maze.load_maze_csv(_write(tmp_path, [f"gen,{q},{a},0", row]))
    skipped = maze.load_maze_csv(_write(tmp_path, [f"gen,{q},{a},0", f"gen,{q},{broken},0"]), skip_bad=True)
    assert skipped["n_skipped"] == 1 and len(skipped["inputs"]) == 1
