"""Test-time scaling: depth, breadth, ensembles of checkpoints x input transforms, selection rules.

    python -m trm_core eval CKPT [CKPT ...] --depth 16,64 --breadth 1,16 --transforms 4 --act \\
        --select halt_first,prob_avg,majority,top1_converged,oracle --json out.json --plot plots/

The pieces, in the order a run uses them:
- members.py      load checkpoints (EMA weights), the held-out puzzles, each transform's view of them
- transforms.py   TRANSFORMS: explicit maps with inverses (Sudoku relabellings, transpose, bands; maze symmetries)
- rollout.py      one checkpoint's rows (transform x restart x puzzle) in one fixed-size queue, D steps, ACT
- views.py        one rollout read at a depth budget and a breadth: every member of every puzzle
- selection.py    SELECTION_RULES: last, halt_first, prob_avg, majority, top1_converged(_logits), max_q, oracle
- diagnostics.py  residual traces, halting, Delta_PI, the Asymptotic Alignment Score, selection failures
- engine.py       InferSpec -> run() -> Result (table rows, diagnostics, eval_tts/* metrics)
- report.py, plots.py, cli.py   the table, PNG plots (matplotlib, Agg), the `eval` command

Vocabulary as in trm_core.model: z_H (paper: y), z_L (paper: z); depth D counts supervision steps
(EqR's outer iterations); NFE = supervision steps summed over the members a rule reads.
Nothing is imported here, so `python -m trm_core` starts without torch until a command needs it.
"""
