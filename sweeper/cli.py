"""`python -m sweeper {run,resume,ls,aim-sync,replicate,report,ensemble,submit,jobs,stop,preempt-node}`: the sweep front door.

    python -m sweeper run SPEC [--set key=value ...] [--dry-run] [--address ADDR] [--name NAME]
    python -m sweeper resume [NAME_OR_PATH]        # no name: the most recent unfinished sweep
    python -m sweeper ls
    python -m sweeper aim-sync NAME_OR_PATH        # record in Aim what an Aim outage left out
    python -m sweeper replicate NAME --top K --seeds 0,1,2,3 [--set key=value ...]
    python -m sweeper report NAME [B] [--metric M] [--format md,html] [--out DIR]
    python -m sweeper ensemble NAME [--top K] [--depth ...] [--breadth ...] [--select ...] [--act]
    python -m sweeper submit SPEC [--set ...] [--address http://HOST:8265]   # a Ray job (sweeper/jobs.py)
    python -m sweeper jobs [--address ...] [--logs JOB];  python -m sweeper stop JOB [--address ...]
    python -m sweeper preempt-node [--node-id ID] [--grace S]   # before a node stops (sweeper/nodes.py)

Every user error is one line on stderr with exit code 2 (trm_core.errors.run_cli); names, paths,
the cluster address, the data and the resources a trial needs are checked before Ray starts and
before the sweep directory is claimed (sweeper.run.preflight). Exit codes of run and resume: 0 finished
(or stopped by its time budget), 1 failed (also: no trial reported the metric), 130 interrupted
(Ctrl-C, SIGTERM). Flags shared with `python -m trm_core` (--set, --progress-every) work the same way.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import yaml

from trm_core.cli import honour_sigint
from trm_core.config import to_dict
from trm_core.errors import OneLineArgumentParser, add_set_flag, run_cli
from trm_core.cli_args import add_common, add_progress_flag
from trm_core.infer.cli import add_engine_flags

from sweeper import jobs, nodes
from sweeper.run import cluster, preflight, progress
from sweeper.run.sweeps import (check_resumable, find_sweep, finished_text, format_ls, latest_unfinished, read_record,
                                spec_for_resume)
from sweeper.spec import DEFAULT_STORAGE, load_spec, set_keys
from sweeper.spec.resources import concurrency, describe_nodes, detect_local, ray_nodes

EXIT_CODES = {"finished": 0, "time_budget": 0, "failed": 1, "interrupted": 130}


def build_parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(prog="python -m sweeper", description="Sweeps of trm_core: Ray Tune schedules, Optuna searches, Aim records.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineArgumentParser)
    run = sub.add_parser("run", help="validate a spec and run its sweep")
    run.add_argument("spec", help="sweep spec YAML (see search_spaces/README.md)")
    add_set_flag(run, "sets", "override spec keys (search.num_samples=4) or trainer config keys (train.steps=200);"
                 " --set a=1 b=2 and --set a=1 --set b=2 are the same")
    run.add_argument("--dry-run", action="store_true", help="validate and print the plan, run nothing")
    run.add_argument("--name", help="sweep name: letters, digits, '_-.'; refused when a sweep has it (resume that one);"
                                    " also the Aim experiment unless aim.experiment is set (default: the spec's name,"
                                    " time-stamped when taken)")
    _driver_flags(run)
    resume = sub.add_parser("resume", help="continue an interrupted sweep (search state kept)")
    resume.add_argument("sweep", metavar="NAME_OR_PATH", nargs="?", help="default: the most recent unfinished sweep")
    resume.add_argument("--storage", help="storage root holding the sweep (default runs/sweeps)")
    _driver_flags(resume)
    ls = sub.add_parser("ls", help="past sweeps with status and best value")
    ls.add_argument("--storage", help="storage root (default runs/sweeps)")
    sync = sub.add_parser("aim-sync", help="write to Aim the trials and metrics an Aim outage left out")
    sync.add_argument("sweep", metavar="NAME_OR_PATH")
    sync.add_argument("--storage", help="storage root holding the sweep (default runs/sweeps)")
    add_report_commands(sub)
    jobs.add_job_commands(sub)
    nodes.add_node_commands(sub)
    return parser


def _driver_flags(p, dashboard: bool = True) -> None:
    """The flags of every command that runs trials (run, resume, replicate): one text for each."""
    p.add_argument("--address", help="an existing Ray cluster (auto, or HOST:PORT); default: start an embedded local Ray")
    p.add_argument("--verbose", action="store_true", help="show the trials' own output and Tune's tracebacks")
    add_progress_flag(p)
    if dashboard:
        _dashboard_flag(p)


def _dashboard_flag(p) -> None:
    p.add_argument("--dashboard", nargs="?", const="127.0.0.1", default=None, metavar="HOST",
                   help="start the embedded Ray's dashboard (port 8265) on 127.0.0.1, or on HOST (unauthenticated:"
                        " a warning is printed for a non-loopback HOST); default: no dashboard")


def add_report_commands(sub) -> None:
    """`replicate` and `report` (their logic: sweeper/run/replicate.py, sweeper/report/)."""
    rep = sub.add_parser("replicate", help="re-run a sweep's K best configurations over more seeds (a second phase)")
    rep.add_argument("sweep", metavar="NAME_OR_PATH")
    rep.add_argument("--top", type=int, required=True, metavar="K", help="how many of the best configurations")
    rep.add_argument("--seeds", required=True, help="seeds, e.g. 0,1,2,3 or 0-3")
    rep.add_argument("--storage", help="storage root holding the sweep (default runs/sweeps)")
    add_set_flag(rep, "sets", "for this phase: resources.cpu/gpu, search.max_concurrent, failure.max_retries, or"
                 " trainer config keys (train.steps=200), which make the replicated configurations new ones")
    _driver_flags(rep, dashboard=False)
    report = sub.add_parser("report", help="seed statistics, plots and exports of a sweep; with two, a comparison")
    report.add_argument("sweeps", nargs="+", metavar="NAME[:SELECTOR]",
                        help="one sweep, or two sides A B to compare (a sweep, or NAME:cfg-id / NAME:key=value)")
    report.add_argument("--metric", help="metric column (default: the sweep's metric)")
    report.add_argument("--format", default="md,html", help="md, html or md,html (default)")
    report.add_argument("--out", help="output folder (default: SWEEP/report, or SWEEP/compare/A-vs-B)")
    report.add_argument("--storage", help="storage root holding the sweeps (default runs/sweeps)")
    report.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    report.add_argument("--no-aim", action="store_true", help="do not attach the report to the sweep's Aim experiment")
    ens = sub.add_parser("ensemble", help="the final checkpoints of the K best configurations as one test-time ensemble",
                         description="Evaluate the final checkpoints of a sweep's K best configurations (every seed any"
                                     " phase trained to the end) as one ensemble with the test-time engine; the flags"
                                     " are those of `python -m trm_core eval`. Written to SWEEP/ensembles/, shown by"
                                     " `sweeper report`, attached to Aim; the same command again reuses the result.")
    ens.add_argument("sweep", metavar="NAME_OR_PATH")
    ens.add_argument("--top", type=int, default=1, metavar="K",
                     help="how many of the best configurations (ranked as `report` ranks them; default 1)")
    ens.add_argument("--storage", help="storage root holding the sweep (default runs/sweeps)")
    ens.add_argument("--no-aim", action="store_true", help="do not attach the ensemble to the sweep's Aim experiment")
    add_engine_flags(ens)
    add_common(ens)


# The commands that run trials, write Aim runs or draw plots import their modules when they run: Ray
# Tune, Optuna, Aim, scipy and matplotlib take seconds to import, which `ls`, `--dry-run` and a
# refused input (one line, exit 2) should not wait for.


def cmd_run(args) -> int:
    # a name typed on the command line is the user's choice: refused when taken, never changed
    explicit = "--name" if args.name is not None else "--set name" if "name" in set_keys(args.sets) else None
    if args.name is not None:
        preflight.check_name(args.name)
    spec = load_spec(args.spec, args.sets, name=args.name)
    preflight.check_address(args.address)
    _set_progress(args)
    if args.dry_run:
        preflight.check_paths(spec, create=False)
        text = dry_run_text(spec, args.address, preflight.planned_sweep_dir(spec.storage, spec.name, explicit))
        problems = preflight.start_problems(spec, local=args.address is None)
        print(text + "".join(f"\ncannot start here: {p}" for p in problems))
        return 0
    preflight.check_paths(spec, create=False)
    preflight.check_can_start(spec, local=args.address is None)  # data and resources, before a directory is claimed
    preflight.check_paths(spec, create=True)
    from sweeper.run.runner import run_sweep  # Ray Tune, Optuna, Aim: see above

    spec.name, _ = preflight.claim_sweep_dir(spec.storage, spec.name, explicit)
    spec.file = str(Path(spec.file).resolve())
    record = run_sweep(spec, address=args.address, verbose=args.verbose, record={"sets": args.sets},
                       dashboard=args.dashboard)
    return EXIT_CODES.get(record["status"], 1)


def _set_progress(args) -> None:
    progress.LOG_EVERY_S = args.progress_every


def cmd_resume(args) -> int:
    preflight.check_address(args.address)
    d = find_sweep(args.sweep, args.storage) if args.sweep else latest_unfinished(args.storage)
    record = read_record(d) or {}
    if record.get("status") == "finished":  # nothing to run: no Ray start, nothing rewritten
        print(finished_text(d, record))
        return 0
    spec, record = spec_for_resume(d)
    check_resumable(d, record)
    _set_progress(args)
    from sweeper.run.runner import run_sweep  # Ray Tune, Optuna, Aim: see above

    record = run_sweep(spec, address=args.address, verbose=args.verbose, resume=True, record=record,
                       dashboard=args.dashboard)
    return EXIT_CODES.get(record["status"], 1)


def cmd_aim_sync(args) -> int:
    from sweeper.aim.sync import sync_sweep  # Aim: see above

    d = find_sweep(args.sweep, args.storage)
    print(sync_sweep(d, read_record(d) or {}))
    return 0


def cmd_ls(args) -> int:
    print(format_ls(Path(args.storage or DEFAULT_STORAGE).resolve()))
    return 0


def cmd_replicate(args) -> int:
    from sweeper.run.replicate import parse_seeds, run_replicate  # Ray Tune, Aim: see above

    _set_progress(args)
    record = run_replicate(args.sweep, args.top, parse_seeds(args.seeds), storage=args.storage,
                           address=args.address, verbose=args.verbose, sets=args.sets)
    return 0 if record["status"] == "finished" else 1


def cmd_report(args) -> int:
    from sweeper.report.command import report_command  # scipy, matplotlib, Aim: see above

    return report_command(args)


def cmd_ensemble(args) -> int:
    from sweeper.report.ensemble import ensemble_command  # torch, matplotlib, Aim: see above

    return ensemble_command(args)


def dry_run_text(spec, address: str | None = None, sweep_dir: Path | None = None) -> str:
    """The resolved plan: base config, space, search, resources per trial and concurrency."""
    lines = [f"sweep {spec.name} from {spec.file}",
             f"base config ({spec.base_source} + overrides):",
             "  " + yaml.safe_dump(to_dict(spec.base_cfg), sort_keys=False).rstrip().replace("\n", "\n  "),
             f"metric: {spec.objectives_text}",
             f"space ({len(spec.searched)} searched, {len(spec.params) - len(spec.searched)} constant):"]
    width = max(len(k) for k in spec.params)
    lines += [f"  {k.ljust(width)}  {p.describe()}" for k, p in spec.params.items()]
    sampler = spec.sampler_text
    lines.append(f"search: {sampler}, {spec.num_samples} configurations x {len(spec.seeds)} seeds {spec.seeds}"
                 f" = {spec.total_trials} trials, max_concurrent {spec.max_concurrent or 'unlimited'}")
    if spec.points_to_evaluate:
        lines.append(f"  first points: {spec.points_to_evaluate}")
    if spec.scheduler == "asha":
        lines.append(f"scheduler: asha on training steps (grace_period {spec.grace_period}, reduction_factor"
                     f" {spec.reduction_factor:g}, max_t {spec.max_t})")
    else:
        lines.append("scheduler: none (every trial trains to train.steps)")
    lines.append(f"resources per trial: {spec.cpu:g} CPU, {spec.gpu:g} GPU; retries {spec.max_retries};"
                 f" time budget {f'{spec.time_budget_s:g}s' if spec.time_budget_s else 'none'}")
    lines.append(_concurrency_line(spec, address))
    where = sweep_dir or spec.storage / spec.name
    taken = f" ({spec.name} is taken: a time-stamped name)" if where.name != spec.name else ""
    lines.append(f"sweep directory: {where}{taken}")
    lines.append(f"aim: repo {spec.aim_repo}, experiment {spec.aim_experiment}")
    return "\n".join(lines)


def _concurrency_line(spec, address: str | None) -> str:
    if address:
        cluster.init_ray(address, verbose=False)
        try:
            nodes, where = ray_nodes(), f"cluster {address}"
        finally:
            cluster.shutdown()
    else:
        nodes, where = [detect_local()], "this machine"
    desc = describe_nodes(nodes)
    n = concurrency(spec, nodes)
    if n == 0:
        return (f"concurrency on {where} ({desc}): none - a trial needs {spec.cpu:g} CPU and {spec.gpu:g} GPU;"
                f" `run` would stop with an error here: use --address for a cluster that has them"
                + (f", or run {spec.cpu_variant}" if spec.cpu_variant else ""))
    return f"concurrency on {where} ({desc}): {n} trials at a time"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed: what `ensemble` records as its command
    commands = {"run": cmd_run, "resume": cmd_resume, "ls": cmd_ls, "aim-sync": cmd_aim_sync,
                "replicate": cmd_replicate, "report": cmd_report, "ensemble": cmd_ensemble}
    return {**commands, **jobs.COMMANDS, **nodes.COMMANDS}[args.command](args)


def entry() -> None:
    honour_sigint()  # as `python -m trm_core`: a background sweep stops on SIGINT too
    sys.exit(run_cli(main))
