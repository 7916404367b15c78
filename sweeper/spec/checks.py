"""The checks of a sweep spec against the trainer: the objectives (`metric:`, one key or a list, and
their modes) it reports (trm_core.metric_keys), the test-time engine's rule names, the trainer's own
checks of the base config and of every searched bound, choice and constant, and `cpu_variant`.
sweeper.spec.spec.validate calls them; each raises SpecError naming the file, the key path, what must
hold and what was given.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from trm_core import metric_keys
from trm_core.config import from_dict, set_value, to_dict
from trm_core.config import validate as validate_config
from trm_core.errors import ConfigError, UserError
from trm_core.infer.engine import spec_from_mapping
from trm_core.names import check_names

from sweeper.errors import SpecError, describe, did_you_mean
from sweeper.spec.fields import section, string

if TYPE_CHECKING:  # the spec module calls these checks: a runtime import would be circular
    from sweeper.spec.spec import SweepSpec

TRAINER_CHECKS = (validate_config, check_names)
"""The trainer's own checks of a whole config: value relations, then registry names."""


MODES = ("max", "min")


def objectives(file: str, raw: Mapping) -> tuple[list[str], list[str]]:
    """(metrics, modes): `metric: KEY` with `mode: max|min` (default max), or several objectives,
    `metric: [KEY, ...]` with `mode: [max|min, ...]`, one mode per key. Every key must be one the
    trainer reports (trm_core.metric_keys, with its "did you mean"), and no key may come twice."""
    given, mode = raw.get("metric", "eval/exact_acc"), raw.get("mode", "max")
    several = isinstance(given, list)
    if several and not given:
        raise SpecError(file, "metric", "must be a metric key or a non-empty list of them, but got []")
    metrics = [string(file, f"metric[{i}]", m) for i, m in enumerate(given)] if several else [string(file, "metric", given)]
    for i, key in enumerate(metrics):
        path = f"metric[{i}]" if several else "metric"
        problem = metric_keys.check(key)
        if problem:
            raise SpecError(file, path, problem)
        if key in metrics[:i]:
            raise SpecError(file, path, f"names {key} again (it is metric[{metrics.index(key)}]): each objective once")
    if several and "mode" not in raw:
        raise SpecError(file, "mode", f"is missing: with {len(metrics)} objectives in metric it must be a list of"
                                      f" {len(metrics)} modes (max or min), one per objective")
    if several and not isinstance(mode, list):
        raise SpecError(file, "mode", f"must be a list of {len(metrics)} modes (max or min), one per objective of"
                                      f" metric, but got {describe(mode)}")
    if not several and isinstance(mode, list):
        raise SpecError(file, "mode", f"is a list of {len(mode)} modes, but metric is one key ({metrics[0]}); for"
                                      f" several objectives make metric a list too: metric: [{metrics[0]}, ...]")
    if not several:
        return metrics, [string(file, "mode", mode, MODES)]
    if len(mode) != len(metrics):
        raise SpecError(file, "mode", f"must have one mode per objective: metric has {len(metrics)} keys, mode has"
                                      f" {len(mode)} ({', '.join(map(str, mode))})")
    return metrics, [string(file, f"mode[{i}]", m, MODES) for i, m in enumerate(mode)]


def final_eval(file: str, raw: Mapping, spec: SweepSpec) -> None:
    """`final_eval: {depth, breadth, select, ...}`: the test-time scaling engine on each trial's final
    checkpoint (trm_core.infer.engine.spec_from_mapping); `eval_tts/<rule>/...` join its last result."""
    tts = [(objective_path(spec, m), m) for m in spec.metrics if metric_keys.needs_final_eval(m)]
    if raw.get("final_eval") is None:
        for path, m in tts:
            raise SpecError(file, path, f"{m} is reported only with a final_eval section")
        return
    fe = section(file, raw, "final_eval")
    _check_rules(file, fe)
    try:
        infer, _ = spec_from_mapping(fe)
    except UserError as exc:
        raise SpecError(file, "final_eval", str(exc)) from None
    for path, m in tts:
        if spec.scheduler != "none":
            raise SpecError(file, path, f"{m} exists only after training: it needs scheduler none")
        rule = metric_keys.tts_rule(m)
        if rule is not None and rule not in infer.select:
            raise SpecError(file, path, f"names rule {rule!r}, but final_eval.select is {', '.join(infer.select)}")
    spec.final_eval = fe


def objective_path(spec: SweepSpec, key: str) -> str:
    """Where an objective sits in the spec: `metric`, or `metric[i]` when metric is a list."""
    return f"metric[{spec.metrics.index(key)}]" if isinstance(spec.raw.get("metric"), list) else "metric"


def several_objectives(spec: SweepSpec) -> None:
    """Several objectives search for a Pareto front of trials trained to the end: ASHA is refused."""
    if len(spec.metrics) > 1 and spec.scheduler == "asha":
        raise SpecError(spec.file, "scheduler.type", f"asha cannot run with {len(spec.metrics)} objectives: it stops"
                        " trials early, so their cost objectives would measure a shortened run (a cut configuration"
                        " looks cheap) and mislead the search; use scheduler: none")


def check_metric_is_reported(spec: SweepSpec) -> None:
    """A chain metric (train/win_rate/<k>, train/winner_ce, ...) needs trials with enough chains."""
    p = spec.params.get("recursion.chains")
    values = [spec.base_cfg.recursion.chains] if p is None else (
        [p.value] if p.kind == "constant" else list(p.choices) if p.kind == "categorical" else [p.high])
    most = max(int(v) for v in values)
    for m in spec.metrics:
        need = metric_keys.chains_needed(m)
        if most < need:
            raise SpecError(spec.file, objective_path(spec, m), f"{m} is reported only by trials with recursion.chains"
                                                                f" >= {need}, but this sweep's trials have at most {most}")


def _check_rules(file: str, fe: Mapping[str, Any]) -> None:
    """final_eval.select names selection rules (the registry's names, read now)."""
    select = fe.get("select")
    names = select.split(",") if isinstance(select, str) else select if isinstance(select, list) else []
    rules = metric_keys.rule_names()
    for i, name in enumerate(names):
        if isinstance(name, str) and name.strip() not in rules:
            raise SpecError(file, f"final_eval.select[{i}]", f"must be a selection rule ({', '.join(rules)}), but got"
                                                            f" {name.strip()!r}{did_you_mean(name.strip(), rules)}")


def cpu_variant(file: str, raw: Mapping) -> str | None:
    """`cpu_variant: wta_cpu.yaml`: the spec's counterpart for a machine without a GPU, relative to this
    spec; returned as the path to type from the working directory (absolute when outside it)."""
    if raw.get("cpu_variant") is None:
        return None
    text = string(file, "cpu_variant", raw["cpu_variant"])
    path = Path(text) if Path(text).is_absolute() else Path(file).parent / text
    if not path.is_file():
        raise SpecError(file, "cpu_variant", f"must name a spec file (relative to this spec), but {path} does not exist")
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def check_against_trainer(spec: SweepSpec) -> None:
    """The base config, and the base with each searched bound / choice / constant put in, must pass
    the trainer's checks; an error that names the entry's key is reported at that entry."""
    try:
        for check in TRAINER_CHECKS:
            check(spec.base_cfg)
    except (ConfigError, UserError) as exc:
        raise SpecError(spec.file, "base", str(exc)) from None
    base = to_dict(spec.base_cfg)
    for key, p in spec.params.items():
        trials = {"value": [p.value]} if p.kind == "constant" else {"choices": p.choices} if p.kind == "categorical" else {"low": [p.low], "high": [p.high]}
        for field_name, values in trials.items():
            for v in values:
                cfg = from_dict(base)
                set_value(cfg, key, v)
                try:
                    for check in TRAINER_CHECKS:
                        check(cfg)
                except (ConfigError, UserError) as exc:
                    if key in str(exc):
                        raise SpecError(spec.file, f"space[{key}].{field_name}", f"{v!r} fails the trainer's check: {exc}") from None
