"""Where a retried trial resumes from (issue 13 fault 5): the newest readable checkpoint among Tune's
and the trainer's own; an unreadable one is skipped. Real checkpoints from the real trainer."""

from __future__ import annotations

import shutil

import pytest

from sweeper.run.trainable import resume_point


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_config):
    from trm_core.train import train

    out = tmp_path_factory.mktemp("trial") / "trainer"
    train(tiny_config(), out_dir=out)  # 4 steps, a checkpoint at 2 and at 4
    return out


def test_newest_readable_checkpoint_wins(run_dir, tmp_path):
    tune_ckpt = tmp_path / "checkpoint_000000"
    shutil.copytree(run_dir / "checkpoints" / "step_00000002", tune_ckpt)  # Tune's copy lags behind
    assert resume_point(str(tune_ckpt), str(run_dir))[1].endswith("step_00000004")
    assert resume_point(None, str(tmp_path / "no_run")) is None


def test_corrupt_checkpoints_are_skipped(run_dir, tmp_path, caplog):
    own = tmp_path / "trainer"
    shutil.copytree(run_dir, own)
    (own / "checkpoints" / "step_00000004" / "checkpoint.pt").write_bytes(b"truncated")
    tune_ckpt = tmp_path / "checkpoint_000001"
    shutil.copytree(run_dir / "checkpoints" / "step_00000004", tune_ckpt)
    (tune_ckpt / "checkpoint.pt").write_bytes(b"\x00" * 10)
    assert resume_point(str(tune_ckpt), str(own))[1].endswith("step_00000002")  # the previous, readable one
    assert "skipping Tune's checkpoint" in caplog.text and "cannot be read" in caplog.text
