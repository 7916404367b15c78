"""The replicate phase's plan (no Ray): which configurations, which (configuration, seed) pairs run,
which are reused, and when a phase resumes or is refused. The real run: tests/integration."""

from __future__ import annotations

import json

import pytest
from report_helpers import trial, write_sweep

from sweeper.report import data as rd
from sweeper.run.replicate import FixedPoints, make_plan, next_phase, parse_seeds
from trm_core.errors import UserError


def test_parse_seeds():
    assert parse_seeds("0,1,2,3") == parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("0-2,8") == [0, 1, 2, 8]
    for bad in ("", "a", "1,1", "-1", "3-x"):
        with pytest.raises(UserError, match="--seeds must be"):
            parse_seeds(bad)


@pytest.fixture()
def searched(tmp_path):
    p = lambda lr, n: {"optim.lr": lr, "recursion.n_inner": n}
    rows = [trial("a0", "cfg-a", 0, "done", 0.95, p(1e-3, 2)), trial("a1", "cfg-a", 1, "stopped_early", 0.2, p(1e-3, 2), step=30),
            trial("b0", "cfg-b", 0, "done", 0.97, p(2e-3, 3)),
            trial("c0", "cfg-c", 0, "done", 0.50, p(3e-3, 1)),
            trial("d0", "cfg-d", 0, "stopped_early", 0.99, p(4e-3, 1), step=30),  # not final: not ranked
            trial("e0", "cfg-e", 0, "error", None, p(5e-3, 1), error="RuntimeError: x")]
    write_sweep(tmp_path, "s", rows)
    return tmp_path


def test_plan_ranks_final_trials_and_reuses_finished_pairs(searched):
    plan = make_plan(rd.load("s", str(searched)), top=2, seeds=[0, 1, 2])
    assert [c["config_id"] for c in plan["configs"]] == ["cfg-b", "cfg-a"]
    assert plan["configs"][0]["params"] == {"optim.lr": 2e-3, "recursion.n_inner": 3}  # exact, from params.json
    assert isinstance(plan["configs"][0]["params"]["recursion.n_inner"], int)
    # seed 0 of both trained to the end: reused; cfg-a's seed 1 stopped early: re-run
    runs = [(p["optim.lr"], p["__trial_index__"]) for p in plan["points"]]
    assert runs == [(2e-3, 1), (2e-3, 2), (1e-3, 1), (1e-3, 2)] and plan["pairs"] == 6
    assert make_plan(rd.load("s", str(searched)), top=10, seeds=[0])["points"] == []  # every pair is done
    assert len(make_plan(rd.load("s", str(searched)), top=10, seeds=[0])["configs"]) == 3


def test_plan_for_minimised_metrics_and_empty_sweeps(tmp_path, searched):
    d = searched / "s" / "sweep.json"
    d.write_text(json.dumps({**json.loads(d.read_text()), "mode": "min"}))
    assert make_plan(rd.load("s", str(searched)), 1, [0])["configs"][0]["config_id"] == "cfg-c"
    write_sweep(tmp_path, "none", [trial("x", "cfg-x", 0, "stopped_early", 0.1, {"optim.lr": 1e-3}, step=30)])
    with pytest.raises(UserError, match="sweep none has no configuration with a trial trained to the end yet"):
        make_plan(rd.load("none", str(tmp_path)), 1, [0])


def test_unfinished_phase_resumes_with_the_same_command_only(searched):
    d = searched / "s"
    assert next_phase(d, 2, [0, 1]) == (d / "replicate_1", None)
    (d / "replicate_1").mkdir()
    record = {"phase": "replicate_1", "top": 2, "seeds": [0, 1], "status": "running", "pid": 2**22 + 12345, "points": []}
    (d / "replicate_1" / "phase.json").write_text(json.dumps(record))  # its driver is gone: interrupted
    path, rec = next_phase(d, 2, [0, 1])
    assert path == d / "replicate_1" and rec["status"] == "interrupted"
    with pytest.raises(UserError, match=r"replicate_1 of sweep s is unfinished \(--top 2 --seeds 0,1\)"):
        next_phase(d, 3, [0, 1])
    (d / "replicate_1" / "phase.json").write_text(json.dumps({**record, "status": "finished"}))
    assert next_phase(d, 3, [0, 1]) == (d / "replicate_2", None)


def test_fixed_points_suggests_each_point_once_across_a_restore(tmp_path):
    s = FixedPoints([{"x": 1}, {"x": 2}])
    assert s.suggest("t1") == {"x": 1}
    s.save(str(tmp_path / "state"))
    again = FixedPoints([])
    again.restore(str(tmp_path / "state"))
    assert again.suggest("t2") == {"x": 2} and again.suggest("t3") == FixedPoints.FINISHED


def test_bad_replicate_arguments_fail_before_ray_starts(searched):
    from sweeper.cli import main

    base = ["replicate", "s", "--storage", str(searched)]
    with pytest.raises(UserError, match="--top must be >= 1, but got 0"):
        main([*base, "--top", "0", "--seeds", "0,1"])
    with pytest.raises(UserError, match="--seeds must be integers like 0,1,2,3 or 0-3, but got 'one'"):
        main([*base, "--top", "1", "--seeds", "one"])
    with pytest.raises(UserError, match="no sweep 'nope'"):
        main(["replicate", "nope", "--top", "1", "--seeds", "0", "--storage", str(searched)])
    import ray

    assert not ray.is_initialized()


def test_phase_sets_change_how_it_runs_and_trainer_keys_are_checked(tmp_path):
    """Issue 26 item 9: `replicate --set` applies spec keys of how a phase runs to the sweep's spec, keeps
    trainer keys apart (they become parameters of the replicated configurations) and checks them."""
    import yaml
    from sweep_helpers import good, write_spec

    from sweeper.run.replicate import phase_spec, split_sets

    spec_file = write_spec(tmp_path / "s.yaml", {**good(), "storage": str(tmp_path / "sweeps"),
                                                  "aim": {"repo": str(tmp_path / "aim")}})
    d = tmp_path / "sweeps" / "s"
    d.mkdir(parents=True)
    (d / "sweep.json").write_text(json.dumps({"format": "sweeper.sweep/1", "name": "s", "spec_file": spec_file,
                                              "spec": yaml.safe_load(open(spec_file)), "aim_repo": str(tmp_path / "aim"),
                                              "status": "finished"}))
    spec_sets, overrides = split_sets(["resources.cpu=2", "search.max_concurrent=1", "train.steps=50"])
    spec = phase_spec(d, spec_sets, overrides)
    assert (spec.cpu, spec.max_concurrent, spec.name, overrides) == (2.0, 1, "s", {"train.steps": 50})
    assert spec.base_cfg.train.steps == 20  # trainer keys go into the phase's points, not the base
    with pytest.raises(UserError, match="replicate --set: train.steps > 0 must hold"):
        phase_spec(d, [], {"train.steps": -1})
    with pytest.raises(UserError, match="replicate --set seeds: a replicate phase takes"):
        split_sets(["seeds=[0,1]"])
