"""`python -m sweeper submit / jobs / stop`: sweeps as Ray jobs on a cluster (clusters/README.md).

`submit` validates the spec here, then sends this directory (minus data, runs, .venv, .git) to the
cluster's job server with Ray's JobSubmissionClient; the job runs `python -m sweeper run SPEC
--address auto` on the head node, with `storage` and `aim.repo` made absolute (a job runs in a copy
of the directory under Ray's session folder, where relative paths would vanish with the session).

Token authentication (Ray 2.60 clusters started with `RAY_AUTH_MODE=token`, and local clusters by
default): the token is found the way Ray's own clients find it, by Ray's AuthenticationTokenLoader:
the RAY_AUTH_TOKEN variable, else the file named by RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token.
It is sent as a header and never printed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from trm_core.errors import UserError, add_set_flag

from sweeper.run import preflight
from sweeper.spec import load_spec

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
# Anchored at the working directory's root: `data` alone would also drop trm_core/data.
EXCLUDES = ["/data", "/runs", "/.venv", "/.git", "__pycache__", "*.egg-info", ".pytest_cache", ".hypothesis"]
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
STOP_WAIT_S = 60
CONNECT_TIMEOUT_S = 10.0
ANSWER_TIMEOUT_S = 15.0  # with the connection: an unreachable address is refused within 30 s
TOKEN_SOURCES = "RAY_AUTH_TOKEN, the file named by RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token"


def job_address(address: str | None) -> str:
    """The job server's URL: --address, else $RAY_API_SERVER_ADDRESS, else the local dashboard."""
    address = address or os.environ.get("RAY_API_SERVER_ADDRESS") or DEFAULT_ADDRESS
    url = address if "://" in address else f"http://{address}"
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("http", "https") or not parts.hostname or not port:
        raise UserError(f"--address must be the job server's http://HOST:PORT (the dashboard, port 8265 by"
                        f" default), but got {address!r}")
    return url.rstrip("/")


def check_reachable(url: str, connect_s: float = CONNECT_TIMEOUT_S, answer_s: float = ANSWER_TIMEOUT_S) -> None:
    """The job server accepts a connection within `connect_s` and answers within `answer_s` (the SDK
    itself waits forever on a server that accepts and never answers), or a one-line error."""
    import requests  # only the job commands talk HTTP: the other commands need not load it

    parts = urlsplit(url)
    try:
        r = requests.get(f"{url}/api/version", timeout=(connect_s, answer_s))
    except requests.exceptions.ConnectTimeout:
        reason = f"no connection within {connect_s:g}s"
    except requests.exceptions.ReadTimeout:
        reason = f"it accepted a connection but did not answer within {answer_s:g}s"
    except requests.exceptions.RequestException as exc:
        inner = exc.args[0] if exc.args else exc
        reason = str(getattr(inner, "reason", inner)).split(": ")[-1] or type(exc).__name__
    else:
        if r.status_code in (401, 403) or (r.ok and "ray_version" in r.text):  # Ray's, with or without a token
            return
        reason = f"something answers there, but not Ray's job API: HTTP {r.status_code} for /api/version"
    raise UserError(f"--address {url}: no Ray job server answers at {parts.hostname}:{parts.port} ({reason});"
                    f" start a cluster with `ray start --head --dashboard-host=127.0.0.1` (its job server"
                    f" listens on port 8265) or give its http://HOST:PORT")


def auth_headers() -> dict[str, str]:
    """The Authorization header for token authentication, from Ray's own token loader; {} when
    RAY_AUTH_MODE=disabled or no token is configured (a cluster that needs one then answers 401)."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return {}
    from ray._raylet import AuthenticationTokenLoader  # Ray takes seconds to import: only job commands pay

    loader = AuthenticationTokenLoader.instance()
    if not loader.has_token(ignore_auth_mode=True):
        if os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
            raise UserError(f"RAY_AUTH_MODE=token but no token was found: set {TOKEN_SOURCES}"
                            f" (`ray get-auth-token` on the head prints the cluster's)")
        return {}
    return dict(loader.get_token_for_http_header(ignore_auth_mode=True))


def connect(address: str | None):
    """A JobSubmissionClient for `address`, after the address, reachability and token checks."""
    url = job_address(address)
    check_reachable(url)
    from ray.exceptions import AuthenticationError  # Ray: as in auth_headers
    from ray.job_submission import JobSubmissionClient  # Ray: as in auth_headers

    for name in ("ray.dashboard.modules.dashboard_sdk", "ray.dashboard.modules.job.sdk", "ray._private.runtime_env.packaging"):
        logging.getLogger(name).setLevel(logging.WARNING)  # after the import, which configures Ray's logging

    try:
        return JobSubmissionClient(url, headers=auth_headers())
    except AuthenticationError as exc:
        raise UserError(_auth_message(url, exc)) from None
    except (ConnectionError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"--address {url}: not a Ray job server ({first})") from None


def _auth_message(url: str, exc: Exception) -> str:
    if "Authentication required" in str(exc):
        return f"--address {url}: the cluster requires a token and none was sent: set {TOKEN_SOURCES}"
    return (f"--address {url}: the cluster refused the token (403): the token in {TOKEN_SOURCES} is not this"
            f" cluster's (`ray get-auth-token` on its head prints the right one)")


def spec_in_workdir(spec_file: str, workdir: Path) -> str:
    """The spec's path relative to the working directory: the job reads it from its copy there."""
    path = Path(spec_file).resolve()
    try:
        return path.relative_to(workdir).as_posix()
    except ValueError:
        raise UserError(f"SPEC must be inside the working directory {workdir} (only it is sent to the cluster),"
                        f" but got {spec_file}; copy the spec into it or run from a folder that holds it") from None


def entrypoint(spec_rel: str, sets: list[str], storage: Path, aim_repo: Path, extra: list[str]) -> str:
    """`python -m sweeper run SPEC --address auto --set ... storage=ABS aim.repo=ABS` (quoted)."""
    words = ["python", "-m", "sweeper", "run", spec_rel, "--address", "auto", *extra, "--set", *sets,
             f"storage={storage}", f"aim.repo={aim_repo}"]
    return " ".join(shlex.quote(w) for w in words)


def cmd_submit(args) -> int:
    workdir = Path.cwd().resolve()
    spec_rel = spec_in_workdir(args.spec, workdir)
    extra = []
    if args.name is not None:
        extra = ["--name", preflight.check_name(args.name)]
    spec = load_spec(args.spec, args.sets, name=args.name)  # a bad spec or --set fails here, before any connection
    client = connect(args.address)
    command = entrypoint(spec_rel, list(args.sets), spec.storage, spec.aim_repo, extra)
    runtime_env = {"working_dir": str(workdir), "excludes": EXCLUDES,
                   "env_vars": {"RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1",
                                # `stop` sends SIGTERM, then SIGKILL after this: time for the sweep to stop
                                # its trials and record `interrupted` (Ray's default is 3 s)
                                "RAY_JOB_STOP_WAIT_TIME_S": str(STOP_WAIT_S)}}
    job_id = client.submit_job(entrypoint=command, runtime_env=runtime_env,
                               metadata={"sweep": spec.name, "spec": spec_rel})
    print(f"job {job_id} submitted to {client.get_address()}: {command}", flush=True)
    print(f"storage {spec.storage}, aim repo {spec.aim_repo} (paths on the head node)", flush=True)
    if args.no_wait:
        print(f"follow it with: python -m sweeper jobs --address {client.get_address()} --logs {job_id}")
        return 0
    return follow(client, job_id)


def follow(client, job_id: str) -> int:
    """Print the job's log as it grows; exit 0 if it succeeded, 2 if the sweep refused its input
    (its own one-line error is the last log line), 1 otherwise. Ctrl-C leaves the job running."""
    try:
        asyncio.run(_tail(client, job_id))
    except KeyboardInterrupt:
        print(f"\nstopped following; job {job_id} keeps running (python -m sweeper stop {job_id}"
              f" --address {client.get_address()})", file=sys.stderr)
        return 130
    info = client.get_job_info(job_id)
    while str(info.status) not in TERMINAL:  # the log stream can end a moment before the status
        time.sleep(0.5)
        info = client.get_job_info(job_id)
    status = str(info.status)
    print(f"job {job_id} {status}" + (f": {info.message}" if status != "SUCCEEDED" and info.message else ""))
    if status == "SUCCEEDED":
        return 0
    if info.driver_exit_code == 2:
        lines = [ln for ln in client.get_job_logs(job_id).splitlines() if ln.startswith("error: ")]
        raise UserError(lines[-1][len("error: "):] if lines else f"job {job_id} refused its input (exit 2)")
    return 1


async def _tail(client, job_id: str) -> None:
    async for chunk in client.tail_job_logs(job_id):
        print(chunk, end="", flush=True)


def cmd_jobs(args) -> int:
    client = connect(args.address)
    if args.logs:
        print(_job_logs(client, args.logs), end="")
        return 0
    jobs = sorted(client.list_jobs(), key=lambda j: j.start_time or 0)
    if not jobs:
        print(f"no jobs on {client.get_address()}")
        return 0
    print(f"{'JOB':<30} {'STATUS':<10} {'STARTED':<19} ENTRYPOINT")
    for j in jobs:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(j.start_time / 1000)) if j.start_time else "-"
        command = j.entrypoint if len(j.entrypoint) <= 80 else j.entrypoint[:77] + "..."
        print(f"{j.submission_id or j.job_id:<30} {str(j.status):<10} {started:<19} {command}")
    return 0


def _job_logs(client, job_id: str) -> str:
    try:
        return client.get_job_logs(job_id)
    except RuntimeError:
        raise UserError(f"--logs: no job {job_id!r} on {client.get_address()} (see python -m sweeper jobs)") from None


def cmd_stop(args) -> int:
    client = connect(args.address)
    try:
        info = client.get_job_info(args.job)
    except RuntimeError:
        raise UserError(f"JOB: no job {args.job!r} on {client.get_address()} (see python -m sweeper jobs)") from None
    if str(info.status) in TERMINAL:
        print(f"job {args.job} already {info.status}")
        return 0
    client.stop_job(args.job)
    print(f"job {args.job}: stop requested (SIGTERM to the sweep, which records it as interrupted;"
          f" resume it with `python -m sweeper resume`)")
    return 0


def add_job_commands(sub) -> None:
    """Registers submit, jobs and stop on the sweeper's subparsers (sweeper/cli.py)."""
    help_address = f"the cluster's job server, http://HOST:PORT (default $RAY_API_SERVER_ADDRESS or {DEFAULT_ADDRESS})"
    submit = sub.add_parser("submit", help="run a sweep as a Ray job on a cluster, and follow its log")
    submit.add_argument("spec", help="sweep spec YAML inside the current directory (which is sent to the cluster)")
    add_set_flag(submit, "sets", "override spec or trainer config keys, as in `run`")
    submit.add_argument("--address", help=help_address)
    submit.add_argument("--name", help="sweep name, as in `run` (refused on the cluster when a sweep has it;"
                                       " default: the spec's name, time-stamped if taken)")
    submit.add_argument("--no-wait", action="store_true", help="print the job id and return")
    jobs = sub.add_parser("jobs", help="the cluster's jobs with status")
    jobs.add_argument("--address", help=help_address)
    jobs.add_argument("--logs", metavar="JOB", help="print one job's log instead")
    stop = sub.add_parser("stop", help="stop a submitted job")
    stop.add_argument("job", metavar="JOB", help="the job id printed by submit (see `jobs`)")
    stop.add_argument("--address", help=help_address)


COMMANDS = {"submit": cmd_submit, "jobs": cmd_jobs, "stop": cmd_stop}
