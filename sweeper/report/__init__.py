"""Reading a sweep: seed statistics, costs, plots and exports of one sweep (all of its phases), and
comparisons of two sweeps or two configurations.

data.py (every phase's trials with their outcome, group and cost; step-level curves), stats.py (the
statistics' conventions), metrics.py (tables of the other metrics), render.py (blocks to Markdown or
HTML), plots.py (PNG files), report.py (one sweep), compare.py (B against A), command.py (the CLI).
"""
