"""The public puzzle CSV format (`source,question,answer,rating`): reading with per-row checks, writing.

Readers report a bad row as one line naming the file, the line number and what is wrong
(`UserError`), or, with `skip_bad`, skip it and count it.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from trm_core.errors import UserError

COLUMNS = ("source", "question", "answer", "rating")


class BadRow(ValueError):
    """Raised by a row check with what is wrong (the reader adds file and line)."""


@dataclass
class CsvRow:
    line: int
    source: str
    question: str
    answer: str
    rating: int


@dataclass
class ReadReport:
    """Rows kept and rows skipped (with the first few reasons) of one CSV file."""

    path: Path
    rows: list[CsvRow] = field(default_factory=list)
    n_skipped: int = 0
    skipped_examples: list[str] = field(default_factory=list)

    def skip(self, message: str) -> None:
        self.n_skipped += 1
        if len(self.skipped_examples) < 5:
            self.skipped_examples.append(message)


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV file with the public header; UserError for header problems."""
    try:
        f = open(path, newline="", encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    with f:
        reader = csv.DictReader(f)
        try:
            header = reader.fieldnames
        except (csv.Error, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: line 1: cannot parse the header: {exc}") from None
        if not header:
            raise UserError(f"{path} is empty: expected a header line '{','.join(COLUMNS)}'")
        missing = [c for c in ("question", "answer") if c not in header]
        if missing:
            raise UserError(f"{path}: line 1: missing column(s) {', '.join(missing)}; the header must be "
                            f"'{','.join(COLUMNS)}', but is '{','.join(header)}'")
        try:
            for row in reader:
                yield reader.line_num, row
        except (csv.Error, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: line {reader.line_num + 1}: cannot parse: {exc}") from None


def _rating(text: str | None) -> int:
    if text is None or text.strip() == "":
        return 0
    try:
        value = float(text)
    except ValueError:
        raise BadRow(f"rating must be a number, but is {text!r}") from None
    if not value.is_integer() or value < 0:
        raise BadRow(f"rating must be a whole number >= 0, but is {text!r}")
    return int(value)


def read_csv(path: str | os.PathLike, check: Callable[[str, str], None], skip_bad: bool = False,
             keep: Callable[[CsvRow], bool] | None = None, progress: bool = False,
             collect: Callable[[CsvRow], None] | None = None) -> ReadReport:
    """Read and check every row: `check(question, answer)` raises BadRow; `keep` filters good rows,
    which go to `collect` when given (to store them compactly), else to `report.rows`.

    A bad row raises UserError('{file}: line {n}: {what}') unless `skip_bad`, then it is counted.
    """
    from tqdm import tqdm

    path = Path(path)
    report = ReadReport(path)
    n_rows = 0
    for line, row in tqdm(_rows(path), desc=path.name, unit=" rows", disable=not progress or None, leave=False):
        n_rows += 1
        try:
            if None in row:
                raise BadRow("the row has more fields than the header")
            if None in row.values():
                raise BadRow("the row has fewer fields than the header")
            q, a = row["question"], row["answer"]
            check(q, a)
            item = CsvRow(line, row.get("source") or "", q, a, _rating(row.get("rating")))
        except BadRow as exc:
            message = f"{path}: line {line}: {exc}"
            if not skip_bad:
                raise UserError(message) from None
            report.skip(message)
            continue
        if keep is None or keep(item):
            (collect or report.rows.append)(item)
    if n_rows == 0:
        raise UserError(f"{path} has a header but no rows")
    return report


def write_csv(path: str | os.PathLike | None, rows: Iterable[tuple[str, str, str, int]]) -> None:
    """Write (source, question, answer, rating) rows with the public header; None writes to stdout."""
    import sys

    f = sys.stdout if path is None else open(path, "w", newline="", encoding="utf-8")
    try:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(COLUMNS)
        w.writerows(rows)
    finally:
        if path is not None:
            f.close()
