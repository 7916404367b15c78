"""Typed getters for the fields of a sweep spec: each returns the value or raises SpecError naming the
file, the key path, what must hold and what was given (`must be an integer >= 1, but got 0.5 (float)`)."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from sweeper.errors import SpecError, describe, did_you_mean

SECTION_KEYS = {
    "base": {"preset", "config", "overrides"},
    "search": {"sampler", "seed", "num_samples", "max_concurrent", "points_to_evaluate", "n_startup_trials",
               "population_size"},
    "scheduler": {"type", "grace_period", "reduction_factor", "max_t"},
    "resources": {"cpu", "gpu"},
    "failure": {"max_retries", "max_failed_trials"},
    "aim": {"repo", "experiment"},
    "final_eval": {"depth", "breadth", "select", "transforms", "act", "limit", "noise_beta", "max_batch", "window",
                   "seed", "aas"},
}
"""The keys each section of a spec may hold (search_spaces/README.md)."""


def section(file: str, raw: Mapping, key: str) -> dict[str, Any]:
    """The mapping `raw[key]` ({} when absent), every key of it known; `scheduler: asha` is `{type: asha}`."""
    value = raw.get(key) or {}
    if isinstance(value, str) and key == "scheduler":
        value = {"type": value}
    if not isinstance(value, Mapping):
        raise SpecError(file, key, f"must be a mapping, but got {describe(value)}")
    allowed = SECTION_KEYS[key]
    for k in value:
        if k not in allowed:
            raise SpecError(file, f"{key}.{k}", f"is not a known key (known: {', '.join(sorted(allowed))}){did_you_mean(str(k), allowed)}")
    return dict(value)


def integer(file: str, path: str, v: Any, minimum: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not float(v).is_integer() or v < minimum:
        raise SpecError(file, path, f"must be an integer >= {minimum}, but got {describe(v)}")
    return int(v)


def number(file: str, path: str, v: Any, *, above: float) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= above:
        raise SpecError(file, path, f"must be a number > {above:g}, but got {describe(v)}")
    return float(v)


def string(file: str, path: str, v: Any, choices: Sequence[str] | None = None) -> str:
    if not isinstance(v, str) or not v:
        raise SpecError(file, path, f"must be a non-empty string, but got {describe(v)}")
    if choices is not None and v not in choices:
        raise SpecError(file, path, f"must be one of {', '.join(choices)}, but got {v!r}{did_you_mean(v, choices)}")
    return v
