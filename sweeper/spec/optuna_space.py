"""The spec's space as an Optuna define-by-run function, the sampler it names, and the searcher a
sweep's search phase runs: Optuna through Ray Tune's OptunaSearch, each configuration repeated over
the spec's seeds (`make_searcher`).

Conditional entries (`when:`) are why the space is define-by-run: an entry is suggested only when
the entries it depends on took one of the listed values, so Optuna never sees a parameter that did
not influence the trial. Constants are returned too, so every trial's config (and its Aim hparams)
is complete. The searcher picks a configuration; the seed is Ray's Repeater's job: it numbers the
repeats (`__trial_index__`) and sweeper.run.trial maps the number to the spec's seed. With several
objectives (`metric:` a list) the study has one direction per objective and is told the vector of
each objective's mean over the seeds.
"""

from __future__ import annotations

import math
import threading
import warnings
from typing import Any

import optuna
from ray.tune.search import Repeater
from ray.tune.search.optuna import OptunaSearch

from sweeper.spec.space import Param
from sweeper.spec.spec import SweepSpec


class DefineByRun:
    """Picklable callable `space(trial) -> constants` for `OptunaSearch(space=...)`."""

    def __init__(self, params: dict[str, Param]):
        self.params = params

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        chosen: dict[str, Any] = {}
        constants: dict[str, Any] = {}
        for name, p in self.params.items():
            if not all(chosen.get(dep, _MISSING) in allowed for dep, allowed in p.when.items()):
                continue
            if p.kind == "constant":
                constants[name] = chosen[name] = p.value
            else:
                chosen[name] = suggest(trial, p)
        return constants


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def suggest(trial: optuna.Trial, p: Param) -> Any:
    if p.kind == "float":
        return trial.suggest_float(p.name, p.low, p.high, log=p.log, step=p.step)
    if p.kind == "int":
        return trial.suggest_int(p.name, p.low, p.high, log=p.log, step=p.step or 1)
    return trial.suggest_categorical(p.name, p.choices)


def make_sampler(spec: SweepSpec) -> optuna.samplers.BaseSampler:
    """tpe: multivariate (grouped when the space is conditional), seeded, with a constant liar for
    parallel trials (with several objectives Optuna's TPE is MOTPE); random: seeded; grid: Optuna's
    GridSampler over every searched entry; nsga2: Optuna's NSGAIISampler, seeded, with the spec's
    population size (its first generation is random; a key a `when:` leaves out is sampled at random)."""
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=spec.search_seed)
    if spec.sampler == "nsga2":
        return PicklableNSGAII(population_size=spec.population_size, seed=spec.search_seed)
    if spec.sampler == "grid":
        grid = {k: p.grid_values() for k, p in spec.searched.items()}
        return AskTellGridSampler(grid, seed=spec.search_seed)
    conditional = any(p.when for p in spec.params.values())
    kwargs: dict[str, Any] = {}
    if spec.n_startup_trials is not None:
        kwargs["n_startup_trials"] = spec.n_startup_trials
    with warnings.catch_warnings():  # multivariate/group/constant_liar are "experimental" in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=spec.search_seed, multivariate=True, group=conditional, constant_liar=True, **kwargs
        )


def make_searcher(spec: SweepSpec) -> SeedRepeater:
    """Optuna over the spec's space, each suggested configuration run once per seed; Optuna is told
    the mean over the seeds of each objective (or that the configuration failed, see SeedRepeater).
    With several objectives OptunaSearch gets the lists of metrics and modes: its study has one
    direction per objective."""
    several = len(spec.metrics) > 1
    searcher = OptunaSearch(space=DefineByRun(spec.params), metric=list(spec.metrics) if several else spec.metric,
                            mode=list(spec.modes) if several else spec.mode, sampler=make_sampler(spec),
                            points_to_evaluate=spec.points_to_evaluate or None)
    return SeedRepeater(searcher, repeat=len(spec.seeds), set_index=True)


class PicklableNSGAII(optuna.samplers.NSGAIISampler):
    """Optuna's NSGAIISampler, picklable: Optuna's genetic samplers guard their generation cache with a
    threading.Lock, which neither Ray's Tuner (it pickles the search algorithm when it starts) nor the
    searcher state a sweep saves for `resume` can pickle. The lock is left out when pickled and made
    anew when loaded; the rest (population, generation cache, seeded random state) is kept."""

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_thread_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._thread_lock = threading.Lock()


class AskTellGridSampler(optuna.samplers.GridSampler):
    """GridSampler whose after_trial does not call `study.stop()`.

    Optuna forbids `stop()` outside `study.optimize`, and Ray drives Optuna by ask/tell, so the
    last grid point's `tell` would raise. The sweep's trial count already equals the grid size.
    """

    def after_trial(self, study, trial, state, values) -> None:
        return None


class SeedRepeater(Repeater):
    """Ray's Repeater (one trial per seed, Optuna told the mean), except that
    - with several objectives (the searcher's metric is a list) each objective is averaged over the
      configuration's seeds on its own, and Optuna is told the vector of means;
    - a configuration one of whose seeds reported no finite value for an objective (it diverged or
      failed) is told to Optuna as FAILED rather than as the mean of the other seeds: a recipe that
      blows up on some seeds is not a good recipe."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None, **kwargs) -> None:
        group = self._trial_id_to_group.get(trial_id)
        if group is None:
            return super().on_trial_complete(trial_id, result, **kwargs)
        metrics = self.objectives
        values = tuple(_finite((result or {}).get(m)) for m in metrics)
        group.report(trial_id, values)
        if group.finished_reporting():
            # one tuple per seed (a float: reported before objectives were tuples, a sweep resumed across versions)
            scores = [s if isinstance(s, tuple) else (s,) for s in group.scores()]
            if all(math.isfinite(x) for seed in scores for x in seed):
                means = {m: sum(seed[i] for seed in scores) / len(scores) for i, m in enumerate(metrics)}
                self.searcher.on_trial_complete(group.primary_trial_id, result=means)
            else:
                self.searcher.on_trial_complete(group.primary_trial_id, result=None, error=True)

    @property
    def objectives(self) -> list[str]:
        metric = self.searcher.metric
        return list(metric) if isinstance(metric, (list, tuple)) else [metric]


def _finite(value: Any) -> float:
    """A reported value as a float; NaN when it is missing, not a number, or not finite."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else math.nan


def quiet_optuna() -> None:
    """Optuna's INFO line per trial and its experimental-feature warnings add nothing to a sweep."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
