"""The deep-supervision trainer (loop, ACT, losses, optimisers, checkpoints, evaluation, CLI).

The public entry point is `from trm_core.train import train`:
`train(cfg, report=None, *, out_dir=None, resume_from=None) -> dict` (see trm_core.train.loop).
"""

from trm_core.train.loop import train

__all__ = ["train"]
