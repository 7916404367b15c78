"""clusters/*.yaml: each parses with yaml.safe_load and holds the fields that matter to the tool that
reads it (Ray's cluster launcher schema, KubeRay's RayJob, our workstation sizing, the loopback test)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from sweeper.spec import load_spec
from trm_core.config import to_dict
from trm_core.presets import PRESETS

ROOT = Path(__file__).resolve().parents[2]
CLUSTERS = ROOT / "clusters"
LAUNCHER = ["aws.yaml", "gcp.yaml", "local_gpu_cluster.yaml"]


def load(name: str) -> dict:
    return yaml.safe_load((CLUSTERS / name).read_text())


def test_every_cluster_file_is_covered():
    assert {p.name for p in CLUSTERS.glob("*.yaml")} == {*LAUNCHER, "workstation.yaml", "local-2node.yaml",
                                                        "kuberay-rayjob.yaml"}


def _start_args(commands: list[str]) -> dict[str, str]:
    """`--flag=value` words of the `ray start` command in a list of shell commands."""
    line = next(c for c in commands if "ray start" in c)
    return dict(w.split("=", 1) if "=" in w else (w, "") for w in shlex.split(line.split("ray start", 1)[1]))


@pytest.mark.parametrize("name", LAUNCHER)
def test_launcher_configs_pass_rays_schema(name):
    import json

    import jsonschema
    import ray.autoscaler

    cfg = load(name)
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(cfg, schema)  # the schema `ray up` checks: unknown or misspelt keys fail here
    head = _start_args(cfg["head_start_ray_commands"])
    assert "--head" in head and head["--dashboard-host"] == "127.0.0.1"  # the dashboard runs jobs: loopback only
    assert "RAY_USAGE_STATS_ENABLED=0" in " ".join(cfg["head_start_ray_commands"])
    assert _start_args(cfg["worker_start_ray_commands"])["--address"] == "$RAY_HEAD_IP:6379"


@pytest.mark.parametrize("name", ["aws.yaml", "gcp.yaml"])
def test_cloud_configs_gpu_workers_shared_storage_and_token(name):
    cfg = load(name)
    assert cfg["provider"]["type"] == name.removesuffix(".yaml")
    types = cfg["available_node_types"]
    head = types[cfg["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["resources"]["CPU"] == 0  # driver + Aim writer only
    workers = [t for k, t in types.items() if k != cfg["head_node_type"]]
    assert workers and all(t["resources"]["GPU"] >= 1 and t["min_workers"] >= 1 for t in workers)
    assert all(t["max_workers"] <= cfg["max_workers"] for t in workers)
    setup = " ".join(cfg["setup_commands"])
    assert "mount" in setup and "/mnt/trm" in setup and "make setup" in setup  # NFS at one path on every node
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        joined = " ".join(cfg[key])
        assert "RAY_AUTH_MODE=token" in joined and "trm/.venv/bin:$PATH" in joined
    assert {".venv", ".git", "data", "runs"} <= set(cfg["rsync_exclude"])


def test_gcp_gpu_workers_terminate_on_host_maintenance():
    cfg = load("gcp.yaml")
    worker = cfg["available_node_types"]["gpu_worker"]["node_config"]
    assert {"onHostMaintenance": "TERMINATE"} in worker["scheduling"]


def test_kuberay_rayjob_fields():
    job = load("kuberay-rayjob.yaml")
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    words = shlex.split(spec["entrypoint"])
    assert words[:4] == ["python", "-m", "sweeper", "run"] and (ROOT / words[4]).exists()
    assert words[words.index("--address") + 1] == "auto"
    sets = dict(w.split("=", 1) for w in words[words.index("--set") + 1:])
    assert sets["storage"].startswith("/mnt/trm/") and sets["aim.repo"].startswith("/mnt/aim/")
    assert yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]["RAY_USAGE_STATS_ENABLED"] == "0"
    assert spec["shutdownAfterJobFinishes"] is True
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"].startswith("2.")
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    mounts = {m["mountPath"]: m["name"] for m in head["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert mounts == {"/mnt/trm": "shared", "/mnt/aim": "aim"}
    for group in cluster["workerGroupSpecs"]:
        container = group["template"]["spec"]["containers"][0]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert [m["mountPath"] for m in container["volumeMounts"]] == ["/mnt/trm"]  # no Aim repo on workers / NFS
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def test_local_two_node_config():
    cfg = load("local-2node.yaml")
    assert cfg["host"] == "127.0.0.1" and cfg["auth_mode"] == "token"
    nodes = cfg["nodes"]
    assert [n["head"] for n in nodes.values()] == [True, False]
    resources = [set(n["resources"]) for n in nodes.values()]
    assert not resources[0] & resources[1]  # a distinct custom resource per node


def _need_gib(shape: dict, headroom: dict) -> float:
    return shape["rows"] * shape["compiled_mib_per_row"] / 1024 * headroom["factor"] + headroom["fixed_gib"]


def test_workstation_shares_follow_the_memory_arithmetic():
    cfg = load("workstation.yaml")
    card = cfg["node"]["gpu"]["memory_gib"]
    assert card == 32 and cfg["node"]["ray_start"]["num_gpus"] == 1
    assert cfg["node"]["ray_start"]["dashboard_host"] == "127.0.0.1"
    for shape in cfg["trial_shapes"]:
        assert shape["preset"] in PRESETS
        need = _need_gib(shape, cfg["headroom"])
        smallest = next(share for share in (0.25, 0.5, 1) if need <= share * card)
        assert shape["gpu"] == smallest, (shape, round(need, 1))


def test_workstation_shares_match_the_specs():
    cfg = load("workstation.yaml")
    named = [(spec, shape) for shape in cfg["trial_shapes"] for spec in shape["specs"]]
    assert len(named) == 3
    for spec_file, shape in named:
        spec = load_spec(str(ROOT / spec_file), [])
        base = to_dict(spec.base_cfg)
        rows = base["train"]["batch_rows"] or base["train"]["batch_size"] * base["recursion"]["chains"]
        assert (spec.raw["base"]["preset"], rows, spec.gpu) == (shape["preset"], shape["rows"], shape["gpu"]), spec_file
