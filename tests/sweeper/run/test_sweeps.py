"""Sweep directories: a phase's directories in order; `resume` of Tune state that an earlier layout of
the sweeper saved (refused in one line, without unpickling it) or that a full disk cut short; Tune's
checkpoint copies cut short, set aside."""

from __future__ import annotations

import json
import pickle

import pytest

from sweeper.run.sweeps import check_resumable, missing_modules, phase_dirs
from sweeper.spec.resources import Node
from trm_core.errors import UserError


def _sweep_with_state(tmp_path, blob: bytes):
    d = tmp_path / "s"
    (d / "tune").mkdir(parents=True)
    (d / "tune" / "tuner.pkl").write_bytes(blob)
    (d / "sweep.json").write_text(json.dumps({"format": "sweeper.sweep/1", "name": "s", "spec": {}, "spec_file": "x"}))
    return d


def test_state_of_today_resumes(tmp_path):
    d = _sweep_with_state(tmp_path, pickle.dumps(Node(cpu=1, gpu=0), protocol=4))
    (d / "tune" / "searcher-state-1.pkl").write_text('{"points": [], "next": 0}')  # replicate's searcher: JSON
    assert missing_modules(d) == []
    check_resumable(d, json.loads((d / "sweep.json").read_text()))


@pytest.mark.parametrize("protocol", [0, 4])
def test_state_naming_a_module_this_version_lacks_is_refused_unread(tmp_path, protocol):
    # Node's pickle with its module renamed (same length): a class the package once had, now gone
    blob = pickle.dumps(Node(cpu=1, gpu=0), protocol=protocol)
    blob = blob.replace(b"sweeper.spec.resources", b"sweeper.gone.resources")
    d = _sweep_with_state(tmp_path, blob)
    assert missing_modules(d) == ["sweeper.gone.resources"]
    with pytest.raises(UserError, match=r"sweep s was saved by an earlier version of the sweeper: its Ray Tune state"
                                        r" names sweeper.gone.resources, which this version does not have"):
        check_resumable(d, json.loads((d / "sweep.json").read_text()))


def test_phase_dirs_in_order(tmp_path):
    for name in ("replicate_10", "replicate_2", "replicate_x", "other"):
        (tmp_path / name).mkdir()
    assert [p for p, _ in phase_dirs(tmp_path)] == ["search", "replicate_2", "replicate_10"]


def test_checkpoint_copies_cut_short_are_set_aside(tmp_path):
    """A Tune checkpoint copy that a full disk or a kill cut short (empty or truncated checkpoint.pt) is
    renamed partial_checkpoint_N; whole ones stay where Tune registered them."""
    import io

    import torch

    from sweeper.run.phase import set_aside_partial_checkpoints

    trial = tmp_path / "tune" / "trial_a"
    buf = io.BytesIO()
    torch.save({"step": 3}, buf)
    for name, data in (("checkpoint_000000", buf.getvalue()), ("checkpoint_000001", b""),
                       ("checkpoint_000002", buf.getvalue()[: len(buf.getvalue()) // 2])):
        (trial / name).mkdir(parents=True)
        (trial / name / "checkpoint.pt").write_bytes(data)
    (trial / "checkpoint_000003").mkdir()  # no checkpoint.pt at all
    out = io.StringIO()
    moved = set_aside_partial_checkpoints(tmp_path, out)
    assert sorted(p.name for p in moved) == ["partial_checkpoint_000001", "partial_checkpoint_000002",
                                             "partial_checkpoint_000003"]
    assert sorted(p.name for p in trial.iterdir()) == ["checkpoint_000000", "partial_checkpoint_000001",
                                                      "partial_checkpoint_000002", "partial_checkpoint_000003"]
    assert "set aside 3 checkpoint copies cut short" in out.getvalue()


def test_tune_state_cut_short_by_a_full_disk_is_refused(tmp_path):
    """Tune copies experiment_state-*.json into storage in place: a full disk cuts it short, and Tune
    restoring it resumed 1 of 24 trials in the chaos soak. Such state is refused in one line."""
    d = _sweep_with_state(tmp_path, pickle.dumps(Node(cpu=1, gpu=0), protocol=4))
    whole = json.dumps({"trial_data": [["{}", "{}"]] * 3, "runner_data": {}, "stats": {}})
    (d / "tune" / "experiment_state-2026-12-07_15-07-02.json").write_text(whole)
    check_resumable(d, json.loads((d / "sweep.json").read_text()))
    (d / "tune" / "experiment_state-2026-12-07_15-07-02.json").write_text(whole[: len(whole) // 2])
    with pytest.raises(UserError, match=r"sweep s's Ray Tune state experiment_state-2026-12-07_15-07-02.json is cut"
                                        r" short \(its disk was full while Tune copied it"):
        check_resumable(d, json.loads((d / "sweep.json").read_text()))
