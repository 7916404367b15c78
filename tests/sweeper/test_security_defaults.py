"""Safe defaults (issue 13): UIs on loopback unless asked, with a warning when exposed; YAML read
with safe_load only; checkpoints read with torch.load(weights_only=True); resume refuses state that
is not ours."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest

from sweeper.aim.repo import up_command
from sweeper.run.cluster import dashboard_options
from sweeper.run.sweeps import check_ours
from trm_core.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for d in ("trm_core", "sweeper", "benchmarks") for p in (ROOT / d).rglob("*.py"))


def test_dashboard_off_by_default_loopback_when_asked_and_a_warning_when_exposed(capsys):
    assert dashboard_options(None) == {"include_dashboard": False}
    assert dashboard_options("127.0.0.1") == {"include_dashboard": True, "dashboard_host": "127.0.0.1"}
    assert capsys.readouterr().err == ""
    assert dashboard_options("0.0.0.0")["dashboard_host"] == "0.0.0.0"
    assert "without authentication" in capsys.readouterr().err
    assert "--host 127.0.0.1" in up_command("runs/aim")


def _calls(name: str):
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == name:
                yield path, node


def test_yaml_is_only_read_with_safe_load():
    unsafe = [f"{p}:{n.lineno}" for p, n in _calls("load") if getattr(n.func.value, "id", "") == "yaml"]
    unsafe += [f"{p}:{n.lineno}" for p, n in _calls("unsafe_load")]
    assert not unsafe, unsafe


def test_torch_load_always_has_weights_only():
    loads = list(_calls("load"))
    torch_loads = [(p, n) for p, n in loads if getattr(n.func.value, "id", "") == "torch"]
    assert torch_loads, "no torch.load found: the scan is broken"
    bad = [f"{p}:{n.lineno}" for p, n in torch_loads
           if not any(k.arg == "weights_only" and getattr(k.value, "value", None) is True for k in n.keywords)]
    assert not bad, bad


def _sweep(tmp_path: Path) -> Path:
    d = tmp_path / "s"
    (d / "tune").mkdir(parents=True)
    (d / "sweep.json").write_text(json.dumps({"format": "sweeper.sweep/1", "name": "s", "spec": {}, "spec_file": "x"}))
    (d / "tune" / "tuner.pkl").write_bytes(b"")
    return d


def test_resume_refuses_state_that_is_not_ours(tmp_path):
    d = _sweep(tmp_path)
    check_ours(d, json.loads((d / "sweep.json").read_text()))  # ours: fine
    with pytest.raises(UserError, match="was not written by `python -m sweeper`"):
        check_ours(d, {"format": "something/else", "name": "s", "spec": {}, "spec_file": "x"})
    os.chmod(d / "tune" / "tuner.pkl", 0o666)
    with pytest.raises(UserError, match="writable by every user: Tune's experiment state is pickle"):
        check_ours(d, json.loads((d / "sweep.json").read_text()))
    os.chmod(d / "tune" / "tuner.pkl", 0o644)
    if os.getuid() == 0:  # root can hand the file to another user and check the owner test
        os.chown(d / "tune" / "tuner.pkl", 12345, -1)
        with pytest.raises(UserError, match="belongs to user id 12345, not to you"):
            check_ours(d, json.loads((d / "sweep.json").read_text()))
