"""Running a sweep: the checks before Ray starts, the sweep directory, the Ray Tune experiment of each
phase (the search, then any replicate phase), the trial on the worker and its results on the driver.

preflight.py (checks before Ray, the claim of a sweep directory), sweeps.py (sweep directories: layout,
records, `ls`, resume lookup), cluster.py (the Ray a phase runs on), phase.py (`run_phase`: one Tune
experiment), runner.py (the search phase and sweep.json), replicate.py (a replicate phase), trial.py
(a trial resolved once), trainable.py (the trial on a Ray worker), results.py (the one owner of
results.csv, the failure budget), table.py (results.csv's rows and summaries), progress.py (the
progress line), interrupt.py (Ctrl-C / SIGTERM and Tune's messages).
"""
