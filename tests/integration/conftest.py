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
def _local_ray(num_gpus: int, env: dict | None = None):
    """A real local Ray with 2 CPUs and `num_gpus` logical GPUs; workers can import the repo and see
    `env` (set in this process before Ray starts, removed after). Yields the cluster's address,
    which sweeps started as subprocesses join with --address."""
    import ray

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    ray.init(num_cpus=2, num_gpus=num_gpus, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def ray_cluster():
    with _local_ray(num_gpus=0):
        yield


@pytest.fixture(scope="module")
def ray_address():
    """A plain 2-CPU cluster that sweeps started as subprocesses join with --address."""
    with _local_ray(num_gpus=0) as address:
        yield address


@pytest.fixture(scope="module")
def ray_one_logical_gpu():
    with _local_ray(num_gpus=1):
        yield


@pytest.fixture(scope="module")
def ray_address_with_faults():
    """A cluster whose workers simulate an out-of-memory error in every trial of seed 1
    (sweeper.run.trainable.inject_fault); sweeps join it from subprocesses with --address."""
    with _local_ray(num_gpus=0, env={"SWEEPER_INJECT_FAULT": "oom:seed=1"}) as address:
        yield address
