"""A trial, resolved once: the sweep's base config plus one sample of its space gives the trainer
config, the seed and the configuration id (`TrialSetup`).

`SweepBase` is what every trial of a sweep (or of a replicate phase) shares; Ray ships it to each
worker with the trainable (tune.with_parameters), so it is small and picklable. The worker resolves
its own trial (`trainer_config`: it trains that config); the driver resolves each trial once, when
the results owner (sweeper.run.results.TrialResults) first meets it, and every callback reads that
`TrialSetup` from there. Both sides go through `SweepBase.trainer_config`, so they cannot disagree.

A sample is what the searcher gave Tune: the sampled and constant keys of the space, plus Ray's
Repeater's repeat index `__trial_index__`, which picks the seed from the spec's list. Trials that
differ only in their seed share a configuration id: `cfg-` and the first 8 hex digits of the SHA-1
of the sampled keys (JSON, sorted).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trm_core.config import TRMConfig, from_dict, set_value, to_dict, validate
from trm_core.data.store import default_cache_dir

if TYPE_CHECKING:  # annotations only: a Ray worker imports this module and needs none of the spec's checks
    from sweeper.spec.spec import SweepSpec

TRIAL_INDEX = "__trial_index__"
"""ray.tune.search.repeater.TRIAL_INDEX: the Repeater's repeat number in a sample (test_trial checks it)."""
DIVERGED_KEY = "trial/diverged"
"""Set in a trial's last result when the trainer stopped it for a non-finite loss (sweeper.run.trainable)."""
RESUMED_KEY = "trial/resumed_at_step"
"""In every result of a worker that went on from a checkpoint (a retry, a resume): that checkpoint's step."""
PREEMPTED_KEY = "trial/preempted"
"""Set (to the signal's name) in the result that carries the checkpoint a trial saved on SIGTERM
(sweeper.run.preempt); it has no metric, and the retry's results follow it."""
STATUS = {"TERMINATED": "done", "ERROR": "error", "RUNNING": "running", "PENDING": "pending", "PAUSED": "paused"}
"""A trial's status in results.csv, from Tune's (sweeper.run.table.trial_status refines `done`)."""
ENDED = ("done", "stopped_early", "diverged", "error")
"""Statuses of a trial that will not run again (an `interrupted` trial resumes with `sweeper resume`)."""
SCORED = ("done", "stopped_early")
"""Statuses whose metric counts in summaries and reports (diverged and errored trials never do)."""


@dataclass(frozen=True)
class TrialSetup:
    """One trial's identity and resolved config, as the driver's callbacks read it."""

    config_id: str
    """Shared by the seeds of one sampled configuration (reports, Aim's tags and names group on it)."""
    seed: int
    params: dict[str, Any]
    """The sampled and constant keys of the space this trial got (the seed index removed)."""
    steps: int
    """train.steps of this trial: one that ended before it was stopped early."""
    config: dict[str, Any]
    """The whole trainer config after validation (derived values filled in), as a plain dict."""

    @property
    def hparams(self) -> dict[str, Any]:
        """The parameters and the seed: what Aim shows as the run's hparams."""
        return {**self.params, "seed": self.seed}


TIMES_FILE = "trial_times.json"
"""A phase's record of each trial's start, end, worker and last step taken (sweeper.run.results)."""


def trial_folder(trial_id: str) -> str:
    """A trial's folder in its phase's Tune directory, `tune/trial_<id>` (Tune's trial_dirname_creator)."""
    return f"trial_{trial_id}"


def params_of(sample: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sample.items() if k != TRIAL_INDEX}


def config_id(params: dict[str, Any]) -> str:
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return "cfg-" + hashlib.sha1(blob).hexdigest()[:8]


@dataclass
class SweepBase:
    """What every trial of a sweep shares: the resolved base config, the seeds, the resources a trial
    holds, its objectives (`metric` the first) and the spec's final_eval mapping (or None)."""

    base: dict[str, Any]
    seeds: list[int]
    cpu: float
    gpu: float
    metric: str = ""
    """The spec's first objective (what progress, ranking and ASHA use)."""
    final_eval: dict[str, Any] | None = None
    """The spec's final_eval mapping (trm_core.infer.engine.spec_from_mapping), or None."""
    metrics: tuple[str, ...] = ()
    """Every objective of the spec, the first being `metric` (empty in a base pickled before objectives
    were lists: then `metric` alone)."""

    @property
    def objectives(self) -> tuple[str, ...]:
        """The spec's objectives in order (results.csv puts their columns first)."""
        return tuple(self.metrics) or ((self.metric,) if self.metric else ())

    @classmethod
    def from_spec(cls, spec: SweepSpec, embedded: bool) -> SweepBase:
        """The spec's base config with every path made absolute (workers chdir into their trial
        directory); on one machine (`embedded`) the driver's dataset cache is pinned, so every trial
        shares it."""
        base = to_dict(spec.base_cfg)
        data = base["data"]
        if data["path"]:
            data["path"] = str(Path(data["path"]).expanduser().resolve())
        if data["cache_dir"]:
            data["cache_dir"] = str(Path(data["cache_dir"]).expanduser().resolve())
        elif embedded:
            data["cache_dir"] = str(Path(default_cache_dir()).expanduser().resolve())
        return cls(base=base, seeds=list(spec.seeds), cpu=spec.cpu, gpu=spec.gpu, metric=spec.metric,
                   final_eval=spec.final_eval, metrics=tuple(spec.metrics))

    def seed_of(self, sample: dict[str, Any]) -> int:
        return self.seeds[int(sample.get(TRIAL_INDEX, 0)) % len(self.seeds)]

    def trainer_config(self, sample: dict[str, Any]) -> TRMConfig:
        """The base config with the sample's keys and seed put in, validated (derived values such as
        train.batch_size from train.batch_rows and the trial's chains)."""
        cfg = from_dict(self.base)
        for key, value in params_of(sample).items():
            set_value(cfg, key, value, source="trial config")
        cfg.seed = self.seed_of(sample)
        return validate(cfg)

    def resolve(self, sample: dict[str, Any]) -> TrialSetup:
        cfg = self.trainer_config(sample)
        params = params_of(sample)
        return TrialSetup(config_id=config_id(params), seed=cfg.seed, params=params, steps=cfg.train.steps,
                          config=to_dict(cfg))
