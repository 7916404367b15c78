"""One typed config tree for the trainer, filled from presets, YAML files and `--set` overrides.

Precedence: `--set key=value` (CLI) > YAML file > the preset the file names (or the defaults).
Every key is checked: an unknown key gets a "did you mean", a wrong type says what was expected.

Vocabulary (REFERENCE.md): TRM's code calls the answer state `z_H` (paper: y) and the reasoning
state `z_L` (paper: z). `recursion.n_inner` = n (code: L_cycles), `recursion.n_outer` = T
(code: H_cycles), `recursion.n_supervision` = N_sup (code: halt_max_steps).

The defaults are the TRM Sudoku-Extreme paper recipe (REFERENCE.md section 2).
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from trm_core.errors import ConfigError, did_you_mean


@dataclass
class DataConfig:
    """Which puzzles to train and evaluate on."""

    task: str = "sudoku"
    """sudoku (generated locally) | sudoku-extreme (from `path`) | maze (generated locally)."""
    path: str = ""
    """A dataset directory made by `python -m trm_core data build`; empty: build from the fields below."""
    board_size: int = 9
    """Sudoku side (4, 6 or 9) or maze side, for generated data."""
    n_train: int = 1000
    """Training puzzles to generate."""
    n_test: int = 1000
    """Held-out puzzles to generate."""
    min_rating: int = 0
    """Minimum solver guess count of generated puzzles (difficulty)."""
    data_seed: int = 0
    """Seed of the puzzle generator (separate from the training seed so seeds share one dataset)."""
    cache_dir: str = ""
    """Where generated datasets are cached; empty: $TRM_DATA_CACHE or ~/.cache/trm_core/datasets."""
    augment: bool = True
    """Validity-preserving augmentation of every training batch (digit relabelling, transposes...)."""
    eval_split: str = "test"
    """Held-out split to evaluate on: test, or lite (Sudoku-Extreme's seeded 2,048-puzzle subset)."""


@dataclass
class ModelConfig:
    """The network f applied at every recursion update (REFERENCE.md section 2)."""

    hidden_size: int = 512
    n_layers: int = 2
    token_mixer: str = "mlp"
    """mlp: SwiGLU over the sequence axis (MLP-Mixer, TRM's mlp_t) | attention: non-causal, RoPE."""
    n_heads: int = 8
    """Attention heads (token_mixer=attention only)."""
    expansion: float = 4.0
    """SwiGLU hidden = round up(expansion * 2/3 * width, swiglu_multiple)."""
    swiglu_multiple: int = 256
    """Round SwiGLU hidden sizes up to a multiple of this (TRM: 256; small CPU models: less)."""
    prefix_len: int = 16
    """Zero-initialised puzzle-prefix slots prepended to the cells; the halt head reads slot 0."""
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    vocab_size: int = 0
    """Token vocabulary; 0: take it from the dataset (sudoku: board_size + 2, maze: 6)."""


@dataclass
class RecursionConfig:
    """Latent recursion and deep supervision."""

    n_inner: int = 6
    """n (TRM code: L_cycles): z_L updates per pass."""
    n_outer: int = 3
    """T (TRM code: H_cycles): passes per supervision step; only the last one carries gradient."""
    n_supervision: int = 16
    """N_sup (TRM code: halt_max_steps): supervision steps per puzzle."""
    halt_exploration_prob: float = 0.1
    """With this probability a row gets a random minimum of 2..N_sup steps before it may halt."""
    latent_init: str = "fixed"
    """How z_H and z_L start: a name in trm_core.model.latents.LATENT_INITS."""
    update: str = "plain"
    """How a latent takes f's output: a name in trm_core.model.trm.RECURSION_UPDATES."""
    depth_schedule: str = "constant"
    """(n, T, N_sup) per training step: a name in trm_core.train.schedules.DEPTH_SCHEDULES."""


@dataclass
class LossConfig:
    kind: str = "stablemax"
    """softmax | stablemax (TRM's cross entropy, computed in float64)."""
    label_smoothing: float = 0.0
    halt_weight: float = 0.5
    """Weight of BCE(q_halt, exact-correct-now)."""
    step_weighting: str = "uniform"
    """Weight of each supervision step's loss: a name in trm_core.train.loss.STEP_WEIGHTINGS."""


@dataclass
class OptimConfig:
    name: str = "adam_atan2"
    """An optimiser recipe in trm_core.train.optim.OPTIMIZERS (adamw, adam_atan2, ...)."""
    lr: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.95
    weight_decay: float = 1.0
    warmup_steps: int = 2000
    schedule: str = "constant"
    """constant | cosine (to min_lr_ratio * lr at the last step)."""
    min_lr_ratio: float = 0.0
    grad_clip: float = 0.0
    """Max global gradient norm; 0 disables clipping."""
    ema_decay: float = 0.999
    """EMA of the weights used for evaluation; 0 disables. Warmed up: min(decay, (1+t)/(10+t))."""


@dataclass
class TrainConfig:
    steps: int = 65000
    """Optimiser steps (one step = one supervision step of a full batch)."""
    batch_size: int = 768
    eval_interval: int = 2000
    """Evaluate (and report, and checkpoint) every this many steps, and at the end."""
    log_interval: int = 100
    eval_max_puzzles: int = 0
    """Evaluate on the first this many puzzles of data.eval_split; 0: the whole split."""
    eval_batch_size: int = 0
    """0: same as batch_size."""
    time_budget_s: float = 0.0
    """Stop (after a final evaluation) once this many seconds have passed; 0: no limit."""
    target_exact_acc: float = 0.0
    """Stop after an evaluation whose eval/exact_acc reaches this; 0: never."""
    dtype: str = "auto"
    """auto (bfloat16 autocast on CUDA, float32 elsewhere) | float32 | bfloat16."""
    compile: bool = False
    """torch.compile the model."""
    cpu_threads: int = 0
    """torch threads on CPU; 0: $OMP_NUM_THREADS if set, else the idle cores (cores minus the load
    average, at least 1): on a busy machine small models run several times faster with 1 thread."""
    keep_checkpoints: int = 2
    """Checkpoint directories kept under out_dir/checkpoints (the newest ones); 0: all."""


@dataclass
class TRMConfig:
    name: str = "trm"
    """Run name prefix."""
    seed: int = 0
    """Training seed (init, sampling, augmentation, exploration)."""
    device: str = "auto"
    """auto (cuda > mps > cpu) | cpu | cuda | cuda:N | mps."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    recursion: RecursionConfig = field(default_factory=RecursionConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# --------------------------------------------------------------------------------------------
# Presets: dotted overrides on top of the defaults (which are the paper recipe).

PRESETS: dict[str, dict[str, Any]] = {
    "sudoku_extreme_trm": {"name": "sudoku_extreme_trm", "data.task": "sudoku-extreme"},
    "maze_unique": {
        "name": "maze_unique",
        "data.task": "maze",
        "data.board_size": 30,
        "model.token_mixer": "attention",
        "model.hidden_size": 128,
        "model.n_layers": 1,
        "model.prefix_len": 0,
    },
    # CPU presets, tuned on a shared 2-core CPU (benchmarks/learning_check.py): small widths with
    # SwiGLU widths rounded to 16 (not 256), n = T = 2, AdamW at 3e-3 and a short EMA.
    "sudoku4_tiny": {
        "name": "sudoku4_tiny",
        "data.board_size": 4,
        "data.n_train": 1000,
        "data.n_test": 500,
        "model.hidden_size": 64,
        "model.swiglu_multiple": 16,
        "model.prefix_len": 1,
        "recursion.n_inner": 2,
        "recursion.n_outer": 2,
        "recursion.n_supervision": 4,
        "loss.kind": "softmax",
        "optim.name": "adamw",
        "optim.lr": 3e-3,
        "optim.weight_decay": 0.1,
        "optim.warmup_steps": 30,
        "optim.ema_decay": 0.99,
        "train.steps": 1000,
        "train.batch_size": 64,
        "train.eval_interval": 100,
        "train.log_interval": 25,
    },
    "sudoku6_small": {
        "name": "sudoku6_small",
        "data.board_size": 6,
        "data.n_train": 2000,
        "data.n_test": 500,
        "model.hidden_size": 64,
        "model.swiglu_multiple": 16,
        "model.prefix_len": 1,
        "recursion.n_inner": 2,
        "recursion.n_outer": 2,
        "recursion.n_supervision": 8,
        "loss.kind": "softmax",
        "optim.name": "adamw",
        "optim.lr": 3e-3,
        "optim.weight_decay": 0.1,
        "optim.warmup_steps": 50,
        "optim.ema_decay": 0.99,
        "train.steps": 3000,
        "train.batch_size": 64,
        "train.eval_interval": 200,
        "train.eval_batch_size": 256,
        "train.log_interval": 50,
    },
    # 9x9 on a CPU: same recipe, wider; no time target (it needs far more than 10 CPU minutes)
    "sudoku9_small": {
        "name": "sudoku9_small",
        "data.board_size": 9,
        "data.n_train": 1000,
        "data.n_test": 500,
        "model.hidden_size": 96,
        "model.swiglu_multiple": 16,
        "model.prefix_len": 1,
        "recursion.n_inner": 2,
        "recursion.n_outer": 2,
        "recursion.n_supervision": 8,
        "loss.kind": "softmax",
        "optim.name": "adamw",
        "optim.lr": 3e-3,
        "optim.weight_decay": 0.1,
        "optim.warmup_steps": 50,
        "optim.ema_decay": 0.99,
        "train.steps": 20000,
        "train.batch_size": 64,
        "train.eval_interval": 250,
        "train.eval_batch_size": 256,
        "train.log_interval": 50,
    },
}


# --------------------------------------------------------------------------------------------
# Generic machinery: dotted keys, type checks, YAML, overrides.


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def field_types(cls: type = TRMConfig, prefix: str = "") -> dict[str, type]:
    """Every dotted leaf key of the config tree with its type, e.g. {'optim.lr': float, ...}."""
    hints = typing.get_type_hints(cls)
    out: dict[str, type] = {}
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            out.update(field_types(tp, key + "."))
        else:
            out[key] = tp
    return out


def check_value(key: str, value: Any, tp: type) -> Any:
    """Return `value` as type `tp` (int -> float allowed) or raise ConfigError saying what must hold."""
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - the tree only holds the types above
        raise TypeError(f"unsupported config type {tp!r} for {key}")
    raise ConfigError(f"{key} must be {_type_name(tp)}, but got {value!r} ({type(value).__name__})")


def _get_parent(cfg: Any, key: str) -> tuple[Any, str]:
    *parents, leaf = key.split(".")
    node = cfg
    for p in parents:
        node = getattr(node, p)
    return node, leaf


def get_value(cfg: TRMConfig, key: str) -> Any:
    types = field_types()
    if key not in types:
        raise ConfigError(f"unknown config key '{key}'{did_you_mean(key, types)}")
    node, leaf = _get_parent(cfg, key)
    return getattr(node, leaf)


def set_value(cfg: TRMConfig, key: str, value: Any, source: str = "") -> None:
    """Set one dotted key with a type check. `source` names where the value came from, for errors."""
    types = field_types()
    where = f"{source}: " if source else ""
    if key not in types:
        raise ConfigError(f"{where}unknown config key '{key}'{did_you_mean(key, types)}")
    try:
        checked = check_value(key, value, types[key])
    except ConfigError as exc:
        raise ConfigError(f"{where}{exc}") from None
    node, leaf = _get_parent(cfg, key)
    setattr(node, leaf, checked)


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'optim': {'lr': 1}} -> {'optim.lr': 1}. Dotted keys in `d` are kept as they are."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if not isinstance(k, str):
            raise ConfigError(f"config keys must be strings, but got {k!r}")
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def apply_dict(cfg: TRMConfig, values: Mapping[str, Any], source: str = "") -> TRMConfig:
    for key, value in flatten(values).items():
        set_value(cfg, key, value, source)
    return cfg


def parse_override(text: str) -> tuple[str, Any]:
    """'optim.lr=3e-4' -> ('optim.lr', 0.0003). The value is read as YAML (safe_load)."""
    if "=" not in text:
        raise ConfigError(f"--set takes key=value, but got '{text}'")
    key, raw = text.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    # YAML reads '1e-3' as a string (YAML 1.1 needs a dot); accept it as a number.
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            pass
    return key, value


def preset(name: str) -> TRMConfig:
    if name not in PRESETS:
        raise ConfigError(
            f"unknown preset '{name}'{did_you_mean(name, PRESETS)}; known presets: {', '.join(sorted(PRESETS))}"
        )
    return apply_dict(TRMConfig(), PRESETS[name], source=f"preset {name}")


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p} is not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{p}:{where} is not valid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p} must hold a mapping of config keys, but holds a {type(data).__name__}")
    return data


def load_config(source: str | None = None, overrides: Sequence[str] = ()) -> TRMConfig:
    """Build a config from a preset name or a YAML file, then apply `key=value` overrides.

    A YAML file may name its base with `preset: NAME`; its other keys (nested or dotted) override it.
    """
    if source is None or source == "":
        cfg = TRMConfig()
    elif source in PRESETS:
        cfg = preset(source)
    elif source.endswith((".yaml", ".yml")) or Path(source).exists():
        data = read_yaml(source)
        base = data.pop("preset", None)
        if base is not None and not isinstance(base, str):
            raise ConfigError(f"{source}: preset must be a preset name (str), but got {base!r}")
        cfg = preset(base) if base else TRMConfig()
        apply_dict(cfg, data, source=str(source))
    else:
        raise ConfigError(
            f"'{source}' is neither a preset ({', '.join(sorted(PRESETS))}) nor a YAML file"
            f"{did_you_mean(source, PRESETS)}"
        )
    for text in overrides:
        key, value = parse_override(text)
        set_value(cfg, key, value, source="--set")
    return validate(cfg)


def _choice(key: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(
            f"{key} must be one of {', '.join(choices)}, but got '{value}'{did_you_mean(value, choices)}"
        )


def validate(cfg: TRMConfig) -> TRMConfig:
    """Check the relations between values (one place, right after parsing); return cfg unchanged.

    Registry names (optim.name, recursion.latent_init, ...) are checked where the registries live,
    when the trainer builds its pieces.
    """
    m, r, o, t = cfg.model, cfg.recursion, cfg.optim, cfg.train
    positive = {
        "model.hidden_size": m.hidden_size, "model.n_layers": m.n_layers, "model.n_heads": m.n_heads,
        "model.swiglu_multiple": m.swiglu_multiple, "model.expansion": m.expansion,
        "model.norm_eps": m.norm_eps, "recursion.n_inner": r.n_inner, "recursion.n_outer": r.n_outer,
        "recursion.n_supervision": r.n_supervision, "optim.lr": o.lr, "train.steps": t.steps,
        "train.batch_size": t.batch_size, "train.eval_interval": t.eval_interval,
        "train.log_interval": t.log_interval, "data.board_size": cfg.data.board_size,
    }
    for key, value in positive.items():
        if not value > 0:
            raise ConfigError(f"{key} > 0 must hold, but got {key}={value}")
    non_negative = {
        "model.prefix_len": m.prefix_len, "model.vocab_size": m.vocab_size, "optim.weight_decay": o.weight_decay,
        "optim.warmup_steps": o.warmup_steps, "optim.grad_clip": o.grad_clip, "loss.halt_weight": cfg.loss.halt_weight,
        "train.eval_max_puzzles": t.eval_max_puzzles, "train.eval_batch_size": t.eval_batch_size,
        "train.time_budget_s": t.time_budget_s, "train.keep_checkpoints": t.keep_checkpoints,
        "train.cpu_threads": t.cpu_threads,
    }
    for key, value in non_negative.items():
        if value < 0:
            raise ConfigError(f"{key} >= 0 must hold, but got {key}={value}")
    unit = {
        "optim.beta1": o.beta1, "optim.beta2": o.beta2, "optim.ema_decay": o.ema_decay,
        "optim.min_lr_ratio": o.min_lr_ratio, "train.target_exact_acc": t.target_exact_acc, "recursion.halt_exploration_prob": r.halt_exploration_prob,
    }
    for key, value in unit.items():
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"0 <= {key} <= 1 must hold, but got {key}={value}")
    if not 0.0 <= cfg.loss.label_smoothing < 1.0:
        raise ConfigError(f"0 <= loss.label_smoothing < 1 must hold, but got {cfg.loss.label_smoothing}")
    _choice("model.token_mixer", m.token_mixer, ["mlp", "attention"])
    _choice("loss.kind", cfg.loss.kind, ["softmax", "stablemax"])
    _choice("optim.schedule", o.schedule, ["constant", "cosine"])
    _choice("train.dtype", t.dtype, ["auto", "float32", "bfloat16"])
    _choice("data.task", cfg.data.task, ["sudoku", "sudoku-extreme", "maze"])
    if m.token_mixer == "attention":
        if m.hidden_size % m.n_heads != 0:
            raise ConfigError(
                f"model.hidden_size % model.n_heads == 0 must hold, but got {m.hidden_size} % {m.n_heads}"
            )
        if (m.hidden_size // m.n_heads) % 2 != 0:
            raise ConfigError(f"an even head size (RoPE) must hold, but got {m.hidden_size // m.n_heads}")
    return cfg


def to_dict(cfg: TRMConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(d: Mapping[str, Any]) -> TRMConfig:
    """Inverse of to_dict (nested or dotted keys), with the same checks as YAML files."""
    return apply_dict(TRMConfig(), d)


def to_flat_dict(cfg: TRMConfig) -> dict[str, Any]:
    return flatten(to_dict(cfg))
