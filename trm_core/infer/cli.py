"""`python -m trm_core eval CHECKPOINT [CHECKPOINT ...] [test-time flags]`.

With one checkpoint and none of the test-time flags, `eval` is the trainer's evaluation (one
chain, the trained depth; prints its metrics as JSON, as before). Any test-time flag, or several
checkpoints, runs the test-time scaling engine (trm_core.infer.engine) and prints one table:

    python -m trm_core eval CKPT [CKPT ...] --depth 64 --breadth 16 [--transforms 4] [--act]
        [--select halt_first,prob_avg,majority,top1_converged,oracle] [--json FILE] [--plot DIR]
        [--max-batch N] [--limit N] [--noise-beta X] [--window L] [--seed S] [--aas] [--set k=v ...]

--depth and --breadth take one value or a comma list: one rollout at the largest values is read
at every listed depth and breadth.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from trm_core.errors import UserError, probe_writable, write_text_atomic
from trm_core.cli_args import add_common, overrides, warn

ENGINE_FLAGS = ("depth", "breadth", "transforms", "act", "select", "json", "plot", "max_batch", "noise_beta",
                "window", "seed", "aas")


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer or a comma list of integers, but got '{text}'") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def add_engine_flags(p) -> None:
    """The engine's flags (--limit, --depth, --breadth, --transforms, --act, --select, --json, --plot,
    --max-batch, --noise-beta, --window, --seed, --aas): one grammar for `python -m trm_core eval` and
    `python -m sweeper ensemble`."""
    from trm_core.infer.engine import DEFAULT_RULES

    p.add_argument("--limit", type=int, default=0, metavar="N",
                   help="evaluate a seeded subset of N puzzles (default 0: the whole split)")
    p.add_argument("--depth", type=_ints, default=None, metavar="D[,D...]",
                   help="supervision steps (default: the trained N_sup); a list is read from one rollout")
    p.add_argument("--breadth", type=_ints, default=None, metavar="B[,B...]",
                   help="independent restarts per member (random inits and/or path noise; default 1)")
    p.add_argument("--transforms", default=None, metavar="N|NAMES",
                   help="input transforms per checkpoint: a count (identity + random ones) or names, e.g. "
                        "identity,digits,transpose (default 1: identity)")
    p.add_argument("--act", action="store_true", help="stop each row at its first q_halt > 0 (a refill queue)")
    p.add_argument("--select", type=_names, default=None, metavar="RULES",
                   help=f"selection rules, comma list (default: {','.join(DEFAULT_RULES)})")
    p.add_argument("--json", default=None, metavar="FILE", help="write every number as JSON")
    p.add_argument("--plot", default=None, metavar="DIR", help="write PNG plots to DIR")
    p.add_argument("--max-batch", type=int, default=None, metavar="N", help="rows stepped together (default: 256 on a CPU, 4096 on a GPU)")
    p.add_argument("--noise-beta", type=float, default=None, metavar="X",
                   help="test-time path noise beta (default: the checkpoint's recursion.eval_noise_beta)")
    p.add_argument("--window", type=int, default=None, metavar="L", help="top1_converged's residual window (default 3)")
    p.add_argument("--seed", type=int, default=None, help="seed of the restarts' inits and noise (default 0)")
    p.add_argument("--aas", action="store_true", help="also measure the Asymptotic Alignment Score")


def register(subparsers) -> None:
    ev = subparsers.add_parser(
        "eval", help="evaluate checkpoints: the trainer's evaluation, or test-time scaling",
        description="Evaluate checkpoints on their held-out split (EMA weights if present). One checkpoint and no "
                    "test-time flag: the trainer's evaluation, as JSON. Otherwise the test-time scaling engine: "
                    "depth, breadth, ensembles of checkpoints x transforms, selection rules; one table.")
    ev.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT",
                    help="run directories (their latest readable checkpoint), checkpoint directories or checkpoint.pt files")
    add_engine_flags(ev)
    add_common(ev)
    ev.set_defaults(func=cmd_eval)


def _engine_wanted(args) -> bool:
    given = [getattr(args, f) for f in ENGINE_FLAGS]
    return len(args.checkpoints) > 1 or any(v is not None and v is not False for v in given)


def infer_spec(args):
    """The InferSpec the engine flags ask for (unchecked)."""
    from trm_core.infer.engine import InferSpec

    given = {"depths": args.depth, "breadths": args.breadth, "transforms": args.transforms, "act": args.act,
             "select": args.select, "max_batch": args.max_batch, "noise_beta": args.noise_beta,
             "window": args.window, "seed": args.seed, "aas": args.aas}
    return InferSpec(**{k: v for k, v in given.items() if v is not None})


def check_outputs(args) -> None:
    """Fail before the rollout (it can take minutes) when a result could not be written: --json's
    folder must exist and take a file, --plot must be a folder we can create and write. The probe
    leaves nothing behind."""
    if args.json:
        path = Path(args.json).expanduser()
        if path.is_dir():
            raise UserError(f"--json {args.json} must be a file name, but is a directory")
        if not path.resolve().parent.is_dir():
            raise UserError(f"--json {args.json}: its directory does not exist")
        _probe_writable(path.resolve().parent, "--json", args.json)
    if args.plot:
        from trm_core.infer.plots import _pyplot

        _pyplot()
        if Path(args.plot).exists() and not Path(args.plot).is_dir():
            raise UserError(f"--plot {args.plot} must be a directory, but is a file")
        _probe_writable(Path(args.plot).expanduser(), "--plot", args.plot)


def _probe_writable(folder: Path, flag: str, given: str) -> None:
    """Create `folder` (and missing parents) and a file in it, then remove what was created."""
    created = [p for p in [folder, *folder.parents] if not p.exists()]
    try:
        probe_writable(folder)
    except OSError as exc:
        raise UserError(f"{flag} {given}: cannot write there: {exc.strerror or exc}") from None
    finally:
        for p in created:  # deepest first; a folder the user made meanwhile is not empty and stays
            try:
                p.rmdir()
            except OSError:
                break


def cmd_eval(args) -> int:
    from trm_core.checkpoint import resolve_resume

    args.checkpoints = [str(resolve_resume(p, warn=warn)) for p in args.checkpoints]
    if not _engine_wanted(args):
        from trm_core.train.evaluate_checkpoint import evaluate_checkpoint

        print(json.dumps(evaluate_checkpoint(args.checkpoints[0], overrides(args), args.limit)))
        return 0
    from trm_core.infer.engine import run
    from trm_core.infer.report import table

    spec = infer_spec(args).check()
    check_outputs(args)  # before the rollout: a bad path must not cost its minutes
    result = run(args.checkpoints, spec, overrides(args), args.limit, progress=True)
    print(table(result))
    data = result.to_json()
    if args.json:
        write_text_atomic(os.path.expanduser(args.json), json.dumps(data, indent=1) + "\n")
        print(f"json: {args.json}")
    if args.plot:
        from trm_core.infer.plots import write_plots

        paths = write_plots(data, args.plot)
        print(f"plots: {', '.join(str(p) for p in paths)}")
    sys.stdout.flush()
    return 0
