"""Maze-Unique: perfect mazes with a start/goal pair whose shortest path is unique.

A maze is a side x side character grid (walls included): `#` wall, ` ` open, `S` start, `G` goal,
`o` path, encoded as tokens 1..5 (PAD 0, vocab 6). The input has S and G but no `o`; the label is
the input with the cells strictly between S and G on the shortest path marked `o`.

Cells of the maze lattice sit at odd (row, column) below side - 1; the border is wall (an even side
leaves a double wall on the last row and column). Mazes are carved by a randomised depth-first
search, so they are *perfect*: a spanning tree of the lattice, where every pair of cells is joined
by exactly one simple path; a shortest path is therefore always unique. We still count shortest
paths with a BFS (cheap) and keep only pairs whose count is 1, and check that the maze is a tree.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

import numpy as np
from tqdm import tqdm

from trm_core.data.csvio import BadRow
from trm_core.errors import UserError

CHARS = "# SGo"
"""Token t (1..5) is CHARS[t - 1]."""
WALL, OPEN, START, GOAL, PATH = 1, 2, 3, 4, 5
VOCAB_SIZE = 6
_TO_TOKEN = {c: i + 1 for i, c in enumerate(CHARS)}


def check_params(side: int, min_path: int, max_path: int) -> None:
    if side < 5:
        raise UserError(f"maze size must be >= 5, but got size={side}")
    if not 1 <= min_path <= max_path:
        raise UserError(f"maze path lengths need 1 <= min_path <= max_path, but got {min_path}..{max_path}")


def default_path_range(side: int) -> tuple[int, int]:
    """Shortest-path lengths (steps from S to G) kept by default: side .. side*side."""
    return side, side * side


def carve_maze(side: int, rng: random.Random) -> np.ndarray:
    """A perfect maze as a (side, side) token grid of WALL/OPEN, by randomised depth-first search."""
    grid = np.full((side, side), WALL, dtype=np.uint8)
    lattice = range(1, side - 1, 2)
    start = (rng.choice(lattice), rng.choice(lattice))
    grid[start] = OPEN
    stack = [start]
    while stack:
        r, c = stack[-1]
        nbrs = [(r + dr, c + dc) for dr, dc in ((-2, 0), (2, 0), (0, -2), (0, 2))
                if 0 < r + dr < side - 1 and 0 < c + dc < side - 1 and grid[r + dr, c + dc] == WALL]
        if not nbrs:
            stack.pop()
            continue
        nr, nc = rng.choice(nbrs)
        grid[(r + nr) // 2, (c + nc) // 2] = OPEN
        grid[nr, nc] = OPEN
        stack.append((nr, nc))
    return grid


def _neighbours(grid: np.ndarray, r: int, c: int):
    side = grid.shape[0]
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        nr, nc = r + dr, c + dc
        if 0 <= nr < side and 0 <= nc < side and grid[nr, nc] != WALL:
            yield nr, nc


def bfs(grid: np.ndarray, start: tuple[int, int]) -> tuple[dict, dict]:
    """Distances from `start` over non-wall cells, and the number of shortest paths (capped at 2)."""
    dist, count = {start: 0}, {start: 1}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        for nb in _neighbours(grid, *cell):
            if nb not in dist:
                dist[nb] = dist[cell] + 1
                count[nb] = count[cell]
                queue.append(nb)
            elif dist[nb] == dist[cell] + 1:
                count[nb] = min(2, count[nb] + count[cell])
    return dist, count


def is_perfect(grid: np.ndarray) -> bool:
    """True when the open cells form a tree: connected, and edges = cells - 1."""
    cells = list(zip(*np.nonzero(grid != WALL)))
    if not cells:
        return False
    edges = sum(1 for r, c in cells for _ in _neighbours(grid, r, c)) // 2
    dist, _ = bfs(grid, (int(cells[0][0]), int(cells[0][1])))
    return len(dist) == len(cells) and edges == len(cells) - 1


def shortest_path(grid: np.ndarray, start, goal, dist: dict) -> list[tuple[int, int]]:
    """Cells from goal back to start along decreasing distance (one shortest path)."""
    path = [goal]
    while path[-1] != start:
        r, c = path[-1]
        path.append(next(nb for nb in _neighbours(grid, r, c) if dist.get(nb) == dist[(r, c)] - 1))
    return path[::-1]


def generate_maze(side: int, rng: random.Random, min_path: int, max_path: int, max_tries: int = 100):
    """One (input, label) pair of (side*side,) uint8 tokens with a unique shortest path in range."""
    for _ in range(max_tries):
        grid = carve_maze(side, rng)
        lattice = [(int(r), int(c)) for r, c in zip(*np.nonzero(grid == OPEN)) if r % 2 and c % 2]
        start = rng.choice(lattice)
        dist, count = bfs(grid, start)
        goals = [g for g in lattice if min_path <= dist[g] <= max_path and count[g] == 1]
        if not goals:
            continue
        goal = rng.choice(goals)
        path = shortest_path(grid, start, goal, dist)
        inputs = grid.copy()
        inputs[start], inputs[goal] = START, GOAL
        labels = inputs.copy()
        for cell in path[1:-1]:
            labels[cell] = PATH
        return inputs.reshape(-1), labels.reshape(-1)
    raise UserError(f"no {side}x{side} maze with a path of {min_path}..{max_path} steps in {max_tries} tries")


def build_maze(spec: dict[str, Any], progress: bool = False):
    """Train and test splits of distinct mazes (no input appears twice, in or across splits)."""
    side, rng = spec["board_size"], random.Random(spec["seed"])
    seen: set[bytes] = set()
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        n = spec[f"n_{split}"]
        xs, ys = [], []
        with tqdm(total=n, desc=f"maze{side} {split}", disable=not progress or None, leave=False) as bar:
            while len(xs) < n:
                x, y = generate_maze(side, rng, spec["min_path"], spec["max_path"])
                if x.tobytes() in seen:
                    continue
                seen.add(x.tobytes())
                xs.append(x)
                ys.append(y)
                bar.update(1)
        arrays[f"{split}_inputs"], arrays[f"{split}_labels"] = np.stack(xs), np.stack(ys)
    info = {"task": "maze", "board_size": side, "vocab_size": VOCAB_SIZE, "seq_len": side * side}
    return arrays, info


# --------------------------------------------------------------------------------------------
# Text and the public CSV format


def to_text(tokens: np.ndarray) -> str:
    """Tokens 1..5 -> the `# SGo` string (row-major, no newlines)."""
    return "".join(CHARS[t - 1] for t in np.asarray(tokens).reshape(-1).tolist())


def from_text(text: str) -> np.ndarray:
    """The `# SGo` string -> uint8 tokens; BadRow for other characters."""
    try:
        return np.array([_TO_TOKEN[ch] for ch in text], dtype=np.uint8)
    except KeyError as exc:
        raise BadRow(f"character {exc.args[0]!r} is not one of '{CHARS}'") from None


def check_pair(question: str, answer: str) -> None:
    """BadRow unless (question, answer) is a square maze and its S-to-G path (simple, on open cells)."""
    n = len(question)
    side = int(round(n ** 0.5))
    if side * side != n or side < 2:
        raise BadRow(f"question must have a square length, but has {n} characters")
    if len(answer) != n:
        raise BadRow(f"answer must have {n} characters like the question, but has {len(answer)}")
    q, a = from_text(question).reshape(side, side), from_text(answer).reshape(side, side)
    if (q == PATH).any():
        raise BadRow("question must not contain path cells 'o'")
    if (q == START).sum() != 1 or (q == GOAL).sum() != 1:
        raise BadRow("question must hold exactly one S and one G")
    on_path = a == PATH
    if ((a != q) & ~(on_path & (q == OPEN))).any():
        raise BadRow("answer disagrees with the question outside the open cells marked 'o'")
    route = on_path | (q == START) | (q == GOAL)
    for r, c in zip(*np.nonzero(route)):
        deg = sum(1 for nr, nc in _neighbours(q, r, c) if route[nr, nc])
        want = 1 if q[r, c] in (START, GOAL) else 2
        if deg != want:
            raise BadRow(f"answer's path is not a simple S-to-G path at row {r}, column {c}")
    dist, _ = bfs(np.where(route, OPEN, WALL).astype(np.uint8), tuple(map(int, np.argwhere(q == START)[0])))
    if len(dist) != int(route.sum()):
        raise BadRow("answer's path does not connect S to G (or has stray 'o' cells)")


def load_maze_csv(path, skip_bad: bool = False, progress: bool = False) -> dict[str, Any]:
    """Rows of a public maze CSV: {'inputs', 'labels' (N, side*side) uint8, 'ratings', 'board_size', 'n_skipped'}."""
    from trm_core.data.csvio import read_csv

    report = read_csv(path, check_pair, skip_bad=skip_bad, progress=progress)
    sides = {len(r.question) for r in report.rows}
    if len(sides) > 1:
        raise UserError(f"{path}: mazes of several sizes ({sorted(sides)} cells) in one file")
    if not report.rows:
        raise UserError(f"{path}: no good rows ({report.n_skipped} skipped)")
    return {
        "inputs": np.stack([from_text(r.question) for r in report.rows]),
        "labels": np.stack([from_text(r.answer) for r in report.rows]),
        "ratings": np.array([r.rating for r in report.rows], dtype=np.int32),
        "board_size": int(round(sides.pop() ** 0.5)),
        "n_skipped": report.n_skipped,
    }


def maze_csv_spec(csv: str, test_csv: str, skip_bad: bool = False) -> dict[str, Any]:
    """Build spec of a dataset loaded from public maze CSV files (identified by their sha256)."""
    from pathlib import Path

    from trm_core.data.extreme import file_sha256

    for f in (csv, test_csv):
        if not Path(f).is_file():
            raise UserError(f"CSV file {f} does not exist")
    return {"task": "maze", "source": "csv", "csv_sha256": file_sha256(csv), "test_csv_sha256": file_sha256(test_csv),
            "skip_bad": skip_bad, "seed": None, "_csv": str(Path(csv).resolve()), "_test_csv": str(Path(test_csv).resolve())}


def build_maze_csv(spec: dict[str, Any], progress: bool = False):
    """Splits train and test from the two CSV files, as they are (no sampling)."""
    train = load_maze_csv(spec["_csv"], spec["skip_bad"], progress)
    test = load_maze_csv(spec["_test_csv"], spec["skip_bad"], progress)
    if train["board_size"] != test["board_size"]:
        raise UserError(f"train mazes are {train['board_size']} wide but test mazes {test['board_size']}")
    side = train["board_size"]
    arrays = {f"{name}_{k}": d[k] for name, d in (("train", train), ("test", test)) for k in ("inputs", "labels", "ratings")}
    info = {"task": "maze", "board_size": side, "vocab_size": VOCAB_SIZE, "seq_len": side * side,
            "skipped_rows": {"train_csv": train["n_skipped"], "test_csv": test["n_skipped"]}}
    return arrays, info
