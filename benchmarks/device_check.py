"""One command for a GPU: what no CPU can tell, measured in one run of at most ~8 minutes.

    python benchmarks/device_check.py [--reference /tmp/trm-ref] [--out runs/device_check]
    python benchmarks/device_check.py --cpu-smoke --out /tmp/device_check   # tiny shapes, on the CPU

On a CUDA GPU it measures, each section timed interleaved where it compares:
1. throughput: the paper shape (h512, 81 cells, n 6, T 3) in bf16, eager and compiled, ours
   (train.precision amp and reference) and, with --reference, the public reference TRM compiled
   (its forward_dtype bf16, its pretrain.py's torch.compile), puzzle-steps/s and MFU against the
   card's dense bf16 peak (trm_core.train.bench.PEAK_TFLOPS);
2. memory: the peak memory one training step allocates per row, against
   benchmarks/memory_per_row.py's estimate for the same rows, and the GPU share a 768-row trial
   then needs (the specs' `resources.gpu`);
3. packing: two trials of a real sweep (sweeper, Ray, Optuna, Aim) at 0.5 GPU each running at
   the same time, each one's throughput (perf/puzzle_steps_per_s) against one trial alone;
4. chains: K = 4 WTA chains against K = 1 at the same puzzles per step (cost per step and per row);
5. breadth: B = 8 restarts in one rollout against one restart at the same depth (cost per row);
6. replicas: train.replicas (vmap) S = 4 against 1, when the trainer has it (it does not yet:
   the section says so).
It writes device_check.json and device_check.md (a Markdown table) to --out and prints the table.
`--cpu-smoke` runs every section at tiny shapes on the CPU (the sweep on logical CPUs), so the
script is known to work before it meets a GPU; the test suite runs it.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402
import yaml  # noqa: E402

from trm_core.config import load_config, set_value  # noqa: E402
from trm_core.train.bench import Stepper, matmul_peak_tflops, peak_tflops, time_interleaved  # noqa: E402

PAPER = ["data.task=sudoku", "model.prefix_len=0", "optim.warmup_steps=0", "train.dtype=bfloat16"]
SMOKE = ["model.hidden_size=32", "model.swiglu_multiple=16", "recursion.n_inner=2", "recursion.n_outer=1",
         "recursion.n_supervision=2", "data.board_size=4", "optim.warmup_steps=0"]


class Plan:
    """Sizes of each section: the GPU run, or the CPU smoke run."""

    def __init__(self, smoke: bool, address: str | None = None):
        self.smoke, self.address = smoke, address
        self.device = "cpu" if smoke else "cuda"
        self.preset = "sudoku_extreme_trm"
        self.base = PAPER + ["device=cpu"] + SMOKE if smoke else PAPER + ["device=cuda"]
        self.batch = 8 if smoke else 256
        self.steps, self.warmup, self.rounds = (2, 1, 1) if smoke else (12, 3, 3)
        self.memory_rows = 4 if smoke else 64
        self.sweep_steps = 6 if smoke else 300
        self.breadth_puzzles, self.depth = (4, 2) if smoke else (256, 16)


def config(plan: Plan, *extra: str):
    return load_config(plan.preset, plan.base + [f"train.batch_size={plan.batch}", *extra])


def section_throughput(plan: Plan, reference: str | None) -> dict:
    device = torch.device(plan.device)
    steppers = {}
    for precision in ("amp", "reference"):
        cfg = config(plan, f"train.precision={precision}")
        for compiled in (False, True):
            name = f"ours_{precision}{'_compiled' if compiled else ''}"
            steppers[name] = Stepper(cfg, device, compiled, "bfloat16")
    rates = time_interleaved(steppers, plan.steps, plan.warmup, plan.rounds)
    cfg = config(plan)
    from trm_core.model.trm import build_model, task_shape

    flops = build_model(cfg, *task_shape(cfg.data)).flops_per_puzzle_step(cfg.recursion.n_inner, cfg.recursion.n_outer)
    peaks = peak_tflops(device) or {"bfloat16": matmul_peak_tflops(device, torch.bfloat16)}
    out = {"batch": plan.batch, "flops_per_puzzle_step": flops, "peak_bf16_tflops": peaks["bfloat16"], "sides": {}}
    for name, steps_per_s in rates.items():
        ps = steps_per_s * plan.batch
        out["sides"][name] = {"puzzle_steps_per_s": ps, "mfu": ps * flops / 1e12 / peaks["bfloat16"]}
    if reference:
        from bench_vs_reference import compare

        side = dict(hidden=cfg.model.hidden_size, cells=cfg.data.board_size ** 2, prefix=0,
                    vocab=cfg.data.board_size + 2, n=cfg.recursion.n_inner, t=cfg.recursion.n_outer, batch=plan.batch)
        r = compare(side, ["ours_ref_compiled", "ref_bf16_compiled"], reference, plan.device, plan.rounds, plan.steps)
        for name, seconds in r["seconds"].items():
            out["sides"][f"vs_reference:{name}"] = {"puzzle_steps_per_s": plan.batch / seconds}
    return out


def section_memory(plan: Plan) -> dict:
    from memory_per_row import activation_bytes

    rows = plan.memory_rows
    per_row, static, carry_row = activation_bytes(plan.preset, rows, "cpu") if not plan.smoke else (0.0, 0.0, 0.0)
    estimate = {"activations_mib_per_row": per_row / 2**20, "static_mib": static / 2**20}
    if plan.device != "cuda":
        return {"rows": rows, "estimate": estimate, "measured": "no CUDA device: the peak is measured on a GPU only"}
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    s = Stepper(config(plan, f"train.batch_size={rows}", "train.precision=reference"), torch.device("cuda"), False, "bfloat16")
    s.run(2)
    peak = torch.cuda.max_memory_allocated() - before
    measured_row = (peak - static) / rows
    estimated_row = per_row + carry_row
    share_768 = (measured_row * 768 + static) * 1.25 / torch.cuda.get_device_properties(0).total_memory
    return {"rows": rows, "estimate": estimate, "peak_mib": peak / 2**20, "measured_mib_per_row": measured_row / 2**20,
            "estimated_mib_per_row": estimated_row / 2**20, "measured_over_estimate": measured_row / max(estimated_row, 1),
            "gpu_share_for_768_rows": share_768}


def _sweep(plan: Plan, root: Path, trials: int, gpu: float, address: str | None) -> list[float]:
    """Run `trials` one-configuration trials of a real sweep at once; their perf/puzzle_steps_per_s."""
    spec = {"name": f"pack{trials}", "base": {"preset": plan.preset, "overrides": {}}, "metric": "eval/exact_acc",
            "mode": "max", "space": {"optim.lr": {"type": "categorical", "choices": [1e-4]}},
            "search": {"sampler": "random", "seed": 0, "num_samples": 1, "max_concurrent": trials},
            "scheduler": "none", "seeds": list(range(trials)), "resources": {"cpu": 1, "gpu": gpu},
            "storage": str(root / "sweeps"), "aim": {"repo": str(root / "aim"), "experiment": "device_check"}}
    for text in plan.base + [f"train.batch_size={plan.batch}", f"train.steps={plan.sweep_steps}",
                             f"train.eval_interval={plan.sweep_steps}", "train.eval_max_puzzles=16",
                             f"train.log_interval={max(plan.sweep_steps // 3, 1)}", "data.n_train=64", "data.n_test=16"]:
        key, value = text.split("=", 1)
        spec["base"]["overrides"][key] = yaml.safe_load(value)
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"pack{trials}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    join = ["--address", address] if address else []
    done = subprocess.run([sys.executable, "-m", "sweeper", "run", str(path), *join], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"the packing sweep failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
    import pandas as pd

    csv = pd.read_csv(root / "sweeps" / spec["name"] / "results.csv")
    return [float(x) for x in csv["perf/puzzle_steps_per_s"]]


def section_packing(plan: Plan) -> dict:
    with tempfile.TemporaryDirectory(prefix="device_check_") as tmp:
        gpu = 0.0 if plan.smoke else 0.5
        alone = _sweep(plan, Path(tmp) / "alone", 1, gpu, plan.address)
        packed = _sweep(plan, Path(tmp) / "packed", 2, gpu, plan.address)
    return {"gpu_per_trial": gpu, "alone_puzzle_steps_per_s": alone[0], "packed_puzzle_steps_per_s": packed,
            "packed_over_alone": [p / alone[0] for p in packed], "together_over_alone": sum(packed) / alone[0]}


def section_chains(plan: Plan) -> dict:
    device = torch.device(plan.device)
    cfg = config(plan)
    steppers = {}
    for k in (1, 4):
        c = copy.deepcopy(cfg)
        set_value(c, "recursion.chains", k)
        steppers[k] = Stepper(c, device, False, "bfloat16")
    rates = time_interleaved(steppers, plan.steps, plan.warmup, plan.rounds)
    return {"k1_ms_per_step": 1e3 / rates[1], "k4_ms_per_step": 1e3 / rates[4], "k4_over_k1": rates[1] / rates[4],
            "per_row_k4_over_k1": rates[1] / rates[4] / 4}


def section_breadth(plan: Plan) -> dict:
    from trm_core.infer.engine import rollout
    from trm_core.infer.members import load_members, member_inputs
    from trm_core.infer.rollout import Layout, Settings
    from trm_core.infer.transforms import build_transforms
    from trm_core.train.loop import train

    with tempfile.TemporaryDirectory(prefix="device_check_ckpt_") as tmp:
        cfg = config(plan, "train.steps=2", "train.eval_interval=2", "data.n_train=64",
                     f"data.n_test={plan.breadth_puzzles}", "recursion.latent_init=normal")
        train(cfg, out_dir=tmp)
        loaded, eval_set, task = load_members([Path(tmp) / "checkpoints" / "step_00000002"], [f"device={plan.device}"])
    ld, n = loaded[0], len(eval_set)
    members = member_inputs(eval_set, build_transforms("1", task, 0), torch.device(plan.device))
    settings = Settings(plan.depth, (plan.depth,), False, 8 * n)
    roll = {b: (lambda b=b: rollout(ld, members, Layout(0, 1, b, n), settings)) for b in (1, 8)}
    for fn in roll.values():  # warm-up
        fn()
    times: dict[int, list[float]] = {1: [], 8: []}
    for _ in range(max(plan.rounds, 2)):
        for b, fn in roll.items():
            start = time.perf_counter()
            fn()
            times[b].append(time.perf_counter() - start)
    t1, t8 = statistics.median(times[1]), statistics.median(times[8])
    return {"puzzles": n, "depth": plan.depth, "b1_s": t1, "b8_s": t8, "b8_over_b1": t8 / t1, "per_row_b8_over_b1": t8 / t1 / 8}


def section_replicas(plan: Plan) -> dict:
    from trm_core.config import field_types

    if "train.replicas" not in field_types():
        return {"skipped": "train.replicas is not built in this trainer (issue 14 part 2)"}
    return {"skipped": "train.replicas exists, but this check does not measure it yet"}


SECTIONS = {"throughput": section_throughput, "memory": section_memory, "packing": section_packing,
            "chains": section_chains, "breadth": section_breadth, "replicas": section_replicas}


def markdown(result: dict) -> str:
    s = result["sections"]
    lines = [f"device_check on {result['device']} ({'CPU smoke run: tiny shapes' if result['smoke'] else 'paper shape'}), "
             f"{result['wall_s']:.0f} s", "", "| check | result |", "|---|---|"]
    t = s.get("throughput", {})
    for name, v in t.get("sides", {}).items():
        mfu = f", MFU {v['mfu']:.1%}" if "mfu" in v else ""
        lines.append(f"| throughput {name} | {v['puzzle_steps_per_s']:.1f} puzzle-steps/s{mfu} |")
    m = s.get("memory", {})
    if "measured_mib_per_row" in m:
        lines.append(f"| memory per row | {m['measured_mib_per_row']:.1f} MiB measured vs {m['estimated_mib_per_row']:.1f} "
                     f"estimated ({m['measured_over_estimate']:.2f}x); 768 rows need {m['gpu_share_for_768_rows']:.2f} GPU |")
    elif m:
        lines.append(f"| memory per row | {m.get('measured')} |")
    p = s.get("packing", {})
    if p:
        lines.append(f"| two trials at {p['gpu_per_trial']:g} GPU | each {', '.join(f'{x:.2f}x' for x in p['packed_over_alone'])} "
                     f"of one alone; together {p['together_over_alone']:.2f}x |")
    c = s.get("chains", {})
    if c:
        lines.append(f"| K = 4 chains vs K = 1 | {c['k4_over_k1']:.2f}x per step, {c['per_row_k4_over_k1']:.2f}x per row |")
    b = s.get("breadth", {})
    if b:
        lines.append(f"| breadth 8 vs 1 | {b['b8_over_b1']:.2f}x, {b['per_row_b8_over_b1']:.2f}x per row |")
    r = s.get("replicas", {})
    if r:
        lines.append(f"| replicas S = 4 vs 1 | {r.get('skipped', r)} |")
    for name, err in result.get("errors", {}).items():
        lines.append(f"| {name} | failed: {err} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny shapes on the CPU (checks the script itself)")
    ap.add_argument("--reference", default=None, help="a checkout of the reference TRM, for the throughput comparison")
    ap.add_argument("--out", default="runs/device_check", help="directory for device_check.json and .md")
    ap.add_argument("--only", default="", help=f"comma list of sections ({','.join(SECTIONS)})")
    ap.add_argument("--address", default=None, help="a running Ray cluster for the packing sweeps (default: their own)")
    args = ap.parse_args()
    if not args.cpu_smoke and not torch.cuda.is_available():
        print("error: device_check needs a CUDA GPU (or --cpu-smoke to check the script on the CPU)", file=sys.stderr)
        return 2
    plan = Plan(args.cpu_smoke, args.address)
    if args.cpu_smoke:
        torch.set_num_threads(1)
    wanted = [s for s in (args.only.split(",") if args.only else SECTIONS)]
    start = time.perf_counter()
    result = {"device": torch.cuda.get_device_name(0) if plan.device == "cuda" else "cpu", "smoke": plan.smoke,
              "sections": {}, "errors": {}}
    for name in wanted:
        t0 = time.perf_counter()
        try:
            value = SECTIONS[name](plan, args.reference) if name == "throughput" else SECTIONS[name](plan)
        except Exception as exc:  # one section failing must not lose the others' figures
            result["errors"][name] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
            continue
        value["section_s"] = round(time.perf_counter() - t0, 1)
        result["sections"][name] = value
    result["wall_s"] = time.perf_counter() - start
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "device_check.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (out / "device_check.md").write_text(table)
    print(table)
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
