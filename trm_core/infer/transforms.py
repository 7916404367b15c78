"""Input transforms of ensemble members: explicit maps with inverses (`TRANSFORMS` registry).

A member sees its puzzle through one transform and its answer is mapped back before any rule
scores it. A transform is a position permutation `positions` (cells,) and a token map `tokens`
(vocab,), in trm_core.data.augment's convention: `out[k] = tokens[x[positions[k]]]`. Both are
permutations, so the inverse is exact: `x[j] = tokens_inv[out[positions_inv[j]]]`, and a
distribution over tokens maps back by `probs_orig[j, v] = probs[positions_inv[j], tokens[v]]`.

Sudoku (side N, boxes r x c): identity, transpose (square boxes only), bands (shuffle the bands,
the rows inside each band, the stacks and the columns inside each stack), digits (a random
relabelling of 1..N), cycle (digit d -> d + k mod N for the k-th cycle member, Ren & Liu's
cyclic relabellings), augment (all of them at random: the trainer's augmentation).
Maze (square side S): the 8 symmetries of the square by name, or `dihedral` (a random non-identity
one). Random transforms draw from one seeded generator, in list order.

`--transforms N` gives N members: identity + N-1 random `augment`s (Sudoku), or the first N of
the 8 dihedral maps in a fixed order (maze). `--transforms identity,digits,transpose` names them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from trm_core.data.augment import _grouped_perm, dihedral_table, sudoku_positions, sudoku_token_maps
from trm_core.data.sudoku import BOX_SHAPES
from trm_core.errors import UserError
from trm_core.registry import Registry
from trm_core.rng import derive_seed


@dataclass(frozen=True)
class Task:
    """What a transform needs to know about the puzzles."""

    kind: str
    """sudoku | maze (sudoku-extreme is a 9x9 sudoku)."""
    side: int
    vocab: int

    @staticmethod
    def from_meta(meta: dict) -> "Task":
        kind = "maze" if meta["task"] == "maze" else "sudoku"
        return Task(kind, int(meta["board_size"]), int(meta["vocab_size"]))

    @property
    def n_cells(self) -> int:
        return self.side * self.side

    def describe(self) -> str:
        return f"{self.kind} {self.side}x{self.side}"


@dataclass(frozen=True)
class Transform:
    name: str
    positions: np.ndarray
    """(cells,) gather indices: the member's cell k is the puzzle's cell positions[k]."""
    tokens: np.ndarray
    """(vocab,) token map: puzzle token v is the member's token tokens[v]."""

    def apply(self, x: np.ndarray) -> np.ndarray:
        """(n, cells) puzzle tokens -> what the member sees."""
        return self.tokens[np.asarray(x)[:, self.positions]]

    def invert(self, y: np.ndarray) -> np.ndarray:
        """(n, cells) member tokens -> puzzle tokens (the inverse of `apply`)."""
        return self.tokens_inv[np.asarray(y)[:, self.positions_inv]]

    @property
    def positions_inv(self) -> np.ndarray:
        return np.argsort(self.positions)

    @property
    def tokens_inv(self) -> np.ndarray:
        return np.argsort(self.tokens)


# build(task, rng, occurrence) -> (positions, tokens); occurrence counts this name's uses (1, 2, ...)
Builder = Callable[[Task, np.random.Generator, int], tuple[np.ndarray, np.ndarray]]
TRANSFORMS: Registry[Builder] = Registry("transform", "--transforms")
_APPLIES: dict[str, Callable[[Task], str]] = {}
"""name -> check(task) returning '' when the transform applies, else why not."""


def _register(name: str, applies: Callable[[Task], str]):
    def add(fn: Builder) -> Builder:
        _APPLIES[name] = applies
        return TRANSFORMS.register(name)(fn)

    return add


def _sudoku_only(task: Task) -> str:
    return "" if task.kind == "sudoku" else "it applies to sudoku only"


def _maze_only(task: Task) -> str:
    return "" if task.kind == "maze" else "it applies to maze only"


def _square_boxes(task: Task) -> str:
    if task.kind == "maze":
        return ""
    r, c = BOX_SHAPES[task.side]
    return "" if r == c else f"the {r}x{c} boxes would become {c}x{r}"


def _same_tokens(task: Task) -> np.ndarray:
    return np.arange(task.vocab)


def _identity_positions(task: Task) -> np.ndarray:
    return np.arange(task.n_cells)


@_register("identity", lambda task: "")
def identity(task: Task, rng: np.random.Generator, occurrence: int):
    return _identity_positions(task), _same_tokens(task)


@_register("transpose", _square_boxes)
def transpose(task: Task, rng: np.random.Generator, occurrence: int):
    return _identity_positions(task).reshape(task.side, task.side).T.reshape(-1), _same_tokens(task)


@_register("bands", _sudoku_only)
def bands(task: Task, rng: np.random.Generator, occurrence: int):
    r, c = BOX_SHAPES[task.side]
    rows, cols = _grouped_perm(1, task.side, r, rng)[0], _grouped_perm(1, task.side, c, rng)[0]
    return (rows[:, None] * task.side + cols[None, :]).reshape(-1), _same_tokens(task)


@_register("digits", _sudoku_only)
def digits(task: Task, rng: np.random.Generator, occurrence: int):
    return _identity_positions(task), sudoku_token_maps(1, task.side, rng)[0]


@_register("cycle", _sudoku_only)
def cycle(task: Task, rng: np.random.Generator, occurrence: int):
    shift = occurrence % task.side
    return _identity_positions(task), np.concatenate([[0, 1], (np.arange(task.side) + shift) % task.side + 2])


@_register("augment", _sudoku_only)
def augment(task: Task, rng: np.random.Generator, occurrence: int):
    return sudoku_positions(1, task.side, rng)[0], sudoku_token_maps(1, task.side, rng)[0]


# the 8 symmetries in trm_core.data.augment.dihedral_table's order
DIHEDRAL = ("identity", "transpose", "rot90", "flip_lr", "rot180", "antitranspose", "rot270", "flip_ud")


def _dihedral(index: int) -> Builder:
    def build(task: Task, rng: np.random.Generator, occurrence: int):
        return np.array(dihedral_table(task.side)[index]), _same_tokens(task)

    build.__doc__ = f"Maze symmetry {DIHEDRAL[index]} (row {index} of the dihedral table)."
    return build


for _i, _name in enumerate(DIHEDRAL):
    if _name not in ("identity", "transpose"):
        _register(_name, _maze_only)(_dihedral(_i))


@_register("dihedral", _maze_only)
def dihedral(task: Task, rng: np.random.Generator, occurrence: int):
    return np.array(dihedral_table(task.side)[rng.integers(1, 8)]), _same_tokens(task)


def parse_names(spec: str, task: Task) -> list[str]:
    """`--transforms` as member names: a count N or a comma list of names."""
    text = str(spec).strip()
    if text.isdigit() or (text.startswith("-") and text[1:].isdigit()):
        n = int(text)
        if n < 1:
            raise UserError(f"--transforms must be >= 1 (a count) or a comma list of names, but got {n}")
        if task.kind == "maze":
            if n > len(DIHEDRAL):
                raise UserError(f"--transforms must be <= 8 for a maze (its 8 symmetries), but got {n}")
            return list(DIHEDRAL[:n])
        return ["identity"] + ["augment"] * (n - 1)
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise UserError(f"--transforms must be a count or a comma list of names, but got '{spec}'")
    for name in names:
        TRANSFORMS.get(name)
        why = _APPLIES[name](task)
        if why:
            raise UserError(f"--transforms: '{name}' does not apply to {task.describe()}: {why}")
    return names


def build_transforms(spec: str, task: Task, seed: int = 0) -> list[Transform]:
    """The members' transforms, random ones drawn from one generator seeded by (seed, 'infer/transforms')."""
    rng = np.random.default_rng(derive_seed(seed, "infer/transforms"))
    seen: dict[str, int] = {}
    out = []
    for name in parse_names(spec, task):
        seen[name] = seen.get(name, 0) + 1
        positions, tokens = TRANSFORMS.get(name)(task, rng, seen[name])
        out.append(Transform(name, np.asarray(positions, dtype=np.int64), np.asarray(tokens, dtype=np.int64)))
    return out


def applicable(task: Task) -> list[str]:
    """The transform names that apply to a task."""
    return [name for name in TRANSFORMS.names() if not _APPLIES[name](task)]
