"""trm_core: Tiny Recursive Models (data, model, deep-supervision trainer). Knows nothing of Ray, Optuna or Aim."""

__version__ = "0.1.0"


def train(cfg, report=None, *, out_dir=None, resume_from=None):
    """Train a TRM; see trm_core.train.loop.train. Imported lazily to keep `import trm_core` light."""
    from trm_core.train.loop import train as _train

    return _train(cfg, report=report, out_dir=out_dir, resume_from=resume_from)
