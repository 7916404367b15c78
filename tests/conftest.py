"""Suite-wide settings and helpers: no telemetry; generated datasets cached in a temp dir, never in ~;
one tiny trainer config (`tiny_config`); one check of "one line `error: ...`, exit 2" (`one_line_error`,
and `cli_error` that runs a command line in-process with it)."""

import os

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("AIM_UI_TELEMETRY_ENABLED", "0")
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session", autouse=True)
def _data_cache(tmp_path_factory):
    """Every test that builds a dataset from a config shares one throw-away cache."""
    path = tmp_path_factory.mktemp("trm_data_cache")
    old = os.environ.get("TRM_DATA_CACHE")
    os.environ["TRM_DATA_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("TRM_DATA_CACHE", None)
    else:
        os.environ["TRM_DATA_CACHE"] = old


TINY = ["data.n_train=100", "data.n_test=16", "model.hidden_size=32", "train.batch_size=8", "train.steps=4",
        "train.eval_interval=2", "train.log_interval=2", "recursion.n_supervision=2", "train.cpu_threads=1",
        "train.eval_max_puzzles=8", "device=cpu"]
"""The 4x4 tiny preset shrunk to train 4 steps in a few seconds on one core, evaluated every 2 steps."""


@pytest.fixture(scope="session")
def tiny_config():
    """`tiny_config(*overrides)`: the trainer config TINY, with "key=value" overrides on top."""
    from trm_core.config import load_config

    return lambda *overrides: load_config("sudoku4_tiny", [*TINY, *overrides])


def assert_one_line_error(code, stderr: str, *words: str) -> str:
    """A refused input: exit code 2, exactly one line on stderr, `error: ...` holding each of `words`,
    no traceback. Returns the line."""
    lines = stderr.strip().splitlines()
    assert code == 2, (code, stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in stderr, stderr[-2000:]
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


@pytest.fixture(scope="session")
def one_line_error():
    """`one_line_error(proc, *words)`: a finished command (anything with `returncode` and `stderr`, e.g. a
    subprocess.CompletedProcess) refused its input: assert_one_line_error; returns the line."""
    return lambda proc, *words: assert_one_line_error(proc.returncode, proc.stderr, *words)


@pytest.fixture
def cli_error(capsys):
    """`cli_error(main, args)`: run a command line in-process (the same code path as `python -m ...`,
    minus the interpreter start) with input it must refuse: exit code 2 and exactly one `error:`
    line on stderr, which is returned."""
    from trm_core.errors import run_cli

    def run(main, args) -> str:
        try:
            code = run_cli(main, args)
        except SystemExit as exc:  # argparse errors exit directly
            code = exc.code
        return assert_one_line_error(code, capsys.readouterr().err)

    return run
