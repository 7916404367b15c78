"""Integration tests of the sweeper: real Ray, Optuna and Aim on loopback. Shares the spec builders
and one local Ray per test module (always shut down, even when a test fails)."""

import contextlib
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "sweeper"))  # sweep_helpers


@contextlib.contextmanager
def _local_ray(num_gpus: int):
    """A real local Ray with 2 CPUs and `num_gpus` logical GPUs; workers can import the repo."""
    import ray

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    ray.init(num_cpus=2, num_gpus=num_gpus, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def ray_cluster():
    with _local_ray(num_gpus=0):
        yield


@pytest.fixture(scope="module")
def ray_one_logical_gpu():
    with _local_ray(num_gpus=1):
        yield
