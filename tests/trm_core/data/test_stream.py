"""TrainStream: shapes, validity, determinism per seed, exact resume; AugmentedPuzzles."""

import io

import pytest
import torch

from trm_core.data import builders, maze, store, sudoku
from trm_core.data.stream import AugmentedPuzzles, TrainStream


@pytest.fixture(scope="module")
def sudoku_ds(tmp_path_factory):
    return store.load_dataset(store.build_cached(builders.sudoku_spec(9, 12, 4, seed=0), tmp_path_factory.mktemp("c")))


@pytest.fixture(scope="module")
def maze_ds(tmp_path_factory):
    return store.load_dataset(store.build_cached(builders.maze_spec(9, 6, 3, seed=0), tmp_path_factory.mktemp("m")))


def test_sample_shapes_and_validity(sudoku_ds):
    x, y = TrainStream(sudoku_ds, seed=0).sample(64)
    assert x.shape == y.shape == (64, 81) and x.dtype == y.dtype == torch.long
    for i in range(0, 64, 8):
        p, s = sudoku.decode(x[i].numpy()), sudoku.decode(y[i].numpy())
        assert sudoku.is_valid_solution(s) and sudoku.agrees(p, s) and sudoku.count_solutions(p) == 1


def test_determinism_per_seed(sudoku_ds):
    a, b, c = TrainStream(sudoku_ds, seed=1), TrainStream(sudoku_ds, seed=1), TrainStream(sudoku_ds, seed=2)
    xa, xb, xc = a.sample(32)[0], b.sample(32)[0], c.sample(32)[0]
    assert torch.equal(xa, xb) and not torch.equal(xa, xc)


def test_resume_matches_uninterrupted_stream(sudoku_ds):
    ref = TrainStream(sudoku_ds, seed=3)
    ref.sample(10)
    ref.sample(7)
    expected = [ref.sample(n) for n in (5, 9)]

    s = TrainStream(sudoku_ds, seed=3)
    s.sample(10)
    s.sample(7)
    state = s.state_dict()
    blob = io.BytesIO()
    torch.save(state, blob)  # plain data: a checkpoint can hold it and load it with weights_only
    blob.seek(0)
    state = torch.load(blob, weights_only=True)
    resumed = TrainStream(sudoku_ds, seed=99)
    resumed.load_state_dict(state)
    got = [resumed.sample(n) for n in (5, 9)]
    for (ex, ey), (gx, gy) in zip(expected, got):
        assert torch.equal(ex, gx) and torch.equal(ey, gy)
    assert resumed.state_dict()["n_sampled"] == 31


def test_no_augment_returns_stored_rows(sudoku_ds):
    x, y = TrainStream(sudoku_ds, seed=0, augment=False).sample(20)
    stored = {r.tobytes() for r in sudoku_ds.inputs("train").astype("int64")}
    assert all(r.numpy().tobytes() in stored for r in x)


def test_maze_stream_keeps_tokens(maze_ds):
    x, y = TrainStream(maze_ds, seed=0).sample(16)
    assert x.shape == (16, 81)
    for i in range(16):
        maze.check_pair(maze.to_text(x[i].numpy()), maze.to_text(y[i].numpy()))
        assert int((x[i] == maze.PATH).sum()) == 0


def test_augmented_puzzles_dataset(sudoku_ds):
    ds = AugmentedPuzzles(sudoku_ds, split="train", seed=0)
    assert len(ds) == 12
    x0, y0 = ds[0]
    assert torch.equal(ds[0][0], x0)  # same (seed, epoch, index): same augmentation
    ds.set_epoch(1)
    assert not torch.equal(ds[0][0], x0) or not torch.equal(ds[0][1], y0)
    loader = torch.utils.data.DataLoader(ds, batch_size=4)
    xb, yb = next(iter(loader))
    assert xb.shape == (4, 81)
    assert sudoku.is_valid_solution(sudoku.decode(yb[0].numpy()))
