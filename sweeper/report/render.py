"""A report as a list of blocks, rendered to Markdown (images as relative links) or to one
self-contained HTML file (images embedded as base64 PNG, no scripts, no external resources).

Blocks: Heading(level, text), Para(text), Table(header, rows), Image(path, alt).
"""

from __future__ import annotations

import base64
import html
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, Union


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Para:
    text: str


@dataclass
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[str]]


@dataclass
class Image:
    path: Path
    alt: str


Block = Union[Heading, Para, Table, Image]
NA = "n/a"


def fmt(v: Any, digits: int = 4) -> str:
    """Numbers to `digits` significant digits (thousands separated from 10,000, exponent from 1e9); NaN -> n/a."""
    if v is None:
        return NA
    if isinstance(v, (bool, str)):
        return str(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(f):
        return NA
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    if abs(f) >= 1e9:
        return f"{f:.4g}"  # FLOPs: 1.93e+11, not twelve digits
    if f.is_integer() and abs(f) < 1e15:
        return f"{int(f):,}" if abs(f) >= 10_000 else str(int(f))
    return f"{f:,.0f}" if abs(f) >= 10_000 else f"{f:.{digits}g}"


def pm(mean: float, std: float, n: int | None = None) -> str:
    """'0.9531 ± 0.0062 (4)'; std n/a with one seed."""
    text = f"{fmt(mean)} ± {fmt(std)}"
    return text + (f" ({n})" if n is not None else "")


def ci(low: float, high: float) -> str:
    return NA if math.isnan(low) else f"[{fmt(low)}, {fmt(high)}]"


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: Sequence[Block], base: Path) -> str:
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {b.text}")
        elif isinstance(b, Para):
            out.append(b.text)
        elif isinstance(b, Table):
            out.append("| " + " | ".join(map(_md_cell, b.header)) + " |")
            out.append("|" + "|".join("---" for _ in b.header) + "|")
            out += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in b.rows]
        elif isinstance(b, Image):
            out.append(f"![{b.alt}]({Path(os.path.relpath(b.path, base)).as_posix()})")  # ../ for an ensemble's plots
        out.append("")
    return "\n".join(out)


_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.45; padding: 0 1em; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.86em; display: block; max-width: 100%;
        overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.55em; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.4em 0 1em; }
code { background: #f6f6f6; padding: 0 0.2em; }
"""


def _inline(text: str) -> str:
    """Escape, then render `code` spans (the only Markdown our paragraphs use)."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def to_html(blocks: Sequence[Block], title: str) -> str:
    body: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{_inline(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            body.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{_inline(str(h))}</th>" for h in b.header)
            rows = "".join("<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in row) + "</tr>" for row in b.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(b, Image):
            data = base64.b64encode(b.path.read_bytes()).decode()
            body.append(f'<img src="data:image/png;base64,{data}" alt="{html.escape(b.alt)}">')
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
