"""Unit tests of the sweeper (no Ray cluster). Makes the shared spec builders (sweep_helpers) importable."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
