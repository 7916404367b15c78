"""Resources per trial versus what a cluster has: can a trial ever run, and how many at once."""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass

import torch

from sweeper.errors import SpecError
from sweeper.spec.spec import SweepSpec


@dataclass
class Node:
    cpu: float
    gpu: float


def detect_local() -> Node:
    """CPUs this process may use and CUDA GPUs torch sees (the embedded default's Ray gets these)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        cpus = os.cpu_count() or 1
    try:
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # pragma: no cover - a broken CUDA install counts as no GPU
        gpus = 0
    return Node(cpu=float(cpus), gpu=float(gpus))


def local_nodes() -> list[Node]:
    """What a sweep without --address will run on: the Ray this process already started (a notebook,
    a test), else this machine as the embedded Ray will see it. Ray is not imported for the check."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return ray_nodes()
    return [detect_local()]


def ray_nodes() -> list[Node]:
    """Alive nodes of the connected Ray cluster."""
    import ray  # Ray takes seconds to import: only a connected sweep (or --dry-run --address) asks

    out = []
    for n in ray.nodes():
        if n.get("Alive"):
            res = n.get("Resources", {})
            out.append(Node(cpu=float(res.get("CPU", 0)), gpu=float(res.get("GPU", 0))))
    return out


def per_node(node: Node, cpu: float, gpu: float) -> int:
    """Trials of this shape that fit on one node at once."""
    fits = math.floor(node.cpu / cpu + 1e-9)
    if gpu > 0:
        fits = min(fits, math.floor(node.gpu / gpu + 1e-9))
    return max(fits, 0)


def concurrency(spec: SweepSpec, nodes: list[Node], trials: int | None = None) -> int:
    """Trials that run at once: what the nodes pack, capped by max_concurrent and the trial count
    (`trials`, default the spec's: a replicate phase runs fewer)."""
    trials = spec.total_trials if trials is None else trials
    packed = sum(per_node(n, spec.cpu, spec.gpu) for n in nodes)
    return min(packed, spec.max_concurrent or trials, trials)


def describe_nodes(nodes: list[Node]) -> str:
    cpu = sum(n.cpu for n in nodes)
    gpu = sum(n.gpu for n in nodes)
    return f"{len(nodes)} node{'s' if len(nodes) != 1 else ''}, {cpu:g} CPU, {gpu:g} GPU"


def check_fits(spec: SweepSpec, nodes: list[Node]) -> int:
    """Raise SpecError when no node can ever hold one trial; else return the concurrency."""
    if not any(per_node(n, spec.cpu, spec.gpu) for n in nodes):
        best_cpu = max((n.cpu for n in nodes), default=0)
        best_gpu = max((n.gpu for n in nodes), default=0)
        hint = ""
        if spec.gpu > best_gpu:
            what = f"a trial needs {spec.gpu:g} GPU but the largest node has {best_gpu:g}"
            key = "resources.gpu"
            if best_gpu == 0:  # the spec's CPU counterpart (`cpu_variant:`) is what to run here
                hint = (f"; on a machine without a GPU run: python -m sweeper run {spec.cpu_variant}" if spec.cpu_variant
                        else "; this spec names no CPU counterpart (cpu_variant:): join a cluster with GPUs (--address)")
        else:
            what = f"a trial needs {spec.cpu:g} CPU but the largest node has {best_cpu:g}"
            key = "resources.cpu"
        raise SpecError(spec.file, key, f"the cluster can never run a trial: {what} ({describe_nodes(nodes)}){hint}")
    return concurrency(spec, nodes)
