"""Sudoku of side 4 (2x2 boxes), 6 (2x3 boxes: 2 rows x 3 columns) and 9 (3x3): solver, checks, generator.

Grids here are digit arrays: `np.ndarray[uint8]` of shape (size*size,) or (size, size), 0 = blank,
1..size = digits. `encode` / `decode` convert to and from the model's tokens
(PAD 0, blank 1, digit d -> d + 1; vocab size + 2).

The solver keeps a bitmask of candidate digits per cell and propagates naked singles (a cell with
one candidate removes it from its peers) and hidden singles (a digit with one place in a unit goes
there); when propagation stalls it branches on the open cell with fewest candidates. Its rating of
a puzzle is the number of such branchings ("guesses") during a search that counts solutions up to
2: 0 means naked + hidden singles solve it.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

import numpy as np

from trm_core.errors import UserError

BOX_SHAPES: dict[int, tuple[int, int]] = {4: (2, 2), 6: (2, 3), 9: (3, 3)}
"""Board side -> (box rows, box columns)."""

PAD, BLANK = 0, 1


@dataclass(frozen=True)
class Geometry:
    """Cells, units and peers of a board of side `size`; cells are numbered row-major."""

    size: int
    box_rows: int
    box_cols: int
    units: tuple[tuple[int, ...], ...]
    peers: tuple[tuple[int, ...], ...]
    cell_units: tuple[tuple[int, int, int], ...]  # (row, column, box) unit index of each cell
    full: int  # bitmask with one bit per digit: bit d-1 <-> digit d

    @property
    def n_cells(self) -> int:
        return self.size * self.size

    @property
    def vocab_size(self) -> int:
        return self.size + 2


@functools.lru_cache(maxsize=None)
def geometry(size: int) -> Geometry:
    """The Geometry of a board side in BOX_SHAPES; UserError for any other side."""
    if size not in BOX_SHAPES:
        raise UserError(f"sudoku size must be one of {sorted(BOX_SHAPES)}, but got size={size}")
    br, bc = BOX_SHAPES[size]
    rows = [tuple(r * size + c for c in range(size)) for r in range(size)]
    cols = [tuple(r * size + c for r in range(size)) for c in range(size)]
    boxes = [
        tuple((r0 + i) * size + (c0 + j) for i in range(br) for j in range(bc))
        for r0 in range(0, size, br)
        for c0 in range(0, size, bc)
    ]
    units = tuple(rows + cols + boxes)
    peers = tuple(
        tuple(sorted({p for u in units if cell in u for p in u} - {cell})) for cell in range(size * size)
    )
    cell_units = tuple(
        (cell // size, size + cell % size, 2 * size + (cell // size // br) * (size // bc) + (cell % size) // bc)
        for cell in range(size * size)
    )
    assert all(cell in units[k] for cell, ks in enumerate(cell_units) for k in ks)
    return Geometry(size, br, bc, units, peers, cell_units, (1 << size) - 1)


def size_of(n_cells: int) -> int:
    """Board side from a cell count (16 -> 4, 36 -> 6, 81 -> 9)."""
    for s in BOX_SHAPES:
        if s * s == n_cells:
            return s
    raise UserError(f"a sudoku has 16, 36 or 81 cells, but got {n_cells}")


# --------------------------------------------------------------------------------------------
# Encoding and checks


def encode(digits: np.ndarray) -> np.ndarray:
    """Digits (0 blank, 1..size) -> tokens (1 blank, d + 1), uint8, flattened."""
    return (np.asarray(digits, dtype=np.uint8).reshape(-1) + 1).astype(np.uint8)


def decode(tokens: np.ndarray) -> np.ndarray:
    """Tokens (1 blank, d + 1) -> digits (0 blank), uint8, flattened. PAD (0) is not allowed."""
    t = np.asarray(tokens, dtype=np.int64).reshape(-1)
    if (t < 1).any():
        raise ValueError("decode: PAD (0) tokens in a sudoku grid")
    return (t - 1).astype(np.uint8)


def _units_array(size: int) -> np.ndarray:
    return np.array(geometry(size).units, dtype=np.int64)  # (3*size, size)


def givens_consistent(puzzle: np.ndarray) -> bool:
    """True when every value is 0..size and no digit repeats in a row, column or box."""
    p = np.asarray(puzzle).reshape(-1).astype(np.int64)
    size = size_of(p.size)
    if p.min() < 0 or p.max() > size:
        return False
    for unit in _units_array(size):
        vals = p[unit]
        vals = vals[vals > 0]
        if len(np.unique(vals)) != len(vals):
            return False
    return True


def is_valid_solution(grid: np.ndarray) -> bool:
    """True when the grid is full and every row, column and box holds each digit once."""
    g = np.asarray(grid).reshape(-1).astype(np.int64)
    size = size_of(g.size)
    want = np.arange(1, size + 1)
    return bool((np.sort(g[_units_array(size)], axis=1) == want).all())


def agrees(puzzle: np.ndarray, solution: np.ndarray) -> bool:
    """True when the solution keeps every given of the puzzle."""
    p, s = np.asarray(puzzle).reshape(-1), np.asarray(solution).reshape(-1)
    given = p > 0
    return bool((p[given] == s[given]).all())


# --------------------------------------------------------------------------------------------
# Solver


def _propagate(cand: list[int], todo: list[int], geo: Geometry) -> bool:
    """Naked + hidden singles to a fixpoint, in place. `todo`: cells newly fixed. False on contradiction."""
    peers, units, full = geo.peers, geo.units, geo.full
    while True:
        while todo:
            i = todo.pop()
            v = cand[i]
            for p in peers[i]:
                m = cand[p]
                if m & v:
                    m &= ~v
                    if not m:
                        return False
                    cand[p] = m
                    if not m & (m - 1):
                        todo.append(p)
        for unit in units:
            once = twice = 0
            for i in unit:
                m = cand[i]
                twice |= once & m
                once |= m
            if once != full:
                return False
            only = once & ~twice
            if only:
                for i in unit:
                    m = cand[i] & only
                    if m:
                        if m & (m - 1):
                            return False
                        if cand[i] != m:
                            cand[i] = m
                            todo.append(i)
        if not todo:
            return True


def _eliminate_fixed(cand: list[int], geo: Geometry) -> list[int] | None:
    """Remove every fixed cell's digit from its open peers, in place, unit by unit (faster than
    peer by peer). Returns the open cells that became fixed, or None if two fixed peers clash."""
    used = []
    for unit in geo.units:
        seen = 0
        for i in unit:
            m = cand[i]
            if not m & (m - 1):
                if seen & m:
                    return None
                seen |= m
        used.append(seen)
    todo = []
    for i, (r, c, b) in enumerate(geo.cell_units):
        m = cand[i]
        if m & (m - 1):
            m &= ~(used[r] | used[c] | used[b])
            if not m:
                return None
            cand[i] = m
            if not m & (m - 1):
                todo.append(i)
    return todo


def _candidates(puzzle: np.ndarray, geo: Geometry) -> list[int]:
    """Initial candidate masks of a digit grid (a given: its bit; a blank: all digits)."""
    return [1 << (d - 1) if d else geo.full for d in np.asarray(puzzle).reshape(-1).tolist()]


class _Search:
    """Depth-first search over candidate masks; counts solutions up to `limit` and guesses made."""

    def __init__(self, geo: Geometry, limit: int, rng: random.Random | None = None):
        self.geo, self.limit, self.rng = geo, limit, rng
        self.count = 0
        self.guesses = 0
        self.first: list[int] | None = None

    def run(self, cand: list[int], todo: list[int] | None = None) -> None:
        """Search from `cand`; `todo`: cells fixed since the last propagation (None: a fresh grid)."""
        if todo is None:
            todo = _eliminate_fixed(cand, self.geo)
            if todo is None:
                return
        if not _propagate(cand, todo, self.geo):
            return
        best, best_n = -1, 99
        for i, m in enumerate(cand):
            if m & (m - 1):
                n = m.bit_count()
                if n < best_n:
                    best, best_n = i, n
                    if n == 2:
                        break
        if best < 0:
            self.count += 1
            if self.first is None:
                self.first = cand
            return
        self.guesses += 1
        m = cand[best]
        bits = [b for b in range(self.geo.size) if m >> b & 1]
        if self.rng is not None:
            self.rng.shuffle(bits)
        for b in bits:
            child = cand.copy()
            child[best] = 1 << b
            self.run(child, [best])
            if self.count >= self.limit:
                return


def _to_digits(cand: list[int]) -> np.ndarray:
    return np.array([m.bit_length() for m in cand], dtype=np.uint8)


@dataclass
class SolveResult:
    """n_solutions (capped at the search limit), the first solution found (or None), guesses made."""

    n_solutions: int
    solution: np.ndarray | None
    guesses: int


def solve(puzzle: np.ndarray, limit: int = 2, rng: random.Random | None = None) -> SolveResult:
    """Search a digit grid for up to `limit` solutions. `guesses` is the difficulty rating."""
    p = np.asarray(puzzle).reshape(-1)
    geo = geometry(size_of(p.size))
    if p.size and (p.min() < 0 or p.max() > geo.size):
        raise ValueError(f"sudoku digits must be 0..{geo.size}, but got {p.min()}..{p.max()}")
    search = _Search(geo, limit, rng)
    search.run(_candidates(p, geo))
    sol = None if search.first is None else _to_digits(search.first)
    return SolveResult(search.count, sol, search.guesses)


def count_solutions(puzzle: np.ndarray, limit: int = 2) -> int:
    """Number of solutions, counting stops at `limit` (2: enough to tell unique from not)."""
    return solve(puzzle, limit).n_solutions


def rate(puzzle: np.ndarray) -> int:
    """Guesses the solver needs to solve the puzzle and prove it unique (0: singles suffice)."""
    return solve(puzzle, limit=2).guesses


# --------------------------------------------------------------------------------------------
# Generator


def random_solution(size: int, rng: random.Random) -> np.ndarray:
    """A uniformly-seeded random full grid: solve the empty board with shuffled digit order."""
    res = solve(np.zeros(size * size, dtype=np.uint8), limit=1, rng=rng)
    assert res.solution is not None
    return res.solution


def _has_other_solution(cand: list[int], cell: int, value_bit: int, geo: Geometry) -> bool:
    """Does the puzzle with candidates `cand` have a solution whose `cell` is not `value_bit`?"""
    cand = cand.copy()
    cand[cell] = geo.full & ~value_bit
    search = _Search(geo, limit=1)
    search.run(cand)
    return search.count > 0


def carve(solution: np.ndarray, rng: random.Random, givens: int = 0) -> np.ndarray:
    """Remove digits of a full grid in random order while the puzzle stays unique.

    Stops at `givens` givens when > 0 (the result may have more if no more digit can go),
    otherwise at a minimal puzzle (no given can be removed without losing uniqueness).
    """
    sol = np.asarray(solution, dtype=np.uint8).reshape(-1)
    geo = geometry(size_of(sol.size))
    cand = [1 << (d - 1) for d in sol.tolist()]
    order = list(range(sol.size))
    rng.shuffle(order)
    n_given = sol.size
    for cell in order:
        if givens and n_given <= givens:
            break
        bit = cand[cell]
        if n_given > sol.size - 3 or not _has_other_solution(cand, cell, bit, geo):
            # Up to 3 removals can never break uniqueness (an ambiguity needs 4 cells).
            cand[cell] = geo.full
            n_given -= 1
    return np.array([m.bit_length() if not m & (m - 1) else 0 for m in cand], dtype=np.uint8)


def generate_puzzle(
    size: int, rng: random.Random, givens: int = 0, min_rating: int = 0, max_tries: int = 1000
) -> tuple[np.ndarray, np.ndarray, int]:
    """One unique-solution puzzle: (puzzle digits, solution digits, rating).

    `givens` > 0 asks for exactly that many givens; `min_rating` for at least that many guesses.
    Raises UserError when `max_tries` full grids gave no such puzzle.
    """
    geo = geometry(size)
    if givens and not 0 < givens <= geo.n_cells:
        raise UserError(f"givens must be in 1..{geo.n_cells} for size {size}, but got givens={givens}")
    for _ in range(max_tries):
        sol = random_solution(size, rng)
        puzzle = carve(sol, rng, givens)
        if givens and int((puzzle > 0).sum()) != givens:
            continue
        rating = rate(puzzle)
        if rating >= min_rating:
            return puzzle, sol, rating
    raise UserError(
        f"no {size}x{size} puzzle with givens={givens or 'minimal'} and min_rating={min_rating} "
        f"found in {max_tries} tries; ask for more givens or a lower rating"
    )
