"""Fuzzing the sweep front door with hypothesis (issue 13, bad input): spec files (random bytes, random
YAML, a good spec with one key replaced, deleted or added) and `--set` values. Whatever comes in,
`python -m sweeper run SPEC --dry-run` exits 0 or 2, and 2 comes with one line naming the input;
never a traceback. An exit 0 must print the plan of exactly that spec (sweep_helpers.check_dry_run),
and an input that an independent reading of the format (`must_refuse`, below) says is wrong must be
refused: random bytes and random YAML always are. Same code path as the command line, in-process
(`run_cli`), so it is fast. The number of inputs tried is in docs/RELIABILITY.md.
"""

from __future__ import annotations

import copy
import io
import math
import re
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from types import SimpleNamespace

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sweep_helpers import check_dry_run, good

from sweeper.cli import main
from sweeper.spec import load_spec
from trm_core.config import field_types
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


def dry_run(spec_path: Path, *extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = run_cli(main, ["run", str(spec_path), "--dry-run", *extra])
        except SystemExit as exc:  # argparse (a --set value that looks like a flag)
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def check(one_line_error, code: int, out: str, err: str, *names: str, refuse: bool = False, spec=None) -> None:
    """Exit 2 with one line naming the input, or (unless the input must be refused) exit 0 with the
    plan of `spec()`: the spec as the library reads the same file and --set."""
    assert code in ((2,) if refuse else (0, 2)), (code, out[-300:], err)
    if code == 2:
        line = one_line_error(SimpleNamespace(returncode=code, stderr=err))
        assert any(n in line for n in names), (names, line)
    else:
        check_dry_run(out, spec())


TOP_KEYS = ("name", "description", "base", "metric", "mode", "space", "search", "scheduler", "seeds", "resources",
            "failure", "time_budget_s", "storage", "aim", "final_eval", "cpu_variant")
"""The spec's top-level keys, as search_spaces/README.md lists them (not read from the code under test)."""


def _int_at_least(n: int):
    return lambda v: (not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
                      and float(v).is_integer() and v >= n)


def _number_above(n: float):
    return lambda v: not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and v > n


VALID = {
    "name": lambda v: isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", v) is not None,
    "mode": lambda v: v in ("max", "min"),
    "seeds": lambda v: _int_at_least(0)(v) or (isinstance(v, list) and bool(v) and all(map(_int_at_least(0), v))),
    "search.num_samples": _int_at_least(1),
    "search.sampler": lambda v: v in ("tpe", "random", "grid"),
    "resources.cpu": _number_above(0),
    "failure.max_retries": _int_at_least(0),
    "failure.max_failed_trials": lambda v: v is None or _int_at_least(0)(v),
    "time_budget_s": lambda v: v is None or _number_above(0)(v),
}
"""What a value must be, per key (the README's rules); a key not listed here may take anything."""


def must_refuse(key: str, value, delete: bool) -> bool:
    """A spec edit that the format does not allow: deleting what is required, an unknown top-level key,
    or a value that breaks its key's rule."""
    if delete:
        return key in ("name", "base", "space", "base.preset")
    if key.split(".")[0] not in TOP_KEYS:
        return True
    return key in VALID and not VALID[key](value)


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
def test_spec_file_of_random_bytes(tmp_path_factory, one_line_error, data):
    f = tmp_path_factory.mktemp("fz") / "spec.yaml"
    f.write_bytes(data)
    check(one_line_error, *dry_run(f), str(f), refuse=True)  # no random bytes hold a name, a base and a searched space


@FUZZ
@given(doc=VALUES)
def test_spec_file_of_random_yaml(tmp_path_factory, one_line_error, doc):
    f = tmp_path_factory.mktemp("fz") / "spec.yaml"
    f.write_text(yaml.safe_dump(doc))
    check(one_line_error, *dry_run(f), str(f), refuse=True)


# each rule of must_refuse once, whatever hypothesis draws besides
RULE_EXAMPLES = [("name", "my sweep", False), ("mode", "maximize", False), ("seeds", "a", False), ("seeds", [], False),
                 ("search.num_samples", 0.5, False), ("search.sampler", "tpee", False), ("resources.cpu", 0, False),
                 ("failure.max_retries", -1, False), ("failure.max_failed_trials", "2", False),
                 ("time_budget_s", float("inf"), False), ("serach", {}, False), ("base", None, True),
                 ("space", None, True), ("base.preset", None, True), ("name", None, True),
                 ("resources.gpu", 1, False)]  # a GPU spec without cpu_variant on this CPU machine: it says there is none


def _with_examples(test):
    for key, value, delete in RULE_EXAMPLES:
        test = example(key=key, value=value, delete=delete)(test)
    return test


@FUZZ_SLOWER
@_with_examples
@given(key=st.sampled_from(SPEC_KEYS) | st.text(min_size=1, max_size=15), value=VALUES, delete=st.booleans())
def test_good_spec_with_one_key_changed(tmp_path_factory, one_line_error, key, value, delete):
    d = tmp_path_factory.mktemp("fz")
    raw = copy.deepcopy(good())
    raw.update(storage=str(d / "sweeps"), aim={"repo": str(d / "aim")})
    _set_path(raw, key, value, delete)
    f = d / "spec.yaml"
    f.write_text(yaml.safe_dump(raw))
    check(one_line_error, *dry_run(f), str(f), refuse=must_refuse(key, value, delete), spec=lambda: load_spec(str(f)))


TRAINER_KEYS = ["train.steps", "optim.lr", "optim.name", "model.hidden_size", "data.board_size", "recursion.n_inner",
                "train.batch_size", "loss.kind", "device", "seed"]


@FUZZ_SLOWER
@example(text="mode=maximize")
@example(text="seeds=abc")
@example(text="search.num_samples=0")
@example(text="serach.num_samples=4")
@example(text="search.num_samples")
@example(text="train.steps=30")
@given(text=st.text(max_size=40)
       | st.builds(lambda k, v: f"{k}={v}", st.sampled_from(SPEC_KEYS + TRAINER_KEYS) | st.text(max_size=12),
                   st.text(max_size=20) | VALUES.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip())))
def test_set_values(tmp_path_factory, one_line_error, text):
    d = tmp_path_factory.mktemp("fz")
    raw = good()
    raw.update(storage=str(d / "sweeps"), aim={"repo": str(d / "aim")})
    f = d / "spec.yaml"
    f.write_text(yaml.safe_dump(raw))
    code, out, err = dry_run(f, f"--set={text}")
    key, has_value, value = text.partition("=")
    key = key.strip()
    refuse = not has_value or (not key.startswith(TOP_KEYS) and key not in field_types())
    if has_value and key in VALID:
        try:
            refuse = refuse or not VALID[key](yaml.safe_load(value))
        except yaml.YAMLError:
            pass
    check(one_line_error, code, out, err, "--set", str(f), key or "--set", refuse=refuse, spec=lambda: load_spec(str(f), [text]))
