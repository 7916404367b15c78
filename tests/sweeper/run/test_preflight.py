"""Checks before Ray starts: sweep names, the atomic claim of a sweep directory, paths, addresses."""

from __future__ import annotations

import json
import shutil
import multiprocessing as mp
import socket
import time
from pathlib import Path

import pytest

from sweeper.run.preflight import check_address, check_dir, check_name, claim_sweep_dir
from trm_core.errors import UserError


@pytest.mark.parametrize("name", ["quickstart", "q-1_b.2", "A"])
def test_good_names(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", "", "-x", "a b", "x" * 201, "a\\b"])
def test_bad_names(name):
    with pytest.raises(UserError, match="a sweep name must be letters, digits"):
        check_name(name)


def _claim(args):
    storage, barrier = args
    barrier.wait()
    return claim_sweep_dir(Path(storage), "same")[0]


def test_claims_started_at_once_get_distinct_directories(tmp_path):
    with mp.Manager() as manager:
        barrier = manager.Barrier(4)
        with mp.get_context("spawn").Pool(4) as pool:
            names = pool.map(_claim, [(str(tmp_path), barrier)] * 4)
    assert len(set(names)) == 4 and "same" in names, names
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)


def _claim_explicit(args):
    storage, barrier = args
    barrier.wait()
    try:
        return claim_sweep_dir(Path(storage), "same", explicit="--name")[0]
    except UserError as exc:
        return str(exc)


def test_a_sweep_that_never_started_is_claimed_again_by_exactly_one(tmp_path):
    """Issue 26 item 1: a sweep that failed before its first trial (no Tune state, no results) does not
    keep its name; when several sweeps claim it at once with --name, one gets it and the others are
    refused (a finished sweep's name is always refused)."""
    old = tmp_path / "same"
    old.mkdir()
    (old / "sweep.json").write_text(json.dumps({"name": "same", "status": "failed", "reason": "no GPU"}))
    with mp.Manager() as manager:
        barrier = manager.Barrier(3)
        with mp.get_context("spawn").Pool(3) as pool:
            results = pool.map(_claim_explicit, [(str(tmp_path), barrier)] * 3)
    assert results.count("same") == 1, results
    assert all("--name same: " in r for r in results if r != "same"), results
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["same"] and not any(old.iterdir())
    (old / "sweep.json").write_text(json.dumps({"name": "same", "status": "finished"}))
    with pytest.raises(UserError, match=r"--name same: a sweep of that name exists \(finished"):
        claim_sweep_dir(tmp_path, "same", explicit="--name")
    assert claim_sweep_dir(tmp_path, "same")[0].startswith("same-")  # the spec's own name: time-stamped


def test_check_dir(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(UserError, match="is a file"):
        check_dir(f, "storage", create=False)
    with pytest.raises(UserError, match="cannot be created: .* is a file"):
        check_dir(f / "sub", "aim.repo", create=True)
    check_dir(tmp_path / "new" / "deeper", "storage", create=False)
    assert not (tmp_path / "new").exists()  # checking creates nothing
    check_dir(tmp_path / "new" / "deeper", "storage", create=True)
    assert (tmp_path / "new" / "deeper").is_dir() and not list((tmp_path / "new" / "deeper").iterdir())


def test_check_address():
    check_address(None)
    check_address("auto")
    with socket.socket() as s:  # a port nothing listens on: bind, do not listen
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        t0 = time.time()
        with pytest.raises(UserError, match=f"--address 127.0.0.1:{port}: no Ray cluster answers.*ray start --head"):
            check_address(f"127.0.0.1:{port}")
        assert time.time() - t0 < 10
    for bad in ("nonsense", "host:notaport", "ray://", ":6379"):
        with pytest.raises(UserError, match="--address"):
            check_address(bad)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        check_address(f"127.0.0.1:{server.getsockname()[1]}")  # something listens: left to Ray


def test_a_directory_cleared_while_it_is_read_counts_as_free(tmp_path, monkeypatch):
    """Seen once in a full-suite run: another claimer removed the directory between exists() and the
    glob of never_started (FileNotFoundError in the worker); that directory is free, and the claim
    checks it again under the lock."""
    from sweeper.run import preflight

    d = tmp_path / "same"
    d.mkdir()

    def vanished(path):
        shutil.rmtree(path)
        raise FileNotFoundError(2, "No such file or directory", str(path))

    monkeypatch.setattr(preflight, "never_started", vanished)
    assert preflight._free(d)
