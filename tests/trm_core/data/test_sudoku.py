"""Solver, checks and generator of trm_core/data/sudoku.py."""

import random

import numpy as np
import pytest

from trm_core.data import sudoku
from trm_core.data.extreme import to_digits
from trm_core.errors import UserError

# Well-known hard 9x9 puzzles with their published solutions.
HARD = {
    "arto_inkala_2012": (
        "8..........36......7..9.2...5...7.......457.....1...3...1....68..85...1..9....4..",
        "812753649943682175675491283154237896369845721287169534521974368438526917796318452",
    ),
    "norvig_hardest": (
        "4.....8.5.3..........7......2.....6.....8.4......1.......6.3.7.5..2.....1.4......",
        "417369825632158947958724316825437169791586432346912758289643571573291684164875293",
    ),
    "ai_escargot": (
        "1....7.9..3..2...8..96..5....53..9...1..8...26....4...3......1..4......7..7...3..",
        "162857493534129678789643521475312986913586742628794135356478219241935867897261354",
    ),
}


@pytest.mark.parametrize("name", sorted(HARD))
def test_solver_solves_known_hard_puzzles(name):
    question, answer = HARD[name]
    res = sudoku.solve(to_digits(question))
    assert res.n_solutions == 1
    assert "".join(map(str, res.solution)) == answer
    assert res.guesses >= 1  # none of these falls to naked + hidden singles
    assert sudoku.is_valid_solution(res.solution)


def test_count_stops_at_limit():
    empty = np.zeros(81, np.uint8)
    assert sudoku.count_solutions(empty, limit=2) == 2
    assert sudoku.count_solutions(empty, limit=5) == 5
    question, _ = HARD["norvig_hardest"]
    puzzle = to_digits(question).copy()
    puzzle[puzzle.nonzero()[0][0]] = 0  # dropping a given of a minimal-ish puzzle
    assert sudoku.count_solutions(puzzle) in (1, 2)


def test_contradictory_givens_have_no_solution():
    p = np.zeros(16, np.uint8)
    p[0] = p[1] = 1  # two 1s in the first row
    assert not sudoku.givens_consistent(p)
    assert sudoku.count_solutions(p) == 0
    q = np.zeros(16, np.uint8)
    q[[0, 5, 10]] = [1, 2, 3]
    assert sudoku.givens_consistent(q)


def test_validity_checks_catch_errors():
    _, answer = HARD["arto_inkala_2012"]
    sol = to_digits(answer)
    assert sudoku.is_valid_solution(sol)
    bad = sol.copy()
    bad[[0, 1]] = bad[[1, 0]]  # swap two cells of a row: columns break
    assert not sudoku.is_valid_solution(bad)
    puzzle = to_digits(HARD["arto_inkala_2012"][0])
    assert sudoku.agrees(puzzle, sol)
    assert not sudoku.agrees(puzzle, bad)


def test_encode_decode_roundtrip():
    p = np.array([0, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], np.uint8)
    t = sudoku.encode(p)
    assert t.tolist()[:5] == [1, 2, 3, 4, 5]
    assert (sudoku.decode(t) == p).all()
    with pytest.raises(ValueError):
        sudoku.decode(np.zeros(16, np.uint8))


@pytest.mark.parametrize("size", [4, 6, 9])
def test_generated_puzzles_unique_and_consistent(size):
    rng = random.Random(size)
    for _ in range(5 if size == 9 else 15):
        p, s, rating = sudoku.generate_puzzle(size, rng)
        assert sudoku.is_valid_solution(s)
        assert sudoku.agrees(p, s)
        res = sudoku.solve(p)
        assert res.n_solutions == 1 and (res.solution == s).all()
        assert rating == res.guesses
        # minimal: no given can go without losing uniqueness
        for cell in p.nonzero()[0][:5]:
            q = p.copy()
            q[cell] = 0
            assert sudoku.count_solutions(q) == 2


def test_generator_is_deterministic_per_seed():
    a = [sudoku.generate_puzzle(9, random.Random(7))[0] for _ in range(2)]
    b = sudoku.generate_puzzle(9, random.Random(8))[0]
    assert (a[0] == a[1]).all()
    assert not (a[0] == b).all()


def test_givens_and_min_rating():
    rng = random.Random(0)
    p, s, _ = sudoku.generate_puzzle(9, rng, givens=40)
    assert int((p > 0).sum()) == 40 and sudoku.count_solutions(p) == 1
    p, s, r = sudoku.generate_puzzle(9, rng, min_rating=2)
    assert r >= 2 and sudoku.rate(p) == r
    with pytest.raises(UserError, match="min_rating"):
        sudoku.generate_puzzle(4, rng, min_rating=50, max_tries=5)
    with pytest.raises(UserError, match="size"):
        sudoku.geometry(5)
