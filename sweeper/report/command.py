"""`python -m sweeper report NAME [B]`: one sweep's report (report.py), or a comparison of two sides
(compare.py); prints the head of the Markdown and where everything was written."""

from __future__ import annotations

import sys
from pathlib import Path

from trm_core.errors import UserError

from sweeper.report import data as rd
from sweeper.report.compare import make_comparison
from sweeper.report.render import Heading, to_markdown
from sweeper.report.report import make_report

FORMATS = ("md", "html")


def parse_formats(text: str) -> list[str]:
    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if not formats or bad:
        raise UserError(f"--format must be md, html or md,html, but got {text!r}")
    return formats


def report_command(args, out=None) -> int:
    """`python -m sweeper report NAME` or `report A B`."""
    out = out or sys.stdout
    formats = parse_formats(args.format)
    if args.seed < 0:
        raise UserError(f"--seed must be an integer >= 0, but got {args.seed}")
    out_dir = Path(args.out).resolve() if args.out else None
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"--out {args.out}: must be a folder we can write, but {exc.strerror.lower()}") from None
    if len(args.sweeps) > 2:
        raise UserError(f"report takes one sweep, or two sides to compare, but got {len(args.sweeps)}: {' '.join(args.sweeps)}")
    if len(args.sweeps) == 2:
        result = make_comparison(*args.sweeps, out_dir, formats, storage=args.storage, metric=args.metric,
                                 seed=args.seed, aim=not args.no_aim)
        print(result["markdown"].split("\n## Plots")[0].rstrip(), file=out)
    else:
        sweep = rd.load(args.sweeps[0], args.storage, args.metric)
        result = make_report(sweep, out_dir or sweep.dir / "report", formats, seed=args.seed, aim=not args.no_aim)
        print(to_markdown(result["blocks"][:_first_heading(result["blocks"], 2, 2)], result["dir"]).rstrip(), file=out)
    for kind, path in result["docs"].items():
        print(f"{kind}: {path}", file=out)
    print(f"tables: {', '.join(p.name for p in result['exports'])} in {result['dir']}", file=out)
    for line in result["aim_lines"]:
        print(line, file=out)
    return 0


def _first_heading(blocks: list, level: int, nth: int) -> int:
    """Index of the nth heading of `level` (the end of what the terminal shows), or len(blocks)."""
    seen = 0
    for i, b in enumerate(blocks):
        if isinstance(b, Heading) and b.level == level:
            seen += 1
            if seen == nth:
                return i
    return len(blocks)
