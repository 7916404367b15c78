"""Checks of a whole config (one place, right after parsing): ranges, choices, relations between
keys, and the derived values (train.batch_size from train.batch_rows). Registry names are checked
from the registries themselves (trm_core.names.check_names: latent init, carry policies, solver,
depth schedule, output distribution, chain reduction, step weighting, optimiser).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from trm_core.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from trm_core.config import TRMConfig


def _choice(key: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(
            f"{key} must be one of {', '.join(choices)}, but got '{value}'{did_you_mean(value, choices)}"
        )


def parse_stages(text: str, key: str = "recursion.cgar_stages") -> list[tuple[float, int, int]]:
    """'0:2x1,0.3:4x2,0.6:6x3' -> [(0.0, 2, 1), (0.3, 4, 2), (0.6, 6, 3)]: from progress p on, (n, T)."""
    stages = []
    for part in text.split(","):
        try:
            progress, depth = part.split(":")
            n, t = depth.lower().split("x")
            stages.append((float(progress), int(n), int(t)))
        except ValueError:
            raise ConfigError(f"{key} must be like '0:2x1,0.3:4x2,0.6:6x3' (progress:n x T, ...), "
                              f"but got '{text}'") from None
    starts = [p for p, _, _ in stages]
    if starts[0] != 0 or any(b <= a for a, b in zip(starts, starts[1:])) or starts[-1] >= 1:
        raise ConfigError(f"{key} must start at progress 0 and increase below 1, but got '{text}'")
    if any(n < 1 or t < 1 for _, n, t in stages):
        raise ConfigError(f"{key} must have n >= 1 and T >= 1 in every stage, but got '{text}'")
    return stages


def _check_ranges(cfg: TRMConfig) -> None:
    m, r, o, t, lo, d = cfg.model, cfg.recursion, cfg.optim, cfg.train, cfg.loss, cfg.data
    positive = {
        "model.hidden_size": m.hidden_size, "model.n_layers": m.n_layers, "model.n_heads": m.n_heads,
        "model.swiglu_multiple": m.swiglu_multiple, "model.expansion": m.expansion,
        "model.norm_eps": m.norm_eps, "recursion.n_inner": r.n_inner, "recursion.n_outer": r.n_outer,
        "recursion.n_supervision": r.n_supervision, "recursion.chains": r.chains, "optim.lr": o.lr,
        "optim.muon_lr": o.muon_lr, "optim.muon_ns_steps": o.muon_ns_steps, "train.steps": t.steps,
        "train.batch_size": t.batch_size, "train.eval_interval": t.eval_interval,
        "train.log_interval": t.log_interval, "data.board_size": d.board_size,
        "recursion.fp_tol": r.fp_tol, "recursion.fp_max_iter": r.fp_max_iter,
    }
    for key, value in positive.items():
        if not value > 0:
            raise ConfigError(f"{key} > 0 must hold, but got {key}={value}")
    non_negative = {
        "model.prefix_len": m.prefix_len, "model.vocab_size": m.vocab_size, "model.n_puzzle_ids": m.n_puzzle_ids,
        "optim.weight_decay": o.weight_decay, "optim.warmup_steps": o.warmup_steps, "optim.grad_clip": o.grad_clip,
        "optim.muon_weight_decay": o.muon_weight_decay, "optim.puzzle_emb_lr": o.puzzle_emb_lr,
        "optim.puzzle_emb_weight_decay": o.puzzle_emb_weight_decay, "optim.ema_start_step": o.ema_start_step,
        "loss.halt_weight": lo.halt_weight, "train.eval_max_puzzles": t.eval_max_puzzles,
        "train.eval_batch_size": t.eval_batch_size, "train.time_budget_s": t.time_budget_s,
        "train.keep_checkpoints": t.keep_checkpoints, "train.cpu_threads": t.cpu_threads,
        "recursion.init_sigma_h": r.init_sigma_h, "recursion.init_sigma_l": r.init_sigma_l,
        "recursion.noise_beta": r.noise_beta, "recursion.state_noise_l": r.state_noise_l,
        "recursion.random_spread_n": r.random_spread_n, "recursion.random_spread_t": r.random_spread_t,
        "recursion.random_spread_nsup": r.random_spread_nsup,
        "data.hint_k": d.hint_k, "data.min_rating": d.min_rating, "seed": cfg.seed, "data.data_seed": d.data_seed,
    }
    for key, value in non_negative.items():
        if value < 0:
            raise ConfigError(f"{key} >= 0 must hold, but got {key}={value}")
    unit = {
        "optim.beta1": o.beta1, "optim.beta2": o.beta2, "optim.ema_decay": o.ema_decay,
        "optim.min_lr_ratio": o.min_lr_ratio, "optim.muon_momentum": o.muon_momentum,
        "train.target_exact_acc": t.target_exact_acc, "recursion.halt_exploration_prob": r.halt_exploration_prob,
        "recursion.expunge_cos": r.expunge_cos, "loss.step_weight_lambda": lo.step_weight_lambda,
        "data.hint_fraction": d.hint_fraction,
    }
    for key, value in unit.items():
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"0 <= {key} <= 1 must hold, but got {key}={value}")
    below_one = {"loss.label_smoothing": lo.label_smoothing, "recursion.damping": r.damping}
    for key, value in below_one.items():
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"0 <= {key} < 1 must hold, but got {key}={value}")
    if r.eval_damping != -1.0 and not 0.0 <= r.eval_damping < 1.0:
        raise ConfigError(f"recursion.eval_damping must be -1 (the training value) or in [0, 1), but got {r.eval_damping}")
    if r.eval_noise_beta != -1.0 and r.eval_noise_beta < 0:
        raise ConfigError(f"recursion.eval_noise_beta must be -1 (the training value) or >= 0, but got {r.eval_noise_beta}")


def validate(cfg: TRMConfig) -> TRMConfig:
    """Check the relations between values and compute the derived ones (one place, right after
    parsing: train.batch_size from train.batch_rows); returns cfg.

    Registry names (optim.name, recursion.latent_init, ...) are checked where the registries live,
    when the trainer builds its pieces.
    """
    m, r, t = cfg.model, cfg.recursion, cfg.train
    _check_ranges(cfg)
    if t.batch_rows < 0 or 0 < t.batch_rows < r.chains:
        raise ConfigError(f"train.batch_rows must be 0 (off) or >= recursion.chains ({r.chains}), but got {t.batch_rows}")
    if t.batch_rows:
        t.batch_size = t.batch_rows // r.chains
    _choice("model.token_mixer", m.token_mixer, ["mlp", "attention"])
    _choice("model.swiglu", m.swiglu, ["standard", "sic"])
    _choice("model.prefix_learnable", m.prefix_learnable, ["slot0", "all"])
    _choice("optim.schedule", cfg.optim.schedule, ["constant", "cosine"])
    _choice("train.dtype", t.dtype, ["auto", "float32", "bfloat16"])
    _choice("train.precision", t.precision, ["amp", "reference"])
    _choice("train.checkpoint_carry", t.checkpoint_carry, ["none", "bf16", "full"])
    _choice("data.task", cfg.data.task, ["sudoku", "sudoku-extreme", "maze"])
    _choice("data.sampling", cfg.data.sampling, ["epoch", "replacement"])
    _choice("recursion.fp_method", r.fp_method, ["plain", "anderson"])
    _choice("recursion.fp_grad", r.fp_grad, ["one_step", "ift"])
    parse_stages(r.cgar_stages)
    if cfg.data.hint_fraction > 0 and cfg.data.hint_k == 0:
        raise ConfigError(f"data.hint_fraction > 0 needs data.hint_k >= 1 hints, but got data.hint_k=0")
    if m.token_mixer == "attention":
        if m.hidden_size % m.n_heads != 0:
            raise ConfigError(
                f"model.hidden_size % model.n_heads == 0 must hold, but got {m.hidden_size} % {m.n_heads}"
            )
        if (m.hidden_size // m.n_heads) % 2 != 0:
            raise ConfigError(f"an even head size (RoPE) must hold, but got {m.hidden_size // m.n_heads}")
    return cfg
