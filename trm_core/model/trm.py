"""The Tiny Recursive Model (TRM, REFERENCE.md section 2): one network f, applied recursively.

Vocabulary: `z_h` = TRM's z_H (paper: y), `z_l` = z_L (paper: z); `n_inner` = n (L_cycles),
`n_outer` = T (H_cycles). One supervision step runs T passes; a pass is n updates
`z_l <- f(z_l + z_h + x)` then `z_h <- f(z_h + z_l)`; only the last pass builds a graph.
`f` is a stack of post-norm blocks (trm_core.model.layers). The heads read `z_h`: the lm head on
the cells, the halt head on position 0 (the HALT token when there is one, SIC; else the first
prefix slot, TRM; else cell 0, EqR).

How a latent takes f's output is `Dynamics`: TRM's plain update `z <- f(z)`, or EqR's damped noisy
update `z <- z + (1 - lambda)(f(z) - z) + beta * eps` (noise from the run's `noise` stream).
The model is chain-agnostic: every row is one trajectory; K chains per puzzle are K rows
(trm_core.model.latents, trm_core.model.chains).

Sequence layout: [HALT token (optional)] [prefix slots] [cells]. The prefix is TRM's puzzle
embedding: slot 0 holds one zero-initialised vector per puzzle identifier (trained by SignSGD,
trm_core.train.optim), slots 1.. are zeros (model.prefix_learnable=slot0), or all slots are one
shared learned block (prefix_learnable=all).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

from trm_core.config import DataConfig, RecursionConfig, TRMConfig
from trm_core.errors import ConfigError
from trm_core.model.fixed_point import solve_with_grad
from trm_core.model.latents import LATENT_INITS, Carry
from trm_core.model.layers import Block, CastedLinear, lecun_linear, trunc_normal_init_
from trm_core.registry import Registry


@dataclass
class Dynamics:
    """How a latent takes f's output: `z <- z + (1 - damping)(f(z) - z) + noise_beta * eps`.

    damping = noise_beta = 0 is TRM's plain update and returns f(z) itself (bit for bit).
    """

    damping: float = 0.0
    noise_beta: float = 0.0
    generator: Optional[torch.Generator] = None
    """The noise stream (trm_core.rng); None draws from torch's global generator."""
    sample: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
    """Optional `sample(z) -> eps` (standard normal, z's shape) replacing the generator's draws, e.g.
    per-restart streams in the test-time engine, so a batch of restarts draws what separate runs would."""

    @staticmethod
    def training(r: RecursionConfig, generator: Optional[torch.Generator] = None) -> "Dynamics":
        return Dynamics(r.damping, r.noise_beta, generator)

    @staticmethod
    def evaluation(r: RecursionConfig, generator: Optional[torch.Generator] = None) -> "Dynamics":
        """Evaluation's settings: recursion.eval_* where set (>= 0), else the training values."""
        damping = r.eval_damping if r.eval_damping >= 0 else r.damping
        beta = r.eval_noise_beta if r.eval_noise_beta >= 0 else r.noise_beta
        return Dynamics(damping, beta, generator)

    def __call__(self, z: torch.Tensor, f_z: torch.Tensor) -> torch.Tensor:
        new = f_z if self.damping == 0 else z + (1 - self.damping) * (f_z - z)
        if self.noise_beta > 0:
            if self.sample is not None:
                eps = self.sample(z)
            else:
                eps = torch.randn(z.shape, generator=self.generator, device=z.device, dtype=z.dtype)
            new = new + self.noise_beta * eps
        return new


PLAIN = Dynamics()

Solver = Callable[["TRM", torch.Tensor, torch.Tensor, int, Dynamics], tuple[torch.Tensor, Optional[dict]]]
"""(model, z_L, injection z_H + x, n, dynamics) -> (the new z_L, solver statistics or None): one pass's
z_L update, named by recursion.solver."""

SOLVERS: Registry[Solver] = Registry("z_L solver", "recursion.solver")


@SOLVERS.register("unroll")
def unroll(model: "TRM", z_l: torch.Tensor, injection: torch.Tensor, n_inner: int, dynamics: Dynamics):
    """TRM: n updates z_L <- f(z_L + z_H + x), each through the dynamics (damping, path noise)."""
    for _ in range(n_inner):
        z_l = dynamics(z_l, model.f(z_l, injection))
    return z_l, None


@SOLVERS.register("fixed_point")
def fixed_point(model: "TRM", z_l: torch.Tensor, injection: torch.Tensor, n_inner: int, dynamics: Dynamics):
    """z_L* = f(z_L* + z_H + x) (trm_core.model.fixed_point; iterations used and final residual as
    statistics); the damped noisy dynamics apply to the z_H update only."""
    r = model.recursion_cfg
    return solve_with_grad(lambda z: model.f(z, injection), z_l, r.fp_method, r.fp_grad, r.fp_tol, r.fp_max_iter)


class StepOutput(NamedTuple):
    carry: Carry
    """Detached latents after the step."""
    logits: torch.Tensor
    """(rows, cells, vocab)."""
    q_halt: torch.Tensor
    """(rows,) float32 halting logit."""
    solver_stats: Optional[dict] = None
    """recursion.solver=fixed_point: iterations used and final residual of the last z_L solve."""


class TRM(nn.Module):
    def __init__(self, cfg: TRMConfig, vocab_size: int, n_cells: int, n_puzzle_ids: int = 1):
        super().__init__()
        m = cfg.model
        self.recursion_cfg = cfg.recursion
        self.width, self.n_cells, self.vocab_size = m.hidden_size, n_cells, vocab_size
        self.prefix_len, self.halt_register = m.prefix_len, m.halt_register
        self.n_special = int(m.halt_register) + m.prefix_len
        """Positions before the cells: the HALT register (if any), then the prefix slots."""
        self.seq_len = n_cells + self.n_special
        self.forward_dtype = torch.float32
        """bf16 under train.precision=reference (set by the trainer), else float32."""
        self.latent_init = LATENT_INITS.get(cfg.recursion.latent_init)
        self.solver = SOLVERS.get(cfg.recursion.solver)
        # token embedding with std 1/sqrt(d), scaled by sqrt(d) on the way in (TRM); the HALT token
        # is one more token id, vocab_size (SIC's 12-token vocabulary: PAD, blank, 9 digits, HALT)
        self.embed_scale = math.sqrt(self.width)
        self.n_tokens = vocab_size + int(m.halt_register)
        self.embed_tokens = nn.Embedding(self.n_tokens, self.width)
        trunc_normal_init_(self.embed_tokens.weight, std=1 / self.embed_scale)
        self.prefix = self.puzzle_emb = None
        if m.prefix_len and m.prefix_learnable == "all":
            self.prefix = nn.Parameter(torch.zeros(m.prefix_len, self.width))
        elif m.prefix_len:
            self.puzzle_emb = nn.Parameter(torch.zeros(max(n_puzzle_ids, 1), self.width))
        self.blocks = nn.ModuleList(
            Block(self.width, self.seq_len, m.token_mixer, m.n_heads, m.expansion, m.norm_eps, m.rope_theta,
                  m.swiglu_multiple, m.swiglu)
            for _ in range(m.n_layers)
        )
        # the lm head predicts over every token the embedding knows (with the HALT token: SIC's head,
        # jvdillon/sic code/model.py:1297-1303)
        self.lm_head = lecun_linear(self.width, self.n_tokens, bias=m.head_bias)
        # halt head: q_halt (and TRM's q_continue, unused under its no_ACT_continue but kept for the
        # parameter count) from position 0; starts at "never halt" (TRM, SIC, EqR)
        self.q_head = CastedLinear(self.width, 2 if m.q_continue else 1, bias=True)
        nn.init.zeros_(self.q_head.weight)
        nn.init.constant_(self.q_head.bias, -5.0)
        # fixed initial latents (truncated normal, std 1), broadcast over positions; one z_L buffer per chain
        self.register_buffer("h_init", trunc_normal_init_(torch.empty(self.width), std=1.0))
        self.register_buffer("l_init", trunc_normal_init_(torch.empty(cfg.recursion.chains, self.width), std=1.0))
        self._compiled_f: Optional[Callable] = None
        if self.latent_init.prepare is not None:
            self.latent_init.prepare(self)

    # ---- the network f and the recursion -------------------------------------------------------

    def _f_eager(self, z: torch.Tensor, injection: torch.Tensor) -> torch.Tensor:
        z = z + injection
        for block in self.blocks:
            z = block(z)
        return z

    def f(self, z: torch.Tensor, injection: torch.Tensor) -> torch.Tensor:
        if self._compiled_f is not None:
            return self._compiled_f(z, injection)
        return self._f_eager(z, injection)

    def compile_f(self, **kwargs) -> None:
        """torch.compile the block stack (the recursion loop itself stays in Python)."""
        self._compiled_f = torch.compile(self._f_eager, **kwargs)

    def embed(self, inputs: torch.Tensor, puzzle_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(rows, n_cells) tokens -> (rows, seq, width) input injection x: [HALT] [prefix] cells."""
        rows = inputs.shape[0]
        parts = []
        if self.halt_register:
            parts.append(self.embed_tokens.weight[self.vocab_size].expand(rows, 1, -1))
        if self.prefix is not None:
            parts.append(self.prefix.expand(rows, -1, -1))
        elif self.puzzle_emb is not None:
            ids = puzzle_ids if puzzle_ids is not None else torch.zeros(rows, dtype=torch.long, device=inputs.device)
            slot0 = self.puzzle_emb[ids]  # (rows, width); slots 1.. are zeros (TRM pads its embedding)
            parts.append(F.pad(slot0[:, None, :], (0, 0, 0, self.prefix_len - 1)))
        parts.append(self.embed_tokens(inputs))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        return self.embed_scale * x.to(self.forward_dtype)

    def init_carry(self, n_puzzles: int, chains: int = 1, generator: Optional[torch.Generator] = None) -> Carry:
        """Fresh training latents for n_puzzles * chains rows (recursion.latent_init)."""
        return self.latent_init(self, n_puzzles, chains, generator)

    def eval_carry(self, rows: int, generator: Optional[torch.Generator] = None) -> Carry:
        """Evaluation's starting latents for `rows` single-chain rows (recursion.latent_init)."""
        return self.latent_init.evaluation(self, rows, generator)

    def forward(self, carry: Carry, inputs: torch.Tensor, n_inner: int, n_outer: int, dynamics: Dynamics = PLAIN,
                puzzle_ids: Optional[torch.Tensor] = None) -> StepOutput:
        """One supervision step of every row: T passes of (n z_L updates, one z_H update)."""
        x = self.embed(inputs, puzzle_ids)
        z_h, z_l = carry.z_h, carry.z_l
        grad_wanted = torch.is_grad_enabled()
        stats = None
        for t in range(n_outer):
            # one loop: passes 1..T-1 run without a graph, the last pass with it
            with torch.set_grad_enabled(grad_wanted and t == n_outer - 1):
                z_l, stats = self.solver(self, z_l, z_h + x, n_inner, dynamics)
                z_h = dynamics(z_h, self.f(z_h, z_l))
        logits = self.lm_head(z_h[:, self.n_special:])
        q_halt = self.q_head(z_h[:, 0]).float()[:, 0]
        return StepOutput(Carry(z_h.detach(), z_l.detach()), logits, q_halt, stats)

    # ---- bookkeeping ---------------------------------------------------------------------------

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by role, for optimiser recipes: 2-D hidden matrices (Muon-able), embeddings,
        heads, other block parameters, and the puzzle-identifier embedding (SignSGD)."""
        hidden = [p for p in self.blocks.parameters() if p.ndim == 2]
        hidden_ids = {id(p) for p in hidden}
        embed = [self.embed_tokens.weight] + ([self.prefix] if self.prefix is not None else [])
        head = [p for p in (*self.lm_head.parameters(), *self.q_head.parameters())]
        other = [p for p in self.blocks.parameters() if id(p) not in hidden_ids]
        puzzle = [self.puzzle_emb] if self.puzzle_emb is not None else []
        groups = {"hidden": hidden, "embed": embed, "head": head, "other": other, "puzzle_emb": puzzle}
        assert sum(len(g) for g in groups.values()) == len(list(self.parameters()))
        return {k: v for k, v in groups.items() if v}

    def n_params(self) -> int:
        """Parameters of the network, without the puzzle-identifier table (a lookup table that TRM
        keeps out of its parameters too)."""
        table = self.puzzle_emb.numel() if self.puzzle_emb is not None else 0
        return sum(p.numel() for p in self.parameters()) - table

    def flops_per_puzzle_step(self, n_inner: int, n_outer: int, training: bool = True) -> int:
        """Analytic matmul FLOPs of one supervision step on one row (one chain of one puzzle).

        Forward: T * (n + 1) calls of f plus the heads; training adds the backward of the last
        pass (2x its forward). Elementwise work (norms, activations) is not counted.
        """
        f_call = sum(block.flops() for block in self.blocks)
        heads = 2 * (self.n_cells * self.lm_head.weight.numel() + self.q_head.weight.numel())
        forward = n_outer * (n_inner + 1) * f_call + heads
        backward = 2 * ((n_inner + 1) * f_call + heads) if training else 0
        return forward + backward


def task_shape(data_cfg: DataConfig) -> tuple[int, int]:
    """(vocab_size, n_cells) a task config implies, for sizing a model without its dataset."""
    n_cells = data_cfg.board_size * data_cfg.board_size
    if data_cfg.task in ("sudoku", "sudoku-extreme"):
        return data_cfg.board_size + 2, n_cells
    if data_cfg.task == "maze":
        return 6, n_cells
    raise ConfigError(f"data.task must be sudoku, sudoku-extreme or maze, but got '{data_cfg.task}'")


def build_model(cfg: TRMConfig, vocab_size: Optional[int] = None, n_cells: Optional[int] = None,
                n_puzzle_ids: Optional[int] = None) -> TRM:
    """The model a config describes; vocab, cell count and puzzle identifiers from the dataset when given."""
    default_vocab, default_cells = task_shape(cfg.data)
    vocab = cfg.model.vocab_size or vocab_size or default_vocab
    ids = cfg.model.n_puzzle_ids or n_puzzle_ids or 1
    return TRM(cfg, vocab, n_cells or default_cells, ids)
