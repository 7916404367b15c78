"""What to run: a YAML sweep spec, validated strictly into a `SweepSpec` before anything starts.

spec.py (the format, `load_spec` / `validate`, `--set`), fields.py (typed getters), space.py (the
search-space entries), checks.py (the spec against the trainer: metric, final_eval, every searched
value), resources.py (a trial's shape against a cluster), optuna_space.py (the space as Optuna's
define-by-run function, the sampler and the seed-repeating searcher).
"""

from sweeper.spec.spec import (DEFAULT_AIM_REPO, DEFAULT_STORAGE, SweepSpec, apply_sets, load_spec, set_keys,
                               validate)

__all__ = ["DEFAULT_AIM_REPO", "DEFAULT_STORAGE", "SweepSpec", "apply_sets", "load_spec", "set_keys", "validate"]
