"""The Ray Tune function trainable: one trial = `trm_core` training of one configuration and seed.

No training logic lives here. The trial's config (sampled keys, constants and the Repeater's
`__trial_index__`) is applied on top of the spec's resolved base config; the seed is picked from
the spec's list by the repeat index; the trainer's `report(metrics, checkpoint_dir)` becomes
`tune.report(metrics, checkpoint=...)`, which feeds ASHA (on `step`) and makes retries resume
from the last checkpoint through `train(resume_from=...)`. With the spec's `final_eval`, the
trainer's final report (the one with `final/*` metrics) first runs the test-time scaling engine
(trm_core.infer) on its checkpoint and also carries `eval_tts/...` and the plot data for Aim
(`eval_tts_figures`); so ASHA's stop at max_t comes after it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Any

from ray import tune
from ray.tune.search.repeater import TRIAL_INDEX

log = logging.getLogger("sweeper.trial")
_SAID_CPU_FALLBACK = False


@dataclass
class TrialSetup:
    """Everything a trial needs besides its sampled config; small and picklable."""

    base: dict[str, Any]
    seeds: list[int]
    cpu: float
    gpu: float
    final_eval: dict[str, Any] | None = None
    """The spec's final_eval mapping (trm_core.infer.engine.spec_from_mapping), or None."""
    metric: str = ""

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        """Resolve a trial config: seed, sampled params, configuration id and the full trainer config."""
        from trm_core.config import from_dict, set_value, to_dict, validate

        params = {k: v for k, v in config.items() if k != TRIAL_INDEX}
        seed = self.seeds[int(config.get(TRIAL_INDEX, 0)) % len(self.seeds)]
        cfg = from_dict(self.base)
        for key, value in params.items():
            set_value(cfg, key, value, source="trial config")
        cfg.seed = seed
        validate(cfg)  # derived values (train.batch_size from train.batch_rows and the trial's K)
        blob = json.dumps(params, sort_keys=True, default=str).encode()
        config_id = "cfg-" + hashlib.sha1(blob).hexdigest()[:8]
        return {"seed": seed, "params": params, "config_id": config_id, "cfg": cfg, "config": to_dict(cfg)}

    @staticmethod
    def metric_keys(result: dict[str, Any]) -> list[str]:
        """The trainer's metric keys in a Tune result (namespaced `train/...`, `eval/...`)."""
        return [k for k in result if "/" in k and not k.startswith("config/")]


def pick_device(gpu: float) -> str:
    """cpu for CPU trials (they must not touch a GPU); cuda (the one Ray assigned) for GPU trials."""
    global _SAID_CPU_FALLBACK
    if gpu <= 0:
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"  # Ray set CUDA_VISIBLE_DEVICES to this trial's GPU(s)
    if not _SAID_CPU_FALLBACK:
        log.warning("trial asked for %g GPU but CUDA is not available here (logical GPU): training on cpu", gpu)
        _SAID_CPU_FALLBACK = True
    return "cpu"


def set_threads(cpu: float) -> int:
    import torch

    threads = max(1, int(cpu))
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    return threads


def run_trial(config: dict[str, Any], setup: TrialSetup) -> None:
    """The function Ray runs per trial (wrapped with tune.with_parameters and with_resources)."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # the trainer's bar would interleave across trials
    info = setup(config)
    cfg = info["cfg"]
    cfg.device = pick_device(setup.gpu)
    set_threads(setup.cpu)
    from trm_core.train import train

    # The trial's own directory (actors are reused across trials, so not the process's cwd).
    out_dir = os.path.join(tune.get_context().get_trial_dir(), "trainer")

    # an eval_tts metric exists only after training: earlier results carry NaN (Tune wants the key)
    pending = {setup.metric: float("nan")} if setup.metric.startswith("eval_tts/") else {}

    def report(metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        checkpoint = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        tts = {}
        if setup.final_eval is not None and checkpoint_dir and "final/exact_acc" in metrics:
            tts = final_eval_metrics(checkpoint_dir, setup.final_eval)
        tune.report({**pending, **metrics, **tts}, checkpoint=checkpoint)

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        train(cfg, report=report, out_dir=out_dir)
        return
    with checkpoint.as_directory() as ckpt_dir:
        log.warning("trial resumes from checkpoint %s", ckpt_dir)
        train(cfg, report=report, out_dir=out_dir, resume_from=ckpt_dir)


def final_eval_metrics(checkpoint_dir: str, final_eval: dict[str, Any]) -> dict[str, Any]:
    """The engine on one checkpoint: `eval_tts/...` metrics and `eval_tts_figures` (JSON for Aim's plots)."""
    from trm_core.infer.engine import run, spec_from_mapping

    spec, limit = spec_from_mapping(final_eval)
    result = run([checkpoint_dir], spec, limit=limit)
    return {**result.metrics, "eval_tts_figures": json.dumps(result.plot_data())}
