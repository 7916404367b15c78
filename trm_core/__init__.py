"""trm_core: Tiny Recursive Models (data, model, deep-supervision trainer).

It knows nothing of Ray, Optuna or Aim. Train with `from trm_core.train import train`;
configs come from `trm_core.config.load_config`.
"""

__version__ = "0.1.0"
