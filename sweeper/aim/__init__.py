"""Recording a sweep in Aim: the only part of the sweeper that imports aim.

repo.py (the repo's life: create, release, index under a lock, query), runs.py (one run per trial:
name, tags, params, what is tracked), callback.py (the Tune callback that writes them from the
driver), sync.py (`aim-sync`: what an outage left out), attach.py (a report as one more run).
"""
