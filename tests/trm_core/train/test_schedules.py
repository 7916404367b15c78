"""Depth schedules: CGAR's stages by training progress, randomised depth centred on the configured one."""

import statistics

import pytest

from trm_core.config import load_config, parse_stages
from trm_core.errors import ConfigError
from trm_core.train.schedules import DEPTH_SCHEDULES, Depth


def test_cgar_stages_follow_training_progress():
    cfg = load_config("sudoku_extreme_cgar")
    cgar = DEPTH_SCHEDULES.get("cgar")
    depths = {step: cgar(cfg, step, 1000) for step in (0, 299, 300, 599, 600, 999)}
    assert depths[0] == depths[299] == Depth(2, 1, 16)
    assert depths[300] == depths[599] == Depth(4, 2, 16)
    assert depths[600] == depths[999] == Depth(6, 3, 16)


def test_parse_stages():
    assert parse_stages("0:1x1,0.5:2x3") == [(0.0, 1, 1), (0.5, 2, 3)]
    for bad in ("1x1", "0:1x1,0.5:2", "0.1:1x1", "0:1x1,0.5:2x2,0.4:3x3", "0:0x1"):
        with pytest.raises(ConfigError):
            parse_stages(bad)


def test_random_depth_varies_each_knob_by_its_own_spread():
    cfg = load_config("sudoku6_small", ["recursion.depth_schedule=random", "recursion.n_inner=3", "recursion.n_outer=3",
                                        "recursion.n_supervision=8"])  # the default spreads: T alone, +-1
    draws = [DEPTH_SCHEDULES.get("random")(cfg, step, 10_000) for step in range(300)]
    assert {d.n_outer for d in draws} == {2, 3, 4}
    assert {d.n_inner for d in draws} == {3} and {d.n_supervision for d in draws} == {8}


def test_stored_configs_with_one_spread_are_read_as_three():
    from trm_core.config import from_dict, to_dict

    old = to_dict(load_config("sudoku6_small"))
    spreads = old["recursion"]
    for knob in ("n", "t", "nsup"):
        del spreads[f"random_spread_{knob}"]
    spreads["random_spread"] = 2
    r = from_dict(old).recursion
    assert (r.random_spread_n, r.random_spread_t, r.random_spread_nsup) == (2, 2, 2)


def test_random_depth_is_centred_reproducible_and_capped():
    cfg = load_config("sudoku6_small", ["recursion.depth_schedule=random", "recursion.random_spread_n=1",
                                        "recursion.random_spread_t=1", "recursion.random_spread_nsup=1",
                                        "recursion.n_inner=3", "recursion.n_outer=1", "recursion.n_supervision=8"])
    rand = DEPTH_SCHEDULES.get("random")
    draws = [rand(cfg, step, 10_000) for step in range(3000)]
    assert statistics.mean(d.n_inner for d in draws) == pytest.approx(3, abs=0.05)
    assert {d.n_inner for d in draws} == {2, 3, 4}
    assert {d.n_outer for d in draws} == {1}  # T = 1 cannot spread and stay >= 1 and centred
    assert statistics.mean(d.n_supervision for d in draws) == pytest.approx(8, abs=0.1)
    assert rand(cfg, 17, 10_000) == rand(cfg, 17, 10_000)  # a function of (seed, step): resumes draw the same
