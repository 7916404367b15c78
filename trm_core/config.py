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
import functools
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import yaml

from trm_core.config_checks import parse_stages, validate
from trm_core.errors import ConfigError, did_you_mean
from trm_core.presets import PRESETS


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
    sampling: str = "epoch"
    """epoch: shuffled passes over the training set, batches drawn without replacement (TRM) |
    replacement: every puzzle drawn uniformly with replacement."""
    eval_split: str = "test"
    """Held-out split to evaluate on: test, or lite (Sudoku-Extreme's seeded 2,048-puzzle subset)."""
    hint_k: int = 0
    """Hint augmentation (Ren & Liu, seed 003): easier copies of training puzzles with this many
    random blanks filled in from the solution; 0: off."""
    hint_fraction: float = 0.0
    """Share of drawn training puzzles that get hint_k hints (their solution is unchanged)."""
    generated_ok: bool = True
    """False: the recipe is defined on a public dataset (e.g. maze_hard_trm on TRM's Maze-Hard CSV),
    so training refuses to run without data.path instead of silently using generated puzzles."""


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
    swiglu: str = "standard"
    """standard: down(silu(g) * v) (TRM) | sic: down(sigmoid(g) * RMSNorm(g * v)), the bounded
    SwiGLU of "Speed is Confidence" (REFERENCE.md section 3), in the channel and token MLPs."""
    prefix_len: int = 16
    """Puzzle-prefix slots prepended to the cells (TRM's puzzle_emb_len)."""
    prefix_learnable: str = "slot0"
    """slot0: slot 0 holds a zero-initialised embedding per puzzle identifier, trained by SignSGD at
    optim.puzzle_emb_lr, slots 1.. stay zero (TRM) | all: every slot is one learned vector shared
    by all puzzles, trained by the main optimiser."""
    n_puzzle_ids: int = 0
    """Rows of the puzzle-identifier embedding (prefix_learnable=slot0); 0: from the dataset (1 for
    Sudoku and mazes, whose puzzles all share identifier 0)."""
    halt_register: bool = False
    """One extra HALT token before the sequence (an extra vocabulary entry, id vocab_size); the halt
    head reads it and the lm head predicts over the whole vocabulary including it, as SIC's does
    (its 12-way head over 11 Sudoku tokens + HALT). Without it the halt head reads position 0 (TRM;
    with prefix_len 0 that is cell 0, EqR)."""
    head_bias: bool = False
    """A bias on the lm head (TRM, EqR: none; SIC: yes)."""
    q_continue: bool = True
    """The halt head's second output, q_continue (TRM and EqR keep it, unused under their
    no_ACT_continue; SIC's halt head has the single q_halt output)."""
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    vocab_size: int = 0
    """Token vocabulary; 0: take it from the dataset (sudoku: board_size + 2, maze: 6)."""


@dataclass
class RecursionConfig:
    """Latent recursion, deep supervision, parallel chains and the latent dynamics."""

    n_inner: int = 6
    """n (TRM code: L_cycles): z_L updates per pass."""
    n_outer: int = 3
    """T (TRM code: H_cycles): passes per supervision step; only the last one carries gradient."""
    n_supervision: int = 16
    """N_sup (TRM code: halt_max_steps): supervision steps per puzzle."""
    halt_exploration_prob: float = 0.1
    """With this probability a row gets a random minimum of 2..N_sup steps before it may halt."""
    latent_init: str = "fixed"
    """How z_H and z_L start, a name in trm_core.model.latents.LATENT_INITS: fixed (TRM's buffers;
    one z_L buffer per chain) | fixed_svd_aligned (the buffers of chains 1.. aligned once like
    chain 0's, SIC's fixed-init ablation) | fresh (z_L truncated normal i.i.d. per position, drawn
    at every refill, SIC) | svd_aligned (fresh, then aligned per position like chain 0, SIC's
    headline) | normal (truncated normal per position for z_H and z_L, EqR's random init RI).
    Evaluation starts from the fixed buffers (chain 0) for all but normal (SIC evaluates from
    L_init[0]; EqR draws)."""
    init_sigma_h: float = 1.0
    """Std of z_H for latent_init=normal (EqR's sigma_H; the other inits keep z_H's fixed buffer)."""
    init_sigma_l: float = 1.0
    """Std of z_L for the random inits (fresh, svd_aligned: SIC's 1; normal: EqR's sigma_L, its code's
    default 1, its appendix sweep's best 8)."""
    chains: int = 1
    """K parallel z_L chains per puzzle (SIC), run as B*K rows of one batch; evaluation uses chain 0."""
    carry_h: str = "copy"
    """After each step, z_H of the K chains: copy (the winner's new state to all) | all (each keeps
    its own new state) | top1 (the winner takes its new state, the others keep their state from
    before the step). SIC's best: copy."""
    carry_l: str = "all"
    """The same policy for z_L. SIC's best: all."""
    expunge_cos: float = 0.0
    """SIC's expunge: after each step, where two live chains of a puzzle have z_L cosine above this,
    the higher-loss chain of the pairs is dropped (at most one per puzzle per step); the puzzle goes
    on with fewer chains until it halts. 0: off."""
    state_noise_l: float = 0.0
    """SIC's state noise: std of Gaussian noise added to the carried z_L once per supervision step,
    in training only (its z_L_noise; its headline run has it off). 0: off."""
    damping: float = 0.0
    """lambda of EqR's damped update z <- z + (1 - lambda)(f(z) - z) + beta * eps; 0 with
    noise_beta 0 is TRM's plain update (bit for bit)."""
    noise_beta: float = 0.0
    """beta: std of the Gaussian path noise added at every latent update (EqR NI; SIC's state noise)."""
    eval_damping: float = -1.0
    """lambda at evaluation; -1: the training value."""
    eval_noise_beta: float = -1.0
    """beta at evaluation; -1: the training value (EqR keeps its noise on at evaluation)."""
    depth_schedule: str = "constant"
    """(n, T, N_sup) per training step: constant | cgar (progressive depth, cgar_stages) | random
    (each step draws n, T, N_sup around the configured values, random_spread_*)."""
    cgar_stages: str = "0:2x1,0.3:4x2,0.6:6x3"
    """CGAR stages as progress:n x T, from progress 0; the last stage should be the full depth."""
    random_spread_n: int = 0
    """depth_schedule=random: n is uniform in n +- this (capped so that the range stays >= 1 and
    centred, so the expected compute matches the configured depth); 0: n fixed."""
    random_spread_t: int = 1
    """The same for T (the blog's best: varying T alone)."""
    random_spread_nsup: int = 0
    """The same for N_sup."""
    solver: str = "unroll"
    """unroll: TRM's T passes of n updates | fixed_point: the inner z_L update solved to a fixed
    point (fp_method), trained with fp_grad (Attractor Models, seed 003)."""
    fp_method: str = "anderson"
    """plain (z <- f(z)) | anderson (Anderson acceleration, memory 5)."""
    fp_tol: float = 1e-3
    """Stop when ||f(z) - z|| / ||f(z)|| is below this."""
    fp_max_iter: int = 30
    """At most this many solver iterations."""
    fp_grad: str = "one_step"
    """one_step: backpropagate through one f call at the fixed point (Jacobian-free) | ift: the
    implicit-function-theorem gradient, by fixed-point iteration of the adjoint."""


@dataclass
class LossConfig:
    kind: str = "stablemax"
    """softmax | stablemax (TRM's cross entropy, computed in float64)."""
    label_smoothing: float = 0.0
    """Share of the target mass spread uniformly over the vocabulary (SIC: 0.2)."""
    halt_weight: float = 0.5
    """Weight of BCE(q_halt, exact-correct-now) (TRM: 0.5; SIC: 0.05)."""
    chain_loss: str = "wta"
    """With K > 1 chains: wta (only the lowest-CE chain of each puzzle is trained, SIC) | mean."""
    step_weighting: str = "uniform"
    """Weight of each supervision step's loss, a name in trm_core.train.loss.STEP_WEIGHTINGS:
    uniform (TRM) | cgar_paper (lambda^(t-1)/Z over the N_sup steps) | cgar_code (the batch loss
    times lambda^floor(mean 0-based step of the incoming batch), CGAR's public code)."""
    step_weight_lambda: float = 0.7
    """lambda of the CGAR weightings."""


@dataclass
class OptimConfig:
    name: str = "adam_atan2"
    """An optimiser recipe in trm_core.train.optim.OPTIMIZERS: adam_atan2 (TRM) | adamw |
    muon_adamw (SIC: Muon on the 2-D hidden matrices, AdamW on the rest)."""
    lr: float = 1e-4
    """Learning rate (of AdamW's part in muon_adamw)."""
    beta1: float = 0.9
    beta2: float = 0.95
    weight_decay: float = 1.0
    warmup_steps: int = 2000
    schedule: str = "constant"
    """constant | cosine (to min_lr_ratio * lr at the last step)."""
    min_lr_ratio: float = 0.0
    grad_clip: float = 0.0
    """Max global gradient norm; 0 disables clipping."""
    muon_lr: float = 0.02
    """Muon's learning rate, scaled per matrix by sqrt(max(1, out/in)) (SIC)."""
    muon_momentum: float = 0.6
    muon_nesterov: bool = True
    muon_ns_steps: int = 3
    """Newton-Schulz iterations per Muon step."""
    muon_weight_decay: float = 0.005
    puzzle_emb_lr: float = 1e-4
    """SignSGD learning rate of the puzzle-identifier embedding (model.prefix_learnable=slot0)."""
    puzzle_emb_weight_decay: float = 1.0
    ema_decay: float = 0.999
    """EMA of the weights used for evaluation; 0 disables. Warmed up: min(decay, (1+t)/(10+t))."""
    ema_start_step: int = 0
    """The EMA copies the weights until this step, then averages (SIC: EMA 0.9 from step 5k)."""


@dataclass
class TrainConfig:
    steps: int = 65000
    """Optimiser steps (one step = one supervision step of a full batch)."""
    batch_size: int = 768
    """Puzzles per batch; with K chains the model sees batch_size * K rows."""
    batch_rows: int = 0
    """If > 0: rows per batch (puzzles x chains), what sets the memory; batch_size is then derived as
    batch_rows // recursion.chains, so a sweep over K keeps a trial's memory fixed. 0: off."""
    eval_interval: int = 2000
    """Evaluate (and report, and checkpoint) every this many steps, and at the end."""
    log_interval: int = 100
    eval_max_puzzles: int = 0
    """Evaluate during training on a seeded subset (data.data_seed) of this many puzzles of
    data.eval_split; 0: the whole split."""
    final_eval: bool = True
    """At the end, evaluate on the whole split once more (final/* metrics) when eval_max_puzzles
    subsampled it."""
    eval_batch_size: int = 0
    """0: same as batch_size."""
    time_budget_s: float = 0.0
    """Stop (after a final evaluation) once this many seconds have passed; 0: no limit."""
    target_exact_acc: float = 0.0
    """Stop after an evaluation whose eval/exact_acc reaches this; 0: never."""
    dtype: str = "auto"
    """auto (bfloat16 on CUDA and on CPUs with native bf16 (AVX512-BF16, AMX), float32 elsewhere) |
    float32 | bfloat16."""
    precision: str = "amp"
    """How bfloat16 is used (when dtype resolves to it): amp (fp32 weights and carry, autocast) |
    reference (TRM: forward and carry in bf16, fp32 weights cast at use, RoPE and norms in fp32)."""
    compile: bool = False
    """torch.compile the block stack f (the CPU presets that train long enough set it; on a CPU
    without a C++ compiler it warns once and trains eager)."""
    deterministic: bool = False
    """PyTorch deterministic algorithms (and cuDNN/cuBLAS settings on GPU)."""
    cpu_threads: int = 0
    """torch threads on CPU; 0: $OMP_NUM_THREADS if set, else every usable core."""
    keep_checkpoints: int = 2
    """Checkpoint directories kept under out_dir/checkpoints (the newest ones); 0: all."""
    checkpoint_carry: str = "none"
    """What checkpoints keep of the ACT batch's latents: none (resume refills the batch, as TRM) |
    bf16 (half size, near-exact resume) | full (fp32: exact resume)."""


@dataclass
class TRMConfig:
    name: str = "trm"
    """Run name prefix."""
    seed: int = 0
    """Training seed: weights, and the separate data, exploration, latent-init and noise streams."""
    device: str = "auto"
    """auto (cuda > mps > cpu) | cpu | cuda | cuda:N | mps."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    recursion: RecursionConfig = field(default_factory=RecursionConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# --------------------------------------------------------------------------------------------
# Generic machinery: dotted keys, type checks, YAML, overrides.


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def field_types(cls: type = TRMConfig, prefix: str = "") -> Mapping[str, type]:
    """Every dotted leaf key of the config tree with its type, e.g. {'optim.lr': float, ...}.

    Computed once per class (typing.get_type_hints is slow and set_value asks on every key), and
    returned read-only because it is shared."""
    return _field_types(cls, prefix)


@functools.lru_cache(maxsize=None)
def _field_types(cls: type, prefix: str) -> Mapping[str, type]:
    hints = typing.get_type_hints(cls)
    out: dict[str, type] = {}
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            out.update(_field_types(tp, key + "."))
        else:
            out[key] = tp
    return MappingProxyType(out)


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
    cfg = base_config(source)
    for text in overrides:
        key, value = parse_override(text)
        set_value(cfg, key, value, source="--set")
    return validate(cfg)


def base_config(source: str | None = None) -> TRMConfig:
    """The config a preset name or a YAML file gives, before overrides and validation (load_config's
    first step; the sweeper's `base:` section reads its preset or file with it)."""
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
    return cfg


def to_dict(cfg: TRMConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(d: Mapping[str, Any]) -> TRMConfig:
    """Inverse of to_dict (nested or dotted keys), with the same checks as YAML files. Keys that
    earlier versions stored (checkpoints, config.yaml) are read in today's names."""
    return apply_dict(TRMConfig(), upgrade_keys(flatten(d)))


def upgrade_keys(flat: dict[str, Any]) -> dict[str, Any]:
    """Stored configs of earlier versions in today's keys: recursion.random_spread (one spread for
    n, T and N_sup) became one spread per knob."""
    if "recursion.random_spread" in flat:
        spread = flat.pop("recursion.random_spread")
        for knob in ("n", "t", "nsup"):
            flat.setdefault(f"recursion.random_spread_{knob}", spread)
    return flat


def to_flat_dict(cfg: TRMConfig) -> dict[str, Any]:
    return flatten(to_dict(cfg))
