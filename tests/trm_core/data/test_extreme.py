"""The Sudoku-Extreme CSV loader: every error case names file and line; skip_bad; subsamples; build."""

import random

import numpy as np
import pytest

from trm_core.data import extreme, store, sudoku
from trm_core.errors import UserError

HEADER = "source,question,answer,rating"


def _rows(n, seed=0):
    """n generated 9x9 puzzles as CSV rows (their rating column = solver guesses)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        p, s, r = sudoku.generate_puzzle(9, rng)
        out.append(f"gen,{extreme.to_text(p)},{extreme.to_text(s)},{r}")
    return out


GOOD = _rows(6)
Q, A = GOOD[0].split(",")[1:3]


def _csv(tmp_path, rows, header=HEADER, name="train.csv"):
    f = tmp_path / name
    f.write_text("\n".join(([header] if header is not None else []) + rows) + ("\n" if rows or header else ""))
    return f


def test_good_file_loads(tmp_path):
    rows = extreme.load_csv(_csv(tmp_path, GOOD))
    assert len(rows) == 6 and rows.n_skipped == 0 and rows.lines.tolist() == [2, 3, 4, 5, 6, 7]
    assert (rows.inputs[0] == extreme.to_digits(Q) + 1).all() and rows.inputs.dtype == np.uint8
    assert (rows.labels[0] == extreme.to_digits(A) + 1).all()
    assert rows.ratings.tolist() == [int(r.rsplit(",", 1)[1]) for r in GOOD]


def _wrong_digit(answer):
    """The answer with two cells of one row swapped: a row stays fine, columns break."""
    return answer[1] + answer[0] + answer[2:]


def _disagreeing(question, answer):
    """A valid grid that disagrees with a given: relabel digits 1 <-> 2 everywhere."""
    return answer.translate(str.maketrans("12", "21"))


BAD_ROWS = {
    "question must have 81 characters": f"x,{Q[:-1]},{A},0",
    "answer must have 81 characters": f"x,{Q},{A}5,0",
    "question has character": f"x,{Q[:-1]}x,{A},0",
    "answer has character": f"x,{Q},{A[:-1]}.,0",
    "answer is not a valid grid": f"x,{Q},{_wrong_digit(A)},0",
    "disagrees with the givens": f"x,{Q},{_disagreeing(Q, A)},0",
    "rating must be": f"x,{Q},{A},hard",
    "fewer fields": f"x,{Q}",
}


@pytest.mark.parametrize("what", sorted(BAD_ROWS))
def test_bad_row_names_file_line_and_problem(tmp_path, what):
    f = _csv(tmp_path, GOOD[:2] + [BAD_ROWS[what]] + GOOD[2:])
    with pytest.raises(UserError) as info:
        extreme.load_csv(f)
    msg = str(info.value)
    assert msg.startswith(f"{f}: line 4: ") and what in msg and "\n" not in msg


def test_skip_bad_counts(tmp_path):
    f = _csv(tmp_path, GOOD[:3] + list(BAD_ROWS.values()) + GOOD[3:])
    rows = extreme.load_csv(f, skip_bad=True)
    assert len(rows) == 6 and rows.n_skipped == len(BAD_ROWS)
    assert rows.lines.tolist() == [2, 3, 4] + [5 + len(BAD_ROWS) + i for i in range(3)]


def test_header_problems(tmp_path):
    with pytest.raises(UserError, match="is empty"):
        extreme.load_csv(_csv(tmp_path, [], header=None))
    with pytest.raises(UserError, match="missing column.*answer"):
        extreme.load_csv(_csv(tmp_path, GOOD, header="source,question,solution,rating"))
    with pytest.raises(UserError, match="no rows"):
        extreme.load_csv(_csv(tmp_path, []))
    with pytest.raises(UserError, match="cannot read"):
        extreme.load_csv(tmp_path / "absent.csv")


def test_check_unique_rejects_ambiguous_puzzle(tmp_path):
    p = extreme.to_digits(Q).copy()
    p[np.nonzero(p)[0][0]] = 0  # generated puzzles are minimal: one given less is ambiguous
    row = f"x,{extreme.to_text(p)},{A},0"
    assert len(extreme.load_csv(_csv(tmp_path, [row]))) == 1  # fine without the check
    with pytest.raises(UserError, match="line 2: puzzle has more than one solution"):
        extreme.load_csv(_csv(tmp_path, [row]), check_unique=True)


def test_min_rating_filters(tmp_path):
    ratings = [int(r.rsplit(",", 1)[1]) for r in GOOD]
    rows = extreme.load_csv(_csv(tmp_path, GOOD), min_rating=1)
    assert 0 < len(rows) == sum(r >= 1 for r in ratings) < len(GOOD)
    assert (rows.ratings >= 1).all()


def test_build_subsample_and_lite(tmp_path):
    train = _csv(tmp_path, _rows(30, seed=1))
    test = _csv(tmp_path, _rows(12, seed=2), name="test.csv")
    spec = extreme.extreme_spec(str(train), seed=0, test_csv=str(test), subsample=10, n_lite=5)
    ds = store.load_dataset(store.build_cached(spec, tmp_path / "cache"))
    assert ds.meta["splits"] == {"train": 10, "test": 12, "lite": 5}
    assert ds.meta["vocab_size"] == 11 and ds.inputs("train").max() <= 10
    lite = {r.tobytes() for r in ds.inputs("lite")}
    assert lite <= {r.tobytes() for r in ds.inputs("test")}
    other = extreme.extreme_spec(str(train), seed=1, test_csv=str(test), subsample=10, n_lite=5)
    ds2 = store.load_dataset(store.build_cached(other, tmp_path / "cache"))
    assert not np.array_equal(ds.inputs("train"), ds2.inputs("train"))  # the seed picks the subsample
    # without a test file, test rows are held out of the train file
    held = extreme.extreme_spec(str(train), seed=0, subsample=10, n_lite=8)
    ds3 = store.load_dataset(store.build_cached(held, tmp_path / "cache"))
    assert ds3.meta["splits"]["test"] == 8
    assert not {r.tobytes() for r in ds3.inputs("test")} & {r.tobytes() for r in ds3.inputs("train")}


def test_download_needs_hub_or_says_how(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_hub(name, *a, **k):
        if name.startswith("huggingface_hub"):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_hub)
    with pytest.raises(UserError, match=r"pip install 'trm-sweep\[hub\]'"):
        extreme.download(tmp_path)
