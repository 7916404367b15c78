"""`python -m trm_core data {build,show,export,download}`: build, inspect and export dataset directories.

    data build sudoku --size {4,6,9} --train N --test N [--min-rating R] [--givens G] --seed S --out DIR
    data build sudoku-extreme --csv FILE [--test-csv FILE] [--subsample 1000] [--min-rating R]
                              [--skip-bad] [--check-unique] --seed S --out DIR
    data build maze --size 30 --train N --test N [--min-path L --max-path L] --seed S --out DIR
    data build maze-csv --csv FILE --test-csv FILE [--skip-bad] --out DIR
    data show DIR [--split test] [--n 2]
    data export DIR --split test --format csv [--out FILE]
    data download sudoku-extreme --dir DIR      (needs huggingface_hub and a network)

An --out that already holds the same spec is reused; one holding another dataset is refused.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from trm_core.data import builders, store
from trm_core.errors import OneLineArgumentParser


def _build(args: argparse.Namespace) -> int:
    if args.task == "sudoku":
        spec = builders.sudoku_spec(args.size, args.train, args.test, args.seed, args.min_rating, args.givens)
    elif args.task == "maze":
        spec = builders.maze_spec(args.size, args.train, args.test, args.seed, args.min_path, args.max_path)
    elif args.task == "maze-csv":
        from trm_core.data.maze import maze_csv_spec

        spec = maze_csv_spec(args.csv, args.test_csv, args.skip_bad)
    else:
        from trm_core.data.extreme import extreme_spec

        spec = extreme_spec(args.csv, args.seed, args.test_csv, args.subsample, args.min_rating,
                            args.skip_bad, args.check_unique)
    t0 = time.perf_counter()
    path, reused = store.build_at(args.out, spec, builders.builder_for(spec), progress=True)
    meta = store.read_meta(path)
    sizes = ", ".join(f"{k} {v}" for k, v in meta["splits"].items())
    if reused:
        print(f"{path} already holds this dataset (spec {meta['spec_hash']}); reusing it ({sizes})")
    else:
        print(f"built {meta['task']} {meta['board_size']}x{meta['board_size']} in {path} "
              f"({sizes}) in {time.perf_counter() - t0:.1f}s, content {meta['content_hash'][:16]}")
        skipped = meta.get("skipped_rows")
        if skipped and any(skipped.values()):
            print(f"skipped bad rows: {skipped}")
    return 0


def draw(tokens: np.ndarray, task: str, side: int) -> str:
    """A board as text: Sudoku with box lines and '.' for blanks, maze in its `# SGo` characters."""
    from trm_core.data import maze, sudoku

    t = np.asarray(tokens).reshape(side, side)
    if task == "maze":
        return "\n".join(maze.to_text(row) for row in t)
    br, bc = sudoku.BOX_SHAPES[side]
    lines = []
    for r in range(side):
        if r and r % br == 0:
            lines.append("-+-".join(["-" * (2 * bc - 1)] * (side // bc)))
        cells = ["." if v <= 1 else str(v - 1) for v in t[r].tolist()]
        lines.append(" | ".join(" ".join(cells[c : c + bc]) for c in range(0, side, bc)))
    return "\n".join(lines)


def _show(args: argparse.Namespace) -> int:
    ds = store.load_dataset(args.dir, verify=True)
    m = ds.meta
    print(f"{args.dir}: {m['task']} {m['board_size']}x{m['board_size']}, vocab {m['vocab_size']}, "
          f"seq_len {m['seq_len']}, seed {m['seed']}")
    for split, n in m["splits"].items():
        r = ds.ratings(split)
        extra = f", rating mean {r.mean():.2f} min {r.min()} max {r.max()}" if r is not None and len(r) else ""
        print(f"  {split}: {n} puzzles{extra}")
    print(f"  generator: {{{', '.join(f'{k}: {v}' for k, v in m['generator'].items() if not k.startswith('_'))}}}")
    print(f"  content hash: {m['content_hash']}")
    split = args.split or ("train" if "train" in m["splits"] else next(iter(m["splits"])))
    for i in range(min(args.n, m["splits"][split])):
        print(f"\n{split}[{i}] puzzle:\n{draw(ds.inputs(split)[i], m['task'], m['board_size'])}")
        print(f"{split}[{i}] solution:\n{draw(ds.labels(split)[i], m['task'], m['board_size'])}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from trm_core.data import csvio, maze

    ds = store.load_dataset(args.dir)
    task = ds.meta["task"]
    x, y, r = ds.inputs(args.split), ds.labels(args.split), ds.ratings(args.split)
    if task == "maze":
        to_text = maze.to_text
    else:
        table = np.array(list(".123456789ABCDEFGHIJKLMNOP"[: ds.meta["board_size"] + 1]))

        def to_text(row):
            return "".join(table[np.asarray(row, dtype=np.int64) - 1])

    source = f"{task}-{ds.meta['spec_hash']}" if "spec_hash" in ds.meta else task
    rows = ((source, to_text(x[i]), to_text(y[i]), int(r[i]) if r is not None else 0) for i in range(len(x)))
    try:
        csvio.write_csv(args.out, rows)
    except BrokenPipeError:  # `... | head`: the reader has all it wanted
        sys.stdout = open(os.devnull, "w")
        return 0
    if args.out:
        print(f"wrote {len(x)} rows to {args.out}", file=sys.stderr)
    return 0


def _download(args: argparse.Namespace) -> int:
    from trm_core.data.extreme import download

    train, test = download(args.dir)
    print(f"downloaded {train} and {test}")
    return 0


def register(subparsers) -> None:
    """Add the `data` command group to the top-level CLI's subparsers."""
    data = subparsers.add_parser("data", help="build, show and export puzzle datasets")
    sub = data.add_subparsers(dest="data_command", required=True, parser_class=OneLineArgumentParser)

    build = sub.add_parser("build", help="build a dataset directory")
    tasks = build.add_subparsers(dest="task", required=True, parser_class=OneLineArgumentParser)
    sd = tasks.add_parser("sudoku", help="generate unique-solution Sudoku (4x4, 6x6, 9x9)")
    sd.add_argument("--size", type=int, choices=(4, 6, 9), default=9)
    sd.add_argument("--givens", type=int, default=0, help="givens per puzzle (0: as few as uniqueness allows)")
    mz = tasks.add_parser("maze", help="generate Maze-Unique (perfect mazes, unique shortest path)")
    mz.add_argument("--size", type=int, default=30, help="grid side including walls")
    mz.add_argument("--min-path", type=int, default=0, help="min S-to-G steps (0: size)")
    mz.add_argument("--max-path", type=int, default=0, help="max S-to-G steps (0: size*size)")
    for p in (sd, mz):
        p.add_argument("--train", type=int, required=True, help="training puzzles")
        p.add_argument("--test", type=int, required=True, help="held-out puzzles")
    sd.add_argument("--min-rating", type=int, default=0, help="minimum solver guesses per puzzle")
    ex = tasks.add_parser("sudoku-extreme", help="load the public Sudoku-Extreme CSV")
    ex.add_argument("--csv", required=True, help="train.csv of the release")
    ex.add_argument("--test-csv", default="", help="test.csv (default: hold out rows of --csv)")
    ex.add_argument("--subsample", type=int, default=1000, help="training puzzles to keep (0: all)")
    ex.add_argument("--min-rating", type=int, default=0)
    ex.add_argument("--skip-bad", action="store_true", help="skip and count bad rows instead of stopping")
    ex.add_argument("--check-unique", action="store_true", help="also check every puzzle has one solution (slow)")
    mc = tasks.add_parser("maze-csv", help="load mazes in the public CSV format")
    mc.add_argument("--csv", required=True, help="training mazes")
    mc.add_argument("--test-csv", required=True, help="held-out mazes")
    mc.add_argument("--skip-bad", action="store_true", help="skip and count bad rows instead of stopping")
    for p in (sd, mz, ex, mc):
        if p is not mc:
            p.add_argument("--seed", type=int, default=0)
        p.add_argument("--out", required=True, help="dataset directory to create")
        p.set_defaults(func=_build)

    show = sub.add_parser("show", help="summary and a few boards of a dataset directory")
    show.add_argument("dir")
    show.add_argument("--split", default="")
    show.add_argument("--n", type=int, default=2, help="boards to draw")
    show.set_defaults(func=_show)

    export = sub.add_parser("export", help="write a split in the public CSV format")
    export.add_argument("dir")
    export.add_argument("--split", default="test")
    export.add_argument("--format", choices=("csv",), default="csv")
    export.add_argument("--out", default=None, help="file to write (default: stdout)")
    export.set_defaults(func=_export)

    dl = sub.add_parser("download", help="download the public Sudoku-Extreme CSVs (needs a network)")
    dl.add_argument("dataset", choices=("sudoku-extreme",))
    dl.add_argument("--dir", default="data/sudoku-extreme")
    dl.set_defaults(func=_download)


def main(argv=None) -> int:
    """Run only the data commands (`python -m trm_core.data.cli build ...`)."""
    parser = OneLineArgumentParser(prog="python -m trm_core.data.cli")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineArgumentParser)
    register(sub)
    args = parser.parse_args(["data", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args) or 0)


if __name__ == "__main__":
    from trm_core.errors import run_cli

    sys.exit(run_cli(main))
