"""Where a retried trial resumes from (issue 13 fault 5): the newest readable checkpoint among Tune's
and the trainer's own; an unreadable one is skipped. Real checkpoints from the real trainer."""

from __future__ import annotations

import json
import shutil

import pytest

from sweeper.run.trainable import ResumePoint, last_reported_step, resume_point, unreported_evaluation


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


def test_an_evaluation_tune_never_got_is_reported_on_resume(run_dir, tmp_path):
    """A trial stopped after its trainer saved step 2's checkpoint and before Tune took step 2's report
    (Tune's checkpoint is older or absent): the resumed trial reports the evaluation the trainer logged
    at step 2 first. Not when Tune has that step, nor for the final evaluation (the trainer reports it
    again when it resumes at its last step), nor for a checkpoint saved on SIGTERM (no evaluation)."""
    own = tmp_path / "trainer"
    shutil.copytree(run_dir, own)
    shutil.rmtree(own / "checkpoints" / "step_00000004")
    with (own / "metrics.jsonl").open("a") as f:
        f.write('{"step": 4, "eval/exa')  # the kill cut the last line short
    start = resume_point(None, str(own))
    assert (start.step, start.tune_step) == (2, None)
    missed = unreported_evaluation(start, str(own))
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert missed == [r for r in logged if r["step"] == 2 and "eval/exact_acc" in r][-1] and "final/exact_acc" not in missed

    tune_ckpt = tmp_path / "checkpoint_000000"
    shutil.copytree(run_dir / "checkpoints" / "step_00000002", tune_ckpt)
    assert unreported_evaluation(resume_point(str(tune_ckpt), str(own)), str(own)) is None  # Tune has step 2

    final = resume_point(None, str(run_dir))
    assert final.step == 4 and unreported_evaluation(final, str(run_dir)) is None  # the final one
    assert unreported_evaluation(ResumePoint(3, "x", 2), str(own)) is None  # no evaluation logged at step 3


def test_a_step_the_driver_took_is_not_reported_again(run_dir, tmp_path):
    """The driver took step 2's result but the retry got no Tune checkpoint (a worker killed as it
    reported, seen in CI): trial_times.json's last_step says Tune has it, so nothing is re-reported."""
    own = tmp_path / "trainer"
    shutil.copytree(run_dir, own)
    shutil.rmtree(own / "checkpoints" / "step_00000004")
    start = resume_point(None, str(own))
    times = tmp_path / "trial_times.json"
    times.write_text(json.dumps({"t1": {"last_step": 2}, "t2": {"last_step": 0}}))
    assert last_reported_step(str(times), "t1") == 2 and unreported_evaluation(start, str(own), 2) is None
    assert last_reported_step(str(times), "t2") == 0 and unreported_evaluation(start, str(own), 0)["step"] == 2
    assert last_reported_step(str(times), "t3") is None and last_reported_step(None, "t1") is None
    times.write_text("{not json")
    assert last_reported_step(str(times), "t1") is None
