"""Build specs and build functions of each task: sudoku (generated), maze (generated), sudoku-extreme (CSV).

A spec is a plain dict (JSON-able) that fully determines a dataset; its hash is the cache key.
A build function turns a spec into arrays {'{split}_inputs': ..., '{split}_labels': ...,
'{split}_ratings': ...} and the meta fields task, board_size, vocab_size, seq_len.
"""

from __future__ import annotations

import random
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from trm_core.data import sudoku
from trm_core.errors import UserError

GENERATED_TASKS = ("sudoku", "maze")
TASKS = ("sudoku", "sudoku-extreme", "maze")


def _check_counts(n_train: int, n_test: int) -> None:
    if n_train < 1 or n_test < 1:
        raise UserError(f"train and test sizes must be >= 1, but got train={n_train}, test={n_test}")


def sudoku_spec(size: int, n_train: int, n_test: int, seed: int, min_rating: int = 0, givens: int = 0) -> dict[str, Any]:
    """Spec of a generated Sudoku dataset (sizes 4, 6, 9)."""
    sudoku.geometry(size)  # validates the size
    _check_counts(n_train, n_test)
    if min_rating < 0 or givens < 0:
        raise UserError(f"min_rating and givens must be >= 0, but got min_rating={min_rating}, givens={givens}")
    return {"task": "sudoku", "board_size": size, "n_train": n_train, "n_test": n_test,
            "min_rating": min_rating, "givens": givens, "seed": seed}


def maze_spec(size: int, n_train: int, n_test: int, seed: int, min_path: int = 0, max_path: int = 0) -> dict[str, Any]:
    """Spec of a generated Maze-Unique dataset; path bounds 0 mean the defaults of maze.default_path_range."""
    from trm_core.data import maze

    _check_counts(n_train, n_test)
    lo, hi = maze.default_path_range(size) if not (min_path or max_path) else (min_path, max_path)
    maze.check_params(size, lo, hi)
    return {"task": "maze", "board_size": size, "n_train": n_train, "n_test": n_test,
            "min_path": lo, "max_path": hi, "seed": seed}


def spec_from_config(data_cfg: Any) -> dict[str, Any]:
    """The build spec of a trm_core.config.DataConfig (generated tasks only)."""
    task = data_cfg.task
    if task == "sudoku":
        return sudoku_spec(data_cfg.board_size, data_cfg.n_train, data_cfg.n_test, data_cfg.data_seed, data_cfg.min_rating)
    if task == "maze":
        return maze_spec(data_cfg.board_size, data_cfg.n_train, data_cfg.n_test, data_cfg.data_seed)
    if task == "sudoku-extreme":
        raise UserError(
            "data.task=sudoku-extreme needs data.path: run `python -m trm_core data build sudoku-extreme "
            "--csv FILE --seed S --out DIR` and set data.path=DIR"
        )
    raise UserError(f"unknown data.task '{task}'; known tasks: {', '.join(TASKS)}")


# --------------------------------------------------------------------------------------------
# Sudoku


def generate_sudoku_split(
    size: int, n: int, rng: random.Random, seen: set[bytes], min_rating: int = 0, givens: int = 0,
    desc: str = "", progress: bool = False,
) -> dict[str, np.ndarray]:
    """`n` distinct unique-solution puzzles not in `seen` (which is updated): digits, solutions, ratings."""
    puzzles, solutions, ratings = [], [], []
    max_dupes = 100 * n + 1000
    dupes = 0
    with tqdm(total=n, desc=desc, disable=not progress or None, leave=False) as bar:
        while len(puzzles) < n:
            p, s, r = sudoku.generate_puzzle(size, rng, givens=givens, min_rating=min_rating)
            key = p.tobytes()
            if key in seen:
                dupes += 1
                if dupes > max_dupes:
                    raise UserError(f"only {len(seen)} distinct {size}x{size} puzzles found with these settings; "
                                    "ask for fewer puzzles")
                continue
            seen.add(key)
            puzzles.append(p)
            solutions.append(s)
            ratings.append(r)
            bar.update(1)
    return {"inputs": np.stack(puzzles), "labels": np.stack(solutions), "ratings": np.array(ratings, dtype=np.int32)}


def build_sudoku(spec: dict[str, Any], progress: bool = False):
    """Generate train and test splits (no puzzle in both) from one seeded RNG."""
    size = spec["board_size"]
    rng = random.Random(spec["seed"])
    seen: set[bytes] = set()
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        out = generate_sudoku_split(size, spec[f"n_{split}"], rng, seen, spec["min_rating"], spec["givens"],
                                    desc=f"sudoku{size} {split}", progress=progress)
        arrays[f"{split}_inputs"] = sudoku.encode(out["inputs"]).reshape(out["inputs"].shape)
        arrays[f"{split}_labels"] = sudoku.encode(out["labels"]).reshape(out["labels"].shape)
        arrays[f"{split}_ratings"] = out["ratings"]
    geo = sudoku.geometry(size)
    info = {"task": "sudoku", "board_size": size, "vocab_size": geo.vocab_size, "seq_len": geo.n_cells}
    return arrays, info


def builder_for(spec: dict[str, Any]) -> Callable[[dict[str, Any], bool], tuple[dict[str, np.ndarray], dict[str, Any]]]:
    """The build function of a spec (by its task, and its source for CSV-loaded mazes)."""
    task = spec["task"]
    if task == "sudoku":
        return build_sudoku
    if task == "maze":
        from trm_core.data.maze import build_maze, build_maze_csv

        return build_maze_csv if spec.get("source") == "csv" else build_maze
    if task == "sudoku-extreme":
        from trm_core.data.extreme import build_extreme

        return build_extreme
    raise UserError(f"unknown task '{task}'; known tasks: {', '.join(TASKS)}")
