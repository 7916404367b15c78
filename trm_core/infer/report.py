"""The engine's table (stdout) and its summary lines; the JSON file is `Result.to_json()`."""

from __future__ import annotations

from trm_core.infer.engine import Result


def _fmt(x, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def table(result: Result) -> str:
    h = result.header
    s = h["settings"]
    n_ckpt, n_tf = len(h["checkpoints"]), len(h["transforms"])
    lines = [
        f"test-time scaling: {n_ckpt} checkpoint(s) x {n_tf} transform(s) ({', '.join(h['transforms'])}) x breadth "
        f"{max(s['breadths'])}, {h['n_puzzles']} puzzles ({h['task']}), depth {max(s['depths'])}, "
        f"ACT {'on: rows stop at their first halt' if s['act'] else 'off'}",
        f"{'depth':>6} {'breadth':>7}  {'rule':<22} {'exact acc':>9} {'cell acc':>9} {'avg NFE':>9} {'wall s':>8} {'sel. fail':>9}",
    ]
    for r in result.rows:
        name = r["rule"] + (" (ceiling)" if r["ceiling"] else "")
        fail = "-" if r["ceiling"] else _fmt(r["selection_failures"], 3)
        lines.append(f"{r['depth']:>6} {r['breadth']:>7}  {name:<22} {r['exact_acc']:>9.4f} {r['cell_acc']:>9.4f} "
                     f"{r['avg_nfe']:>9.1f} {r['wall_s']:>8.1f} {fail:>9}")
    d = result.diagnostics
    lines.append(f"avg NFE: supervision steps per puzzle, summed over the members a rule reads; wall s: the rollout "
                 f"every rule shares ({d['rollout_wall_s']:.1f} s, {d['row_steps_run']} row-steps) plus the rule; "
                 f"sel. fail: share of the rule's failures that the oracle solves")
    lines += summary(result)
    return "\n".join(lines)


def summary(result: Result) -> list[str]:
    d, out = result.diagnostics, []
    for v in d["views"]:
        if v["depth"] == max(x["depth"] for x in d["views"]):
            single = " ".join(f"{a:.4f}" for a in v["checkpoint_exact_acc"])
            out.append(f"depth {v['depth']} breadth {v['breadth']}: Delta_PI = {v['delta_pi']:.4f}, averaged member "
                       f"exact acc {v['member_avg_exact_acc']:.4f}, each checkpoint alone: {single}")
    h = d["halting"]
    total = h["never"] + sum(h["counts"])
    if total:
        halted = total - h["never"]
        mean = sum((i + 1) * c for i, c in enumerate(h["counts"])) / max(halted, 1)
        out.append(f"halting: {halted / total:.1%} of rows reached q_halt > 0 within the depth"
                   + (f", at step {mean:.2f} on average" if halted else ""))
    res = [x for x in d["steps"]["residual"] if x is not None]
    if res:
        out.append(f"latent residual ||z_t - z_(t-1)|| (whole carry): step 1 {res[0]:.4g}, last step {res[-1]:.4g} "
                   f"(mean over running rows)")
    for i, a in enumerate(d.get("aas", [])):
        out.append(f"AAS checkpoint {i}: z_H cosine {a['z_h_cosine']:.4f}, z_L cosine {a['z_l_cosine']:.4f}, "
                   f"same answer {a['same_answer']:.4f}")
    out += [f"note: {n}" for n in result.notes]
    return out
