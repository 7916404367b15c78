"""Fuzzing the sweep front door with hypothesis (issue 13, bad input): spec files (random bytes, random
YAML, a good spec with one key replaced, deleted or added) and `--set` values. Whatever comes in,
`python -m sweeper run SPEC --dry-run` exits 0 or 2, and 2 comes with one line naming the input;
never a traceback. Same code path as the command line, in-process (`run_cli`), so it is fast.
The number of inputs tried is in docs/RELIABILITY.md.
"""

from __future__ import annotations

import copy
import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sweep_helpers import good

from sweeper.cli import main
from trm_core.errors import run_cli

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])
FUZZ_SLOWER = settings(FUZZ, max_examples=100)  # examples that reach the trainer's checks
SCALARS = st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True) | st.text(max_size=20)
VALUES = st.recursive(SCALARS, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=4),
                      max_leaves=10)
SPEC_KEYS = ["name", "metric", "mode", "seeds", "storage", "time_budget_s", "base", "base.preset", "base.overrides",
             "space", "space.optim.lr", "space.optim.lr.low", "space.model.hidden_size.choices", "search",
             "search.num_samples", "search.sampler", "search.points_to_evaluate", "scheduler", "scheduler.grace_period",
             "resources", "resources.gpu", "resources.cpu", "failure", "failure.max_retries", "failure.max_failed_trials",
             "aim", "aim.repo"]


def dry_run(spec_path: Path, *extra: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = run_cli(main, ["run", str(spec_path), "--dry-run", *extra])
        except SystemExit as exc:  # argparse (a --set value that looks like a flag)
            code = exc.code
    return code, err.getvalue()


def check(code: int, err: str, *names: str) -> None:
    assert code in (0, 2), (code, err)
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), err
        assert any(n in lines[0] for n in names), (names, lines[0])


def _set_path(raw: dict, dotted: str, value, delete: bool) -> None:
    """Set (or delete) a key path; space keys are dotted trainer keys, so 'space.optim.lr.low' means
    raw['space']['optim.lr']['low']."""
    parts = dotted.split(".")
    if parts[0] == "space" and len(parts) >= 3:
        parts = ["space", ".".join(parts[1:3]), *parts[3:]]
    node = raw
    for p in parts[:-1]:
        if not isinstance(node.get(p) if isinstance(node, dict) else None, dict):
            if not isinstance(node, dict):
                return
            node[p] = {}
        node = node[p]
    if delete:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value


@FUZZ
@given(data=st.binary(max_size=300))
def test_spec_file_of_random_bytes(tmp_path_factory, data):
    f = tmp_path_factory.mktemp("fz") / "spec.yaml"
    f.write_bytes(data)
    check(*dry_run(f), str(f))


@FUZZ
@given(doc=VALUES)
def test_spec_file_of_random_yaml(tmp_path_factory, doc):
    f = tmp_path_factory.mktemp("fz") / "spec.yaml"
    f.write_text(yaml.safe_dump(doc))
    check(*dry_run(f), str(f))


@FUZZ_SLOWER
@given(key=st.sampled_from(SPEC_KEYS) | st.text(min_size=1, max_size=15), value=VALUES, delete=st.booleans())
def test_good_spec_with_one_key_changed(tmp_path_factory, key, value, delete):
    d = tmp_path_factory.mktemp("fz")
    raw = copy.deepcopy(good())
    raw.update(storage=str(d / "sweeps"), aim={"repo": str(d / "aim")})
    _set_path(raw, key, value, delete)
    f = d / "spec.yaml"
    f.write_text(yaml.safe_dump(raw))
    check(*dry_run(f), str(f))


TRAINER_KEYS = ["train.steps", "optim.lr", "optim.name", "model.hidden_size", "data.board_size", "recursion.n_inner",
                "train.batch_size", "loss.kind", "device", "seed"]


@FUZZ_SLOWER
@given(text=st.text(max_size=40)
       | st.builds(lambda k, v: f"{k}={v}", st.sampled_from(SPEC_KEYS + TRAINER_KEYS) | st.text(max_size=12),
                   st.text(max_size=20) | VALUES.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip())))
def test_set_values(tmp_path_factory, text):
    d = tmp_path_factory.mktemp("fz")
    raw = good()
    raw.update(storage=str(d / "sweeps"), aim={"repo": str(d / "aim")})
    f = d / "spec.yaml"
    f.write_text(yaml.safe_dump(raw))
    code, err = dry_run(f, f"--set={text}")
    key = text.split("=", 1)[0].strip()
    check(code, err, "--set", str(f), key or "--set")
