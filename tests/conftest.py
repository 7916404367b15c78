"""Suite-wide settings: no telemetry, and generated datasets cached in a temp dir, never in ~."""

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
        assert code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), lines
        return lines[0]

    return run
