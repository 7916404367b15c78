"""`python -m trm_core data ...` end to end in subprocesses: build (3 tasks), reuse, show, export, errors."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trm_core.data import extreme, store, sudoku

ROOT = Path(__file__).resolve().parents[3]


def run(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "trm_core", "data", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def assert_one_line_error(proc, *words):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_sudoku_build_reuse_refuse_show_export(tmp_path):
    out = tmp_path / "s4"
    p = run("build", "sudoku", "--size", 4, "--train", 6, "--test", 3, "--seed", 1, "--out", out, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "built sudoku 4x4" in p.stdout
    ds = store.load_dataset(out, verify=True)
    assert ds.meta["splits"] == {"train": 6, "test": 3}
    p = run("build", "sudoku", "--size", 4, "--train", 6, "--test", 3, "--seed", 1, "--out", out, cwd=tmp_path)
    assert p.returncode == 0 and "reusing" in p.stdout
    p = run("build", "sudoku", "--size", 4, "--train", 6, "--test", 3, "--seed", 2, "--out", out, cwd=tmp_path)
    assert_one_line_error(p, "another spec")
    p = run("show", out, cwd=tmp_path)
    assert p.returncode == 0 and "sudoku 4x4" in p.stdout and "train[0] puzzle" in p.stdout
    p = run("export", out, "--split", "test", "--format", "csv", "--out", tmp_path / "t.csv", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(open(tmp_path / "t.csv")))
    assert len(rows) == 3 and set(rows[0]) == {"source", "question", "answer", "rating"}
    for r, label in zip(rows, ds.labels("test")):
        q = [0 if c == "." else int(c) for c in r["question"]]
        a = [int(c) for c in r["answer"]]
        assert sudoku.count_solutions(q) == 1 and (sudoku.encode(a) == label).all()


def test_extreme_build_and_export_roundtrip(tmp_path):
    import random

    rng = random.Random(0)
    lines = ["source,question,answer,rating"]
    for _ in range(8):
        p, s, r = sudoku.generate_puzzle(9, rng)
        lines.append(f"gen,{extreme.to_text(p)},{extreme.to_text(s)},{r}")
    lines.append("gen,123,456,0")
    f = tmp_path / "train.csv"
    f.write_text("\n".join(lines) + "\n")
    p = run("build", "sudoku-extreme", "--csv", f, "--subsample", 5, "--seed", 0, "--out", tmp_path / "x", cwd=tmp_path)
    assert_one_line_error(p, "train.csv: line 10", "81 characters")
    p = run("build", "sudoku-extreme", "--csv", f, "--subsample", 5, "--skip-bad", "--seed", 0,
            "--out", tmp_path / "x", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "skipped" in p.stdout
    p = run("export", tmp_path / "x", "--split", "train", cwd=tmp_path)
    exported = p.stdout.strip().splitlines()
    assert len(exported) == 6 and all(line.split(",")[1] in "\n".join(lines) for line in exported[1:])


def test_maze_build_export_and_csv_reload(tmp_path):
    p = run("build", "maze", "--size", 11, "--train", 4, "--test", 2, "--seed", 0, "--out", tmp_path / "m", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    p = run("show", tmp_path / "m", "--n", 1, cwd=tmp_path)
    assert "S" in p.stdout and "G" in p.stdout and "o" in p.stdout
    for split in ("train", "test"):
        p = run("export", tmp_path / "m", "--split", split, "--out", tmp_path / f"{split}.csv", cwd=tmp_path)
        assert p.returncode == 0, p.stderr
    p = run("build", "maze-csv", "--csv", tmp_path / "train.csv", "--test-csv", tmp_path / "test.csv",
            "--out", tmp_path / "m2", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    a, b = store.load_dataset(tmp_path / "m"), store.load_dataset(tmp_path / "m2")
    for split in ("train", "test"):
        assert (a.inputs(split) == b.inputs(split)).all() and (a.labels(split) == b.labels(split)).all()


@pytest.mark.parametrize(
    "args, words",
    [
        (["build", "sudoku", "--size", 5, "--train", 1, "--test", 1, "--out", "x"], ["--size"]),
        (["build", "sudoku", "--size", 4, "--train", 0, "--test", 1, "--out", "x"], ["train=0"]),
        (["build", "sudoku-extreme", "--csv", "absent.csv", "--out", "x"], ["absent.csv"]),
        (["build", "sudoku", "--size", 4, "--train", 1, "--test", 1, "--min-rating", 99, "--out", "x"], ["min_rating"]),
        (["show", "nowhere"], ["nowhere"]),
        (["export", "nowhere", "--split", "test"], ["nowhere"]),
        (["build", "chess"], ["chess"]),
    ],
)
def test_errors_are_one_line_exit_2(tmp_path, args, words):
    assert_one_line_error(run(*args, cwd=tmp_path), *words)
