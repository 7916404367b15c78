"""The sweep spec: one YAML file, validated strictly into a `SweepSpec` (format: search_spaces/README.md).

Every problem raises `SpecError` naming the file, the key path, what must hold and what was given.
Relative paths: `base.config` is read relative to the spec file; `storage` and `aim.repo` relative to
the working directory, and are made absolute here (Ray workers chdir into their trial directory).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from trm_core.config import PRESETS, TRMConfig, apply_dict, base_config, field_types, parse_override, preset, read_yaml
from trm_core.errors import ConfigError

from sweeper.errors import SpecError, describe, did_you_mean
from sweeper.spec import checks
from sweeper.spec.fields import integer, number, section, string
from sweeper.spec.space import Param, parse_space

TOP_KEYS = ("name", "description", "base", "metric", "mode", "space", "search", "scheduler", "seeds",
            "resources", "failure", "time_budget_s", "storage", "aim", "final_eval", "cpu_variant")
SAMPLERS = ("tpe", "random", "grid", "nsga2")
NSGA2_MAX_POPULATION = 50
"""Optuna's NSGAIISampler default population; a spec's default is smaller when it samples fewer configurations."""
SCHEDULERS = ("none", "asha")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
NAME_RULE = "letters, digits, '_', '-' or '.', starting with a letter or digit (no '/', no leading '.')"
"""A sweep name is one directory name under the storage root (and the Aim experiment by default)."""
DEFAULT_STORAGE = "runs/sweeps"
DEFAULT_AIM_REPO = "runs/aim"


@dataclass
class SweepSpec:
    file: str
    name: str
    base_cfg: TRMConfig
    base_source: str
    metric: str
    """The first objective: what ranks, reports, ASHA and the progress line use."""
    mode: str
    params: dict[str, Param]
    metrics: list[str] = field(default_factory=list)
    """Every objective (`metric:` as a list), the first being `metric`; Optuna searches on all of them."""
    modes: list[str] = field(default_factory=list)
    """max | min per objective, in the order of `metrics`."""
    sampler: str = "tpe"
    search_seed: int = 0
    num_samples: int = 8
    max_concurrent: int | None = None
    points_to_evaluate: list[dict[str, Any]] = field(default_factory=list)
    n_startup_trials: int | None = None
    population_size: int | None = None
    """sampler nsga2 only: configurations per generation (Optuna's NSGAIISampler population_size)."""
    scheduler: str = "none"
    grace_period: int = 1
    reduction_factor: float = 2.0
    max_t: int = 1
    seeds: list[int] = field(default_factory=lambda: [0])
    cpu: float = 1.0
    gpu: float = 0.0
    max_retries: int = 0
    max_failed_trials: int | None = None
    """Stop the sweep once more than this many trials have failed for good; None: never."""
    time_budget_s: float | None = None
    storage: Path = Path(DEFAULT_STORAGE)
    aim_repo: Path = Path(DEFAULT_AIM_REPO)
    aim_experiment: str = ""
    final_eval: dict[str, Any] | None = None
    """Test-time scaling after training (trm_core.infer.engine.InferSpec fields, plus limit), or None."""
    cpu_variant: str | None = None
    """The spec to run instead on a machine without a GPU (`cpu_variant:`, relative to this spec), as a
    path the user can type from the working directory; None: the spec names none."""
    raw: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.metrics = list(self.metrics) or [self.metric]
        self.modes = list(self.modes) or [self.mode]

    @property
    def objectives_text(self) -> str:
        """`eval/exact_acc (max)`, or with several objectives `eval/exact_acc (max), cost/train_s (min)`."""
        return ", ".join(f"{m} ({mode})" for m, mode in zip(self.metrics, self.modes))

    @property
    def sampler_text(self) -> str:
        """The sampler as the dry run shows it: `tpe (multivariate, seed 0)`, `nsga2 (population 4, seed 0)`, ..."""
        return {"tpe": f"tpe (multivariate, seed {self.search_seed})", "random": f"random (seed {self.search_seed})",
                "grid": "grid", "nsga2": f"nsga2 (population {self.population_size}, seed {self.search_seed})"}[self.sampler]

    @property
    def total_trials(self) -> int:
        """Trials Ray runs: every sampled configuration once per seed."""
        return self.num_samples * len(self.seeds)

    @property
    def searched(self) -> dict[str, Param]:
        return {k: p for k, p in self.params.items() if p.searched}


# ------------------------------------------------------------------------------------------------
# Sections.


def _base_config(file: str, raw: Mapping) -> tuple[TRMConfig, str]:
    base = section(file, raw, "base")
    if "preset" in base and "config" in base:
        raise SpecError(file, "base", "give either preset or config, not both")
    try:
        if "config" in base:
            path = Path(string(file, "base.config", base["config"]))
            path = path if path.is_absolute() else Path(file).parent / path
            if not path.exists():
                raise SpecError(file, "base.config", f"must name an existing trainer YAML file, but {path} does not exist")
            cfg, source = base_config(str(path)), str(path)
        else:
            name = string(file, "base.preset", base.get("preset"), None)
            if name not in PRESETS:
                raise SpecError(file, "base.preset", f"must be one of {', '.join(sorted(PRESETS))}, but got {name!r}{did_you_mean(name, PRESETS)}")
            cfg, source = preset(name), f"preset {name}"
        overrides = base.get("overrides") or {}
        if not isinstance(overrides, Mapping):
            raise SpecError(file, "base.overrides", f"must map trainer config keys to values, but got {describe(overrides)}")
        apply_dict(cfg, overrides)
    except ConfigError as exc:
        if isinstance(exc, SpecError):
            raise
        raise SpecError(file, "base.overrides" if "overrides" in base else "base", str(exc)) from None
    return cfg, source


def _search(file: str, raw: Mapping, spec: SweepSpec) -> None:
    s = section(file, raw, "search")
    spec.sampler = string(file, "search.sampler", s.get("sampler", "tpe"), SAMPLERS)
    spec.search_seed = integer(file, "search.seed", s.get("seed", 0), 0)
    if s.get("max_concurrent") is not None:
        spec.max_concurrent = integer(file, "search.max_concurrent", s["max_concurrent"], 1)
    if s.get("n_startup_trials") is not None:
        if spec.sampler != "tpe":
            raise SpecError(file, "search.n_startup_trials", f"only applies to sampler tpe, but sampler is {spec.sampler}")
        spec.n_startup_trials = integer(file, "search.n_startup_trials", s["n_startup_trials"], 0)
    grid_size = _grid_size(file, spec) if spec.sampler == "grid" else None
    default = grid_size if grid_size is not None else 8
    spec.num_samples = integer(file, "search.num_samples", s.get("num_samples", default), 1)
    if grid_size is not None and spec.num_samples > grid_size:
        raise SpecError(file, "search.num_samples", f"must be <= the grid's {grid_size} points, but got {spec.num_samples}")
    spec.points_to_evaluate = _points(file, s.get("points_to_evaluate") or [], spec.params)
    if s.get("population_size") is not None and spec.sampler != "nsga2":
        raise SpecError(file, "search.population_size", f"only applies to sampler nsga2, but sampler is {spec.sampler}")
    if spec.sampler == "nsga2":
        # Optuna's default of 50 would leave a small sweep in its random first generation: at most half
        # the configurations by default, so at least two generations run
        default = min(NSGA2_MAX_POPULATION, max(2, spec.num_samples // 2))
        spec.population_size = integer(file, "search.population_size", s.get("population_size", default), 2)


def _grid_size(file: str, spec: SweepSpec) -> int:
    size = 1
    for key, p in spec.params.items():
        if p.when:
            raise SpecError(file, f"space[{key}].when", "conditional entries need sampler tpe or random (a grid has no conditions)")
        if p.kind == "float" and p.step is None:
            raise SpecError(file, f"space[{key}].step", "a float on a grid needs a step (or use a categorical)")
        if p.kind in ("float", "int") and p.log:
            raise SpecError(file, f"space[{key}].log", "a grid enumerates steps, not log ranges; use a categorical")
        size *= len(p.grid_values())
    return size


def _points(file: str, points: Any, params: Mapping[str, Param]) -> list[dict[str, Any]]:
    if not isinstance(points, list):
        raise SpecError(file, "search.points_to_evaluate", f"must be a list of mappings, but got {describe(points)}")
    out = []
    for i, point in enumerate(points):
        path = f"search.points_to_evaluate[{i}]"
        if not isinstance(point, Mapping):
            raise SpecError(file, path, f"must map searched keys to values, but got {describe(point)}")
        for k, v in point.items():
            p = params.get(k)
            if p is None or not p.searched:
                known = [n for n, q in params.items() if q.searched]
                raise SpecError(file, f"{path}.{k}", f"must be a searched space key{did_you_mean(str(k), known)}; searched: {', '.join(known)}")
            inside = v in p.choices if p.kind == "categorical" else (
                isinstance(v, (int, float)) and not isinstance(v, bool) and p.low <= v <= p.high)
            if not inside:
                rng = p.choices if p.kind == "categorical" else f"[{p.low}, {p.high}]"
                raise SpecError(file, f"{path}.{k}", f"must lie in {rng}, but got {describe(v)}")
        out.append(dict(point))
    return out


def _scheduler(file: str, raw: Mapping, spec: SweepSpec) -> None:
    s = section(file, raw, "scheduler")
    spec.scheduler = string(file, "scheduler.type", s.get("type", "none"), SCHEDULERS)
    max_steps = _largest_steps(spec)
    if spec.scheduler == "none":
        extra = sorted(set(s) - {"type"})
        if extra:
            raise SpecError(file, f"scheduler.{extra[0]}", "only applies to scheduler type asha")
        return
    spec.max_t = integer(file, "scheduler.max_t", s.get("max_t", max_steps), 1)
    spec.grace_period = integer(file, "scheduler.grace_period", s.get("grace_period", spec.base_cfg.train.eval_interval), 1)
    spec.reduction_factor = number(file, "scheduler.reduction_factor", s.get("reduction_factor", 2), above=1)
    if spec.grace_period >= spec.max_t:
        raise SpecError(file, "scheduler.grace_period", f"must be < max_t={spec.max_t} training steps, but got {spec.grace_period}")


def _largest_steps(spec: SweepSpec) -> int:
    """ASHA's default max_t: train.steps, or the largest value the space can give it."""
    p = spec.params.get("train.steps")
    if p is None:
        return spec.base_cfg.train.steps
    values = {"int": [p.high], "categorical": p.choices, "constant": [p.value]}.get(p.kind, [spec.base_cfg.train.steps])
    return int(max(values))


def _resources(file: str, raw: Mapping, spec: SweepSpec) -> None:
    r = section(file, raw, "resources")
    spec.cpu = number(file, "resources.cpu", r.get("cpu", 1), above=0)
    gpu = r.get("gpu", 0)
    if isinstance(gpu, bool) or not isinstance(gpu, (int, float)) or gpu < 0:
        raise SpecError(file, "resources.gpu", f"must be a number >= 0, but got {describe(gpu)}")
    if gpu > 1 and not float(gpu).is_integer():
        raise SpecError(file, "resources.gpu", f"must be a fraction < 1 (trials share a GPU) or a whole number of GPUs, but got {gpu}")
    spec.gpu = float(gpu)


def _seeds(file: str, raw: Mapping) -> list[int]:
    seeds = raw.get("seeds", [0])
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if not isinstance(seeds, list) or not seeds:
        raise SpecError(file, "seeds", f"must be a non-empty list of integers, but got {describe(seeds)}")
    out = [integer(file, f"seeds[{i}]", s, 0) for i, s in enumerate(seeds)]
    if len(set(out)) != len(out):
        raise SpecError(file, "seeds", f"must not repeat a seed, but got {out}")
    return out


# ------------------------------------------------------------------------------------------------
# Entry points.


def apply_sets(file: str, raw: dict[str, Any], sets: Sequence[str]) -> dict[str, Any]:
    """`--set` on the command line: spec keys (`search.num_samples=4`) or trainer config keys.

    A trainer key that the space searches becomes a constant there; any other trainer key is added
    to `base.overrides`. The first dotted component decides: spec sections win (`name` is the sweep's).
    """
    raw = copy.deepcopy(raw)
    types = field_types()
    for text in sets:
        try:
            key, value = parse_override(text)
        except ConfigError as exc:
            raise SpecError(file, "--set", str(exc)) from None
        head, *rest = key.split(".")
        if head in TOP_KEYS and key not in types or head == "name":
            node = raw
            for part in [head, *rest][:-1]:
                if not isinstance(node.get(part), dict):
                    node[part] = {} if node.get(part) is None else node[part]
                if not isinstance(node[part], dict):
                    raise SpecError(file, f"--set {key}", f"{part} is not a mapping in the spec")
                node = node[part]
            node[[head, *rest][-1]] = value
        elif key in types:
            space = raw.get("space") if isinstance(raw.get("space"), dict) else None
            if space is not None and key in space:
                space[key] = value
            else:
                raw.setdefault("base", {}).setdefault("overrides", {})
                if not isinstance(raw["base"]["overrides"], dict):
                    raise SpecError(file, "base.overrides", "must be a mapping")
                raw["base"]["overrides"][key] = value
        else:
            raise SpecError(file, f"--set {key}", f"is neither a spec key ({', '.join(TOP_KEYS)}) nor a trainer config key{did_you_mean(key, list(types) + list(TOP_KEYS))}")
    return raw


def load_raw(file: str) -> dict[str, Any]:
    try:
        return read_yaml(file)
    except ConfigError as exc:
        raise SpecError(file, "", str(exc).replace(f"{file}: ", "").replace(f"{file} ", "")) from None


def validate(file: str, raw: Mapping[str, Any], cwd: Path | None = None) -> SweepSpec:
    """Check a parsed spec mapping and resolve it; raises SpecError on the first problem."""
    if not isinstance(raw, Mapping):
        raise SpecError(file, "", f"must hold a mapping, but holds {describe(raw)}")
    for k in raw:
        if k not in TOP_KEYS:
            raise SpecError(file, str(k), f"is not a spec key (known: {', '.join(TOP_KEYS)}){did_you_mean(str(k), TOP_KEYS)}")
    name = string(file, "name", raw.get("name"))
    if not NAME_RE.fullmatch(name):
        raise SpecError(file, "name", f"must be {NAME_RULE}, but got {name!r}")
    if "base" not in raw:
        raise SpecError(file, "base", "is required: base: {preset: NAME} or {config: FILE}, with optional overrides")
    cfg, source = _base_config(file, raw)
    metrics, modes = checks.objectives(file, raw)
    spec = SweepSpec(file=file, name=name, base_cfg=cfg, base_source=source, metric=metrics[0], mode=modes[0],
                     metrics=metrics, modes=modes, params=parse_space(file, raw.get("space")), raw=dict(raw))
    if not spec.searched:
        raise SpecError(file, "space", "must search at least one key ({type: float|int|categorical, ...})")
    # the trainer's checks first: a bad train.steps must be named as such, not as the scheduler.max_t it implies
    checks.check_against_trainer(spec)
    _search(file, raw, spec)
    _scheduler(file, raw, spec)
    checks.several_objectives(spec)
    _resources(file, raw, spec)
    spec.seeds = _seeds(file, raw)
    failure = section(file, raw, "failure")
    spec.max_retries = integer(file, "failure.max_retries", failure.get("max_retries", 0), 0)
    if failure.get("max_failed_trials") is not None:
        spec.max_failed_trials = integer(file, "failure.max_failed_trials", failure["max_failed_trials"], 0)
    checks.final_eval(file, raw, spec)
    if raw.get("time_budget_s") is not None:
        spec.time_budget_s = number(file, "time_budget_s", raw["time_budget_s"], above=0)
    spec.cpu_variant = checks.cpu_variant(file, raw)
    checks.check_metric_is_reported(spec)
    cwd = cwd or Path.cwd()
    spec.storage = (cwd / _local_path(file, "storage", raw.get("storage", DEFAULT_STORAGE))).resolve()
    aim = section(file, raw, "aim")
    spec.aim_repo = (cwd / _local_path(file, "aim.repo", aim.get("repo", DEFAULT_AIM_REPO))).resolve()
    spec.aim_experiment = string(file, "aim.experiment", aim.get("experiment", name))
    return spec


def _local_path(file: str, key: str, value: Any) -> str:
    """A path on the driver's machine (an NFS mount for a cluster), not a URL (clusters/README.md)."""
    text = string(file, key, value)
    if "://" in text:
        raise SpecError(file, key, f"must be a local or NFS path (s3://, gs:// and aim:// are not supported yet;"
                                   f" see clusters/README.md), but got {text!r}")
    return text


def set_keys(sets: Sequence[str]) -> set[str]:
    """The keys a list of `--set KEY=VALUE` names (unparseable entries are apply_sets' to report)."""
    keys = set()
    for text in sets:
        try:
            keys.add(parse_override(text)[0])
        except ConfigError:
            continue
    return keys


def renamed(raw: Mapping[str, Any], name: str, experiment_given: bool) -> dict[str, Any]:
    """The spec under another sweep name. The Aim experiment follows the name, as a W&B sweep's runs
    follow its project, unless the experiment was chosen: given on the command line, or set in the
    file to something other than the spec's own name (an experiment equal to the name is the default
    spelled out)."""
    raw = copy.deepcopy(dict(raw))
    aim = raw.get("aim") if isinstance(raw.get("aim"), dict) else None
    follows = not experiment_given and (aim is None or aim.get("experiment") in (None, raw.get("name")))
    raw["name"] = name
    if follows and (aim is not None or "aim" not in raw):
        raw["aim"] = {**(aim or {}), "experiment": name}
    return raw


def load_spec(file: str, sets: Sequence[str] = (), cwd: Path | None = None, name: str | None = None) -> SweepSpec:
    """Read, apply `--set`, rename (`--name`, or `--set name=...`), validate. The one function the CLI calls."""
    if not Path(file).is_file():
        raise SpecError(file, "", "no such spec file")
    raw = load_raw(file)
    keys = set_keys(sets)
    name = name if name is not None else _set_value(sets, "name")
    if name is not None and isinstance(raw, Mapping):
        raw = renamed(raw, str(name), experiment_given=bool({"aim", "aim.experiment"} & keys))
    return validate(file, apply_sets(file, raw, sets), cwd)


def _set_value(sets: Sequence[str], key: str) -> Any:
    """The last value `--set` gives `key`, or None."""
    value = None
    for text in sets:
        try:
            k, v = parse_override(text)
        except ConfigError:
            continue
        value = v if k == key else value
    return value
