"""trm_core: Tiny Recursive Models (data, model, deep-supervision trainer). Knows nothing of Ray, Optuna or Aim."""

__version__ = "0.1.0"


def train(cfg, report=None):
    """Train a TRM; see trm_core.train.loop.train. Imported lazily to keep `import trm_core` light."""
    from trm_core.train.loop import train as _train

    return _train(cfg, report=report)
