"""sweeper: YAML sweep specs -> Ray Tune (scheduling) + Optuna (search) + Aim (records) over trm_core.train.

The path of a sweep, one package per step (docs/ARCHITECTURE.md draws it):

  cli.py    `python -m sweeper run SPEC`: parse the flags, then
  spec/     read and validate the spec into a SweepSpec (space, checks against the trainer, resources);
  run/      check what can be checked before Ray (preflight), claim the sweep directory, and run the
            phase's Ray Tune experiment (phase.py): Optuna suggests samples, each trial resolves its
            config once (trial.py) and trains it with trm_core in a Ray worker (trainable.py); on the
            driver, the results owner (results.py) writes results.csv and the progress line, and
  aim/      the Aim callback writes one Aim run per trial;
  report/   afterwards, reports and comparisons read results.csv and Tune's per-trial results.

`replicate` is a second phase of the same sweep (run/replicate.py); `submit` / `jobs` / `stop` run a
sweep as a Ray job on a cluster (jobs.py). trm_core knows nothing of Ray, Optuna or Aim: a trial calls
`train(cfg, report=fn)`, and the sweeper adds no training logic.
"""
