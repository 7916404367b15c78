"""sweeper: YAML sweep specs -> Ray Tune (scheduling) + Optuna (search) + Aim (records) over trm_core.train.

Modules: spec (the YAML format and its validation), space (search-space entries), optuna_space
(define-by-run translation, samplers), resources (trial shape vs cluster), trainable (the Ray
function trainable), aim_log (the only module that imports aim), progress (display, bookkeeping),
results (table, summary), runner (Tuner construction, run/resume), sweeps (ls/resume lookup), cli.
"""
