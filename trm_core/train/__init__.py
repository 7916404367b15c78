"""The deep-supervision trainer (loop, ACT, losses, optimisers, evaluation, CLI).

The public entry point is `from trm_core.train import train`:
`train(cfg, report=None, *, out_dir=None, resume_from=None) -> dict` (see trm_core.train.loop).
"""

__all__ = ["train"]


def __getattr__(name: str):
    # `train` is resolved on first use (PEP 562), not here: the loop imports trm_core.names, which
    # imports this package's registries (losses, optimisers, schedules); an eager import here would
    # make that a cycle whenever trm_core.names is imported first.
    if name == "train":
        from trm_core.train.loop import train

        return train
    raise AttributeError(f"module 'trm_core.train' has no attribute {name!r}")
