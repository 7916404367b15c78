"""Integration tests of the sweeper: real Ray, Optuna and Aim on loopback. Shares the spec builders."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sweeper"))  # sweep_helpers
