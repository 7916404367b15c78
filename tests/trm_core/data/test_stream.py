"""TrainStream: shapes, validity, determinism per seed, epoch sampling, hints, puzzle ids, exact resume;
AugmentedPuzzles."""

import io

import numpy as np
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
    x, y, ids = TrainStream(sudoku_ds, seed=0).sample(64)
    assert x.shape == y.shape == (64, 81) and x.dtype == y.dtype == ids.dtype == torch.long
    assert ids.shape == (64,) and ids.eq(0).all()  # generated Sudoku: every puzzle has identifier 0
    for i in range(0, 64, 8):
        p, s = sudoku.decode(x[i].numpy()), sudoku.decode(y[i].numpy())
        assert sudoku.is_valid_solution(s) and sudoku.agrees(p, s) and sudoku.count_solutions(p) == 1


def test_determinism_per_seed(sudoku_ds):
    a, b, c = TrainStream(sudoku_ds, seed=1), TrainStream(sudoku_ds, seed=1), TrainStream(sudoku_ds, seed=2)
    xa, xb, xc = a.sample(32)[0], b.sample(32)[0], c.sample(32)[0]
    assert torch.equal(xa, xb) and not torch.equal(xa, xc)


@pytest.mark.parametrize("sampling", ["epoch", "replacement"])
def test_resume_matches_uninterrupted_stream(sudoku_ds, sampling):
    ref = TrainStream(sudoku_ds, seed=3, sampling=sampling)
    ref.sample(10)
    ref.sample(7)
    expected = [ref.sample(n) for n in (5, 9)]

    s = TrainStream(sudoku_ds, seed=3, sampling=sampling)
    s.sample(10)
    s.sample(7)
    state = s.state_dict()
    blob = io.BytesIO()
    torch.save(state, blob)  # plain data: a checkpoint can hold it and load it with weights_only
    blob.seek(0)
    state = torch.load(blob, weights_only=True)
    resumed = TrainStream(sudoku_ds, seed=99, sampling=sampling)
    resumed.load_state_dict(state)
    got = [resumed.sample(n) for n in (5, 9)]
    for (ex, ey, _), (gx, gy, _) in zip(expected, got):
        assert torch.equal(ex, gx) and torch.equal(ey, gy)
    assert resumed.state_dict()["n_sampled"] == 31


def test_no_augment_returns_stored_rows(sudoku_ds):
    x, y, _ = TrainStream(sudoku_ds, seed=0, augment=False).sample(20)
    stored = {r.tobytes() for r in sudoku_ds.inputs("train").astype("int64")}
    assert all(r.numpy().tobytes() in stored for r in x)


def test_maze_stream_keeps_tokens(maze_ds):
    x, y, _ = TrainStream(maze_ds, seed=0).sample(16)
    assert x.shape == (16, 81)
    for i in range(16):
        maze.check_pair(maze.to_text(x[i].numpy()), maze.to_text(y[i].numpy()))
        assert int((x[i] == maze.PATH).sum()) == 0


def test_epoch_sampling_draws_without_replacement(sudoku_ds):
    stream = TrainStream(sudoku_ds, seed=0, augment=False, sampling="epoch")
    index = {r.tobytes(): i for i, r in enumerate(sudoku_ds.inputs("train").astype("int64"))}
    drawn = [index[r.numpy().tobytes()] for n in (5, 4, 3, 7, 5) for r in stream.sample(n)[0]]
    assert sorted(drawn[:12]) == list(range(12)) and sorted(drawn[12:24]) == list(range(12))  # two whole epochs
    assert drawn[:12] != drawn[12:24]  # each epoch reshuffled
    with_replacement = TrainStream(sudoku_ds, seed=0, augment=False, sampling="replacement")
    drawn = [index[r.numpy().tobytes()] for r in with_replacement.sample(24)[0]]
    assert len(set(drawn)) < 12 or sorted(drawn[:12]) != list(range(12))


def test_hints_fill_blanks_from_the_solution(sudoku_ds):
    plain = TrainStream(sudoku_ds, seed=5, augment=False, hint_k=3, hint_fraction=0.0).sample(40)[0]
    hinted_x, hinted_y, _ = TrainStream(sudoku_ds, seed=5, augment=False, hint_k=3, hint_fraction=1.0).sample(40)
    blanks = lambda x: (x == 1).sum(dim=1)
    assert (blanks(hinted_x) == blanks(plain) - 3).all()
    filled = (plain == 1) & (hinted_x != 1)
    assert torch.equal(hinted_x[filled], hinted_y[filled])  # hints are the solution's digits
    base = TrainStream(sudoku_ds, seed=6, augment=False, hint_k=3, hint_fraction=0.0).sample(400)[0]
    half = TrainStream(sudoku_ds, seed=6, augment=False, hint_k=3, hint_fraction=0.5).sample(400)[0]
    share = (blanks(half) < blanks(base)).float().mean().item()
    assert 0.4 < share < 0.6, share


def test_hints_need_sudoku(maze_ds):
    from trm_core.errors import UserError

    with pytest.raises(UserError, match="does not apply to task maze"):
        TrainStream(maze_ds, seed=0, hint_k=2, hint_fraction=0.5)


def test_puzzle_identifiers_from_the_dataset(sudoku_ds, tmp_path):
    import shutil

    d = tmp_path / "ds"
    shutil.copytree(sudoku_ds.path, d)
    meta = store.read_meta(d)
    meta["n_puzzle_ids"] = 12
    import json

    (d / "meta.json").write_text(json.dumps(meta))
    np.save(d / "train_puzzle_ids.npy", np.arange(12, dtype=np.int32))
    ds = store.load_dataset(d)
    assert ds.n_puzzle_ids == 12 and ds.puzzle_ids("test").tolist() == [0, 0, 0, 0]
    x, _, ids = TrainStream(ds, seed=0, augment=False, sampling="epoch").sample(12)
    index = {r.tobytes(): i for i, r in enumerate(ds.inputs("train").astype("int64"))}
    assert [index[r.numpy().tobytes()] for r in x] == ids.tolist()
    np.save(d / "train_puzzle_ids.npy", np.full(12, 12, dtype=np.int32))
    from trm_core.errors import UserError

    with pytest.raises(UserError, match="integer ids in 0..11"):
        store.load_dataset(d)


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
