"""The Ray a phase runs on: the embedded local Ray (the default), a cluster joined with --address, or
the Ray this process already started (a notebook, a test); checked to hold at least one trial."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from trm_core.errors import UserError

from sweeper.errors import SpecError
from sweeper.run.preflight import HOW_TO_CONNECT, check_address
from sweeper.spec import SweepSpec
from sweeper.spec.resources import Node, check_fits, detect_local, ray_nodes

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def dashboard_options(host: str | None) -> dict[str, Any]:
    """ray.init options for the embedded Ray's dashboard: off unless asked for, and then on loopback
    unless a host is named; a non-loopback host gets a warning (the dashboard has no authentication
    and can submit jobs, i.e. run code on this machine)."""
    if host is None:
        return {"include_dashboard": False}
    if host not in LOOPBACK:
        print(f"warning: the Ray dashboard will listen on {host}:8265 without authentication: anyone who can"
              f" reach it can run code on this machine; prefer --dashboard (127.0.0.1) and an ssh tunnel",
              file=sys.stderr)
    return {"include_dashboard": True, "dashboard_host": host}


def connect(spec: SweepSpec, address: str | None, verbose: bool, dashboard: str | None = None) -> tuple[bool, list[Node]]:
    """Join a cluster (`address`), reuse an initialised Ray, or start the embedded default.

    Returns (whether we started Ray and must stop it, the cluster's nodes); raises SpecError when no
    node can ever hold a trial.
    """
    import ray  # Ray takes seconds to import: only commands that run trials (or --dry-run --address) pay

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = False
    if not ray.is_initialized():
        if address is None:
            local = detect_local()
            check_fits(spec, [local])  # fail before paying for a Ray start
            ray.init(num_cpus=int(local.cpu), num_gpus=int(local.gpu), log_to_driver=verbose,
                     logging_level=logging.WARNING, **dashboard_options(dashboard))
        else:
            init_ray(address, verbose)
        started = True
    nodes = ray_nodes()
    try:
        check_fits(spec, nodes)
    except SpecError:
        if started:
            ray.shutdown()
        raise
    return started, nodes


def init_ray(address: str, verbose: bool) -> None:
    """Join the cluster at `address`; an unreachable one is a one-line error naming it, within seconds."""
    import ray  # as in connect

    check_address(address)
    try:
        ray.init(address=address, log_to_driver=verbose, logging_level=logging.WARNING)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"--address {address}: cannot join a Ray cluster there ({first}); {HOW_TO_CONNECT}") from None


def shutdown() -> None:
    import ray  # as in connect

    ray.shutdown()
