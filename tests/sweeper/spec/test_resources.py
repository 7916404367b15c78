"""Trial shape versus cluster: packing, caps, and the never-satisfiable error."""

from __future__ import annotations

import pytest
from sweep_helpers import good

from sweeper.errors import SpecError
from sweeper.spec.resources import Node, check_fits, concurrency
from sweeper.spec import validate


def _spec(tmp_path, cpu=1, gpu=0, max_concurrent=None, samples=8, seeds=(0,)):
    raw = good()
    raw["resources"] = {"cpu": cpu, "gpu": gpu}
    raw["search"] = {"num_samples": samples, "max_concurrent": max_concurrent}
    raw["seeds"] = list(seeds)
    return validate("s.yaml", raw, cwd=tmp_path)


def test_fractional_gpus_pack_trials(tmp_path):
    assert concurrency(_spec(tmp_path, cpu=0.5, gpu=0.25), [Node(cpu=2, gpu=1)]) == 4
    assert concurrency(_spec(tmp_path, cpu=1, gpu=0.25), [Node(cpu=2, gpu=1)]) == 2  # CPU-bound
    assert concurrency(_spec(tmp_path, cpu=1, gpu=2), [Node(cpu=16, gpu=8), Node(cpu=16, gpu=4)]) == 6


def test_caps_by_max_concurrent_and_trial_count(tmp_path):
    assert concurrency(_spec(tmp_path, max_concurrent=3), [Node(cpu=64, gpu=0)]) == 3
    assert concurrency(_spec(tmp_path, samples=2, seeds=(0, 1)), [Node(cpu=64, gpu=0)]) == 4


@pytest.mark.parametrize("cpu,gpu,nodes,key", [
    (1, 1, [Node(cpu=2, gpu=0)], "resources.gpu"),
    (1, 4, [Node(cpu=8, gpu=2), Node(cpu=8, gpu=2)], "resources.gpu"),  # 4 GPUs, but never on one node
    (4, 0, [Node(cpu=2, gpu=0)], "resources.cpu"),
])
def test_never_satisfiable_is_an_error(tmp_path, cpu, gpu, nodes, key):
    with pytest.raises(SpecError) as info:
        check_fits(_spec(tmp_path, cpu=cpu, gpu=gpu), nodes)
    assert str(info.value).startswith(f"s.yaml: {key}: the cluster can never run a trial")
