"""Puzzle datasets: generated Sudoku (4x4, 6x6, 9x9) and Maze-Unique, the public Sudoku-Extreme CSV.

Modules: sudoku (solver, rater, generator), maze (perfect mazes), extreme and csvio (public CSV
format), augment (vectorised validity-preserving augmentations), builders (build specs per task),
store (cached, atomic dataset directories: `build_from_config`, `load_dataset`), stream
(`TrainStream`, `AugmentedPuzzles`), cli (`python -m trm_core data ...`). See docs/CONTRACTS.md.
"""
