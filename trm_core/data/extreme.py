"""The public Sudoku-Extreme release (`sapientinc/sudoku-extreme`): load, check, subsample, download.

Files `train.csv` / `test.csv` have columns `source,question,answer,rating`: 81-character strings,
`.` (or `0`) for blanks, rating = a solver's backtrack count. Every row is checked (length,
characters, the answer is a valid grid, it keeps the givens, and with `check_unique` the puzzle has
exactly one solution, which costs a solver call per row).

A built dataset has three splits: `train` (a seeded subsample, the usual 1,000), `test` (every
test row; without a test file, held-out rows of the train file) and `lite` (the 2,048-puzzle
"Sudoku-Lite" evaluation subset, a seeded subsample of `test`).
"""

from __future__ import annotations

import hashlib
import operator
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trm_core.data import sudoku
from trm_core.data.csvio import BadRow, CsvRow, read_csv
from trm_core.errors import UserError

N_LITE = 2048
HF_REPO = "sapientinc/sudoku-extreme"
_DIGITS = set("123456789")
_QCHARS = _DIGITS | {".", "0"}
_UNITS = sudoku.geometry(9).units
_UNIT_GETTERS = [operator.itemgetter(*u) for u in _UNITS]
_GIVEN_MASK = bytes.maketrans(b"0123456789.", b"\x00" + b"\xff" * 9 + b"\x00")  # given digit -> 0xff


def check_pair(question: str, answer: str) -> None:
    """BadRow saying what is wrong unless (question, answer) is a 9x9 puzzle and its solution."""
    if len(question) != 81:
        raise BadRow(f"question must have 81 characters, but has {len(question)}")
    if len(answer) != 81:
        raise BadRow(f"answer must have 81 characters, but has {len(answer)}")
    bad = set(question) - _QCHARS
    if bad:
        raise BadRow(f"question has character(s) {''.join(sorted(bad))!r}; allowed are 1-9 and '.'")
    bad = set(answer) - _DIGITS
    if bad:
        raise BadRow(f"answer has character(s) {''.join(sorted(bad))!r}; allowed are 1-9")
    for k, unit in enumerate(_UNIT_GETTERS):
        if len(set(unit(answer))) != 9:
            kind = ("row", "column", "box")[k // 9]
            raise BadRow(f"answer is not a valid grid: {kind} {k % 9 + 1} repeats a digit")
    qb, ab = question.encode(), answer.encode()
    # fast path: (q xor a) must be 0 wherever q holds a given digit
    if (int.from_bytes(qb, "big") ^ int.from_bytes(ab, "big")) & int.from_bytes(qb.translate(_GIVEN_MASK), "big"):
        i = next(i for i, (q, a) in enumerate(zip(question, answer)) if q in _DIGITS and q != a)
        raise BadRow(f"answer disagrees with the givens at row {i // 9 + 1}, column {i % 9 + 1} "
                     f"({question[i]} vs {answer[i]})")


def _check_unique(question: str, answer: str) -> None:
    check_pair(question, answer)
    n = sudoku.count_solutions(to_digits(question))
    if n != 1:
        raise BadRow("puzzle has more than one solution")


def to_digits(text: str) -> np.ndarray:
    """81-character string ('.' or '0' blank) -> (81,) uint8 digits, 0 blank."""
    return np.frombuffer(text.replace(".", "0").encode(), dtype=np.uint8) - ord("0")


def to_text(digits: np.ndarray) -> str:
    """(81,) digits -> string with '.' for blanks."""
    return "".join("." if d == 0 else str(d) for d in np.asarray(digits).reshape(-1).tolist())


@dataclass
class SudokuRows:
    """Good rows of a CSV file as arrays: inputs / labels (N, 81) tokens, ratings, lines; bad rows skipped."""

    inputs: np.ndarray
    labels: np.ndarray
    ratings: np.ndarray
    lines: np.ndarray
    n_skipped: int

    def __len__(self) -> int:
        return len(self.ratings)

    def take(self, idx: np.ndarray) -> "SudokuRows":
        return SudokuRows(self.inputs[idx], self.labels[idx], self.ratings[idx], self.lines[idx], self.n_skipped)

    def arrays(self, split: str) -> dict[str, np.ndarray]:
        return {f"{split}_inputs": self.inputs, f"{split}_labels": self.labels, f"{split}_ratings": self.ratings}


def load_csv(path: str | os.PathLike, min_rating: int = 0, skip_bad: bool = False, check_unique: bool = False,
             progress: bool = False) -> SudokuRows:
    """Good rows with rating >= min_rating, kept compactly (81 bytes per grid; the release has ~4M rows)."""
    questions, answers = bytearray(), bytearray()
    ratings, lines = [], []

    def collect(row: CsvRow) -> None:
        questions.extend(row.question.replace(".", "0").encode())
        answers.extend(row.answer.encode())
        ratings.append(row.rating)
        lines.append(row.line)

    report = read_csv(path, _check_unique if check_unique else check_pair, skip_bad=skip_bad,
                      keep=lambda r: r.rating >= min_rating, progress=progress, collect=collect)
    zero = ord("0")
    q = np.frombuffer(bytes(questions), dtype=np.uint8).reshape(-1, 81) - zero + 1  # tokens: blank 1, d -> d+1
    a = np.frombuffer(bytes(answers), dtype=np.uint8).reshape(-1, 81) - zero + 1
    return SudokuRows(q, a, np.array(ratings, dtype=np.int32), np.array(lines, dtype=np.int64), report.n_skipped)


def _subsample(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a seeded sample of min(k, n) of range(n); k <= 0 means all."""
    if k <= 0 or k >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=k, replace=False))


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def extreme_spec(csv: str, seed: int, test_csv: str = "", subsample: int = 1000, min_rating: int = 0,
                 skip_bad: bool = False, check_unique: bool = False, n_lite: int = N_LITE) -> dict[str, Any]:
    """Build spec: identified by the files' sha256 (keys starting with '_' are not hashed)."""
    for f in [csv] + ([test_csv] if test_csv else []):
        if not Path(f).is_file():
            raise UserError(f"CSV file {f} does not exist")
    if subsample < 0 or min_rating < 0 or n_lite < 1:
        raise UserError(f"need subsample >= 0, min_rating >= 0, n_lite >= 1, but got {subsample}, {min_rating}, {n_lite}")
    return {"task": "sudoku-extreme", "board_size": 9, "csv_sha256": file_sha256(csv),
            "test_csv_sha256": file_sha256(test_csv) if test_csv else "", "subsample": subsample,
            "n_lite": n_lite, "min_rating": min_rating, "skip_bad": skip_bad, "check_unique": check_unique,
            "seed": seed, "_csv": str(Path(csv).resolve()), "_test_csv": str(Path(test_csv).resolve()) if test_csv else ""}


def build_extreme(spec: dict[str, Any], progress: bool = False):
    """Splits train (subsample), test (test file, else held-out train rows) and lite (2,048 of test)."""
    rng = np.random.default_rng(spec["seed"])
    opts = dict(min_rating=spec["min_rating"], skip_bad=spec["skip_bad"], check_unique=spec["check_unique"],
                progress=progress)
    rows = load_csv(spec["_csv"], **opts)
    if not len(rows):
        raise UserError(f"{spec['_csv']}: no rows left with rating >= {spec['min_rating']}")
    train_idx = _subsample(len(rows), spec["subsample"], rng)
    train = rows.take(train_idx)
    if spec["_test_csv"]:
        test = load_csv(spec["_test_csv"], **opts)
    else:
        rest = rows.take(np.setdiff1d(np.arange(len(rows)), train_idx))
        test = rest.take(_subsample(len(rest), spec["n_lite"], rng))
        test.n_skipped = 0
    if not len(test):
        raise UserError("no test puzzles: give --test-csv or a train file with more rows than --subsample")
    lite = test.take(_subsample(len(test), spec["n_lite"], rng))
    arrays = {**train.arrays("train"), **test.arrays("test"), **lite.arrays("lite")}
    info = {"task": "sudoku-extreme", "board_size": 9, "vocab_size": 11, "seq_len": 81,
            "skipped_rows": {"train_csv": rows.n_skipped, "test_csv": test.n_skipped}}
    return arrays, info


def download(dest: str | os.PathLike) -> tuple[Path, Path]:
    """Fetch train.csv and test.csv of the public release into `dest` (needs huggingface_hub and a network)."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise UserError("downloading Sudoku-Extreme needs huggingface_hub: pip install 'trm-sweep[hub]'") from None
    out = []
    for name in ("train.csv", "test.csv"):
        try:
            out.append(Path(hf_hub_download(HF_REPO, name, repo_type="dataset", local_dir=str(dest))))
        except Exception as exc:  # network, auth, missing file: all are the user's to fix
            raise UserError(f"could not download {name} from {HF_REPO}: {type(exc).__name__}: {exc}") from None
    return out[0], out[1]
