"""sweeper/jobs.py without a cluster: addresses, the working directory and its excludes, the job's
command line, the token lookup, and the one-line errors raised before any connection."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from sweeper.cli import main
from sweeper.jobs import EXCLUDES, entrypoint, job_address, spec_in_workdir
from trm_core.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("given, url", [(None, "http://127.0.0.1:8265"), ("127.0.0.1:8265", "http://127.0.0.1:8265"),
                                        ("http://head:8265/", "http://head:8265"), ("https://h:443", "https://h:443")])
def test_job_address(given, url, monkeypatch):
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    assert job_address(given) == url


@pytest.mark.parametrize("bad", ["auto", "ray://h:10001", "http://h", "http://h:x"])
def test_job_address_refuses(bad):
    with pytest.raises(UserError, match="http://HOST:PORT"):
        job_address(bad)


def test_spec_must_be_inside_the_working_directory(tmp_path):
    assert spec_in_workdir(str(ROOT / "search_spaces" / "quickstart.yaml"), ROOT) == "search_spaces/quickstart.yaml"
    with pytest.raises(UserError, match="inside the working directory"):
        spec_in_workdir(str(tmp_path / "s.yaml"), ROOT)


def test_entrypoint_quotes_and_makes_paths_absolute():
    cmd = entrypoint("search_spaces/q.yaml", ["train.steps=20", "description=a b"], Path("/abs/runs/sweeps"),
                     Path("/abs/runs/aim"), ["--name", "n1"])
    words = shlex.split(cmd)
    assert words[:7] == ["python", "-m", "sweeper", "run", "search_spaces/q.yaml", "--address", "auto"]
    assert words[-4:] == ["train.steps=20", "description=a b", "storage=/abs/runs/sweeps", "aim.repo=/abs/runs/aim"]


def test_excludes_drop_top_level_folders_only():
    from ray._private.runtime_env.packaging import _get_excludes

    excluded = _get_excludes(ROOT, EXCLUDES)
    for path in ("data", "runs", ".venv", ".git", "sweeper/__pycache__", "trm_sweep.egg-info"):
        assert excluded(ROOT / path), path
    for path in ("trm_core/data", "sweeper", "search_spaces"):
        assert not excluded(ROOT / path), path  # trm_core/data is code, not the top-level data cache


def test_token_is_read_the_way_ray_reads_it(tmp_path, one_line_error):
    """RAY_AUTH_TOKEN_PATH (then ~/.ray/auth_token) through Ray's loader; in a fresh process, as the
    loader caches what it found."""
    (tmp_path / "tok").write_text("s3cr3t-token-value")
    code = "from sweeper.jobs import auth_headers; h = auth_headers(); print(h['authorization'] == 'Bearer s3cr3t-token-value')"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "RAY_AUTH_TOKEN_PATH": str(tmp_path / "tok"),
           "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "True", r.stderr[-2000:]
    assert "s3cr3t" not in r.stderr
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "RAY_AUTH_MODE": "token", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "sweeper", "jobs", "--address", "http://127.0.0.1:1"], env=env,
                       capture_output=True, text=True, timeout=120)
    one_line_error(r, "--address http://127.0.0.1:1")  # no cluster there: refused before the token matters


def test_unreachable_address_and_url_storage_are_one_line(cli_error):
    line = cli_error(main, ["submit", "search_spaces/quickstart.yaml", "--address", "http://127.0.0.1:1"])
    assert "no Ray job server answers at 127.0.0.1:1" in line
    line = cli_error(main, ["submit", "search_spaces/quickstart.yaml", "--set", "storage=s3://b/sweeps"])
    assert "storage: must be a local or NFS path" in line


def test_a_server_that_never_answers_or_is_not_ray_is_refused():
    """The SDK would wait forever on a port that accepts and never answers; check_reachable does not."""
    import socket
    import threading
    import time

    from sweeper.jobs import check_reachable

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)  # accepts connections (the kernel does), never answers
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen(4)

    def not_ray():
        conn, _ = other.accept()
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        conn.close()

    threading.Thread(target=not_ray, daemon=True).start()
    try:
        t0 = time.time()
        with pytest.raises(UserError, match="did not answer within 1s"):
            check_reachable(f"http://127.0.0.1:{silent.getsockname()[1]}", connect_s=1, answer_s=1)
        assert time.time() - t0 < 10
        with pytest.raises(UserError, match="not Ray's job API: HTTP 404"):
            check_reachable(f"http://127.0.0.1:{other.getsockname()[1]}", connect_s=1, answer_s=5)
    finally:
        silent.close()
        other.close()
