"""Dataset directories: build, cache reuse, atomic concurrent builds, loading and its errors."""

import json
import multiprocessing as mp
import time

import numpy as np
import pytest

from trm_core.config import DataConfig
from trm_core.data import builders, store, sudoku
from trm_core.errors import UserError


def test_build_from_config_writes_a_valid_dataset(tmp_path):
    cfg = DataConfig(task="sudoku", board_size=6, n_train=30, n_test=10, data_seed=3, cache_dir=str(tmp_path))
    path = store.build_from_config(cfg)
    assert path.parent == tmp_path
    ds = store.load_dataset(path, verify=True)
    m = ds.meta
    assert (m["task"], m["board_size"], m["vocab_size"], m["seq_len"]) == ("sudoku", 6, 8, 36)
    assert m["splits"] == {"train": 30, "test": 10} and m["seed"] == 3
    x, y = ds.inputs("train"), ds.labels("train")
    assert x.dtype == np.uint8 and x.shape == (30, 36)
    assert x.min() >= 1 and y.min() >= 2 and y.max() <= 7  # blanks only in inputs, digits 2..7
    # every puzzle of both splits is unique and solved by its label; no puzzle in both splits
    both = np.concatenate([ds.inputs("train"), ds.inputs("test")])
    assert len({r.tobytes() for r in both}) == 40
    for p, s in zip(both, np.concatenate([ds.labels("train"), ds.labels("test")])):
        res = sudoku.solve(sudoku.decode(p))
        assert res.n_solutions == 1 and (sudoku.encode(res.solution) == s).all()


def test_cache_reuse_is_fast_and_same_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("TRM_DATA_CACHE", str(tmp_path))
    cfg = DataConfig(board_size=9, n_train=8, n_test=4, data_seed=1)
    path = store.build_from_config(cfg)
    assert path.parent == tmp_path
    h = store.read_meta(path)["content_hash"]
    stamps = {p.name: p.stat().st_mtime_ns for p in path.iterdir()}
    t = time.perf_counter()
    again = store.build_from_config(cfg)
    assert time.perf_counter() - t < 5  # generous: a loaded machine; what matters is the next line
    assert {p.name: p.stat().st_mtime_ns for p in again.iterdir()} == stamps  # reused: nothing rewritten
    assert again == path and store.read_meta(again)["content_hash"] == h
    other = store.build_from_config(DataConfig(board_size=9, n_train=8, n_test=4, data_seed=2))
    assert other != path and store.read_meta(other)["content_hash"] != h


def test_same_seed_same_content_in_fresh_caches(tmp_path):
    spec = builders.sudoku_spec(4, 20, 5, seed=11)
    a = store.build_cached(spec, tmp_path / "a")
    b = store.build_cached(spec, tmp_path / "b")
    assert store.read_meta(a)["content_hash"] == store.read_meta(b)["content_hash"]


def _build_in_child(args):
    spec, cache = args
    return str(store.build_cached(spec, cache))


def test_concurrent_builders_of_one_spec_agree(tmp_path):
    spec = builders.sudoku_spec(6, 60, 20, seed=5)
    with mp.get_context("spawn").Pool(3) as pool:
        paths = pool.map(_build_in_child, [(spec, str(tmp_path))] * 3)
    assert len(set(paths)) == 1
    assert [p.name for p in tmp_path.iterdir()] == [paths[0].rsplit("/", 1)[1]]  # no temp dirs left
    store.load_dataset(paths[0], verify=True)


def test_build_at_refuses_other_spec_and_non_dataset(tmp_path):
    out = tmp_path / "ds"
    store.build_at(out, builders.sudoku_spec(4, 5, 5, seed=0), builders.build_sudoku)
    _, reused = store.build_at(out, builders.sudoku_spec(4, 5, 5, seed=0), builders.build_sudoku)
    assert reused
    with pytest.raises(UserError, match="another spec"):
        store.build_at(out, builders.sudoku_spec(4, 5, 5, seed=1), builders.build_sudoku)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "x.txt").write_text("hi")
    with pytest.raises(UserError, match="not a dataset directory"):
        store.build_at(junk, builders.sudoku_spec(4, 5, 5, seed=0), builders.build_sudoku)


def test_load_dataset_errors_are_one_line(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        store.load_dataset(tmp_path / "missing")
    with pytest.raises(UserError, match="no meta.json"):
        store.load_dataset(tmp_path)
    out = tmp_path / "ds"
    store.build_at(out, builders.sudoku_spec(4, 5, 5, seed=0), builders.build_sudoku)
    meta = json.loads((out / "meta.json").read_text())
    (out / "meta.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        store.load_dataset(out)
    (out / "meta.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "vocab_size"}))
    with pytest.raises(UserError, match="vocab_size"):
        store.load_dataset(out)
    (out / "meta.json").write_text(json.dumps({**meta, "seq_len": 17}))
    with pytest.raises(UserError, match="shape"):
        store.load_dataset(out)
    (out / "meta.json").write_text(json.dumps(meta))
    np.save(out / "test_labels.npy", np.ones((5, 16), np.uint8))
    with pytest.raises(UserError, match="content_hash"):
        store.load_dataset(out, verify=True)
    with pytest.raises(UserError, match="no split 'valid'"):
        store.load_dataset(out).inputs("valid")


def test_build_from_config_errors(tmp_path):
    with pytest.raises(UserError, match="data build sudoku-extreme"):
        store.build_from_config(DataConfig(task="sudoku-extreme", cache_dir=str(tmp_path)))
    with pytest.raises(UserError, match="known tasks"):
        store.build_from_config(DataConfig(task="chess", cache_dir=str(tmp_path)))
    with pytest.raises(UserError, match="size"):
        store.build_from_config(DataConfig(board_size=5, cache_dir=str(tmp_path)))
    built = store.build_from_config(DataConfig(board_size=4, n_train=3, n_test=2, cache_dir=str(tmp_path)))
    assert store.build_from_config(DataConfig(path=str(built), board_size=4)) == built
    with pytest.raises(UserError, match="data.task=maze"):
        store.build_from_config(DataConfig(task="maze", path=str(built), board_size=4))
    # a 4x4 dataset under a 9x9 config would train while config.yaml records 9: refused, naming both
    with pytest.raises(UserError, match=r"holds a 4x4 sudoku dataset, but data.board_size=9"):
        store.build_from_config(DataConfig(path=str(built)))


def test_build_from_config_maze(tmp_path, monkeypatch):
    monkeypatch.setenv("TRM_DATA_CACHE", str(tmp_path))
    path = store.build_from_config(DataConfig(task="maze", board_size=9, n_train=3, n_test=2))
    m = store.load_dataset(path).meta
    assert (m["task"], m["vocab_size"], m["seq_len"], m["splits"]) == ("maze", 6, 81, {"train": 3, "test": 2})
    assert path.parent == tmp_path and m["generator"]["min_path"] == 9  # default range starts at the side
