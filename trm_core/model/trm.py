"""The Tiny Recursive Model (TRM, REFERENCE.md section 2): one network f, applied recursively.

Vocabulary: `z_h` = TRM's z_H (paper: y), `z_l` = z_L (paper: z); `n_inner` = n (L_cycles),
`n_outer` = T (H_cycles). One supervision step runs T passes; a pass is n updates
`z_l <- f(z_l + z_h + x)` then `z_h <- f(z_h + z_l)`; only the last pass builds a graph.
`f` is a stack of post-norm blocks (trm_core.model.layers). The heads read `z_h`: the lm head on
the cells, the halt head on position 0.

The recursion update (how a latent takes f's output) is a registry, `RECURSION_UPDATES`, with the
signature `update(z, f_z, recursion_cfg) -> new z`; "plain" returns f_z (TRM).
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import nn

from trm_core.config import DataConfig, RecursionConfig, TRMConfig
from trm_core.errors import ConfigError
from trm_core.model.latents import LATENT_INITS, Carry
from trm_core.model.layers import Block, lecun_linear, trunc_normal_init_
from trm_core.model.registry import Registry

Update = Callable[[torch.Tensor, torch.Tensor, RecursionConfig], torch.Tensor]
RECURSION_UPDATES: Registry[Update] = Registry("recursion update", "recursion.update")


@RECURSION_UPDATES.register("plain")
def plain_update(z: torch.Tensor, f_z: torch.Tensor, cfg: RecursionConfig) -> torch.Tensor:
    """TRM: the latent becomes f's output."""
    return f_z


class TRM(nn.Module):
    def __init__(self, cfg: TRMConfig, vocab_size: int, n_cells: int):
        super().__init__()
        m = cfg.model
        self.recursion_cfg = cfg.recursion
        self.width, self.prefix_len, self.n_cells = m.hidden_size, m.prefix_len, n_cells
        self.seq_len = n_cells + m.prefix_len
        self.vocab_size = vocab_size
        self.update = RECURSION_UPDATES.get(cfg.recursion.update)
        self.latent_init = LATENT_INITS.get(cfg.recursion.latent_init)
        # token embedding with std 1/sqrt(d), scaled by sqrt(d) on the way in (TRM)
        self.embed_scale = math.sqrt(self.width)
        self.embed_tokens = nn.Embedding(vocab_size, self.width)
        trunc_normal_init_(self.embed_tokens.weight, std=1 / self.embed_scale)
        # puzzle-prefix slots (TRM's puzzle embedding, one shared identifier), zero at start
        self.prefix = nn.Parameter(torch.zeros(m.prefix_len, self.width)) if m.prefix_len else None
        self.blocks = nn.ModuleList(
            Block(self.width, self.seq_len, m.token_mixer, m.n_heads, m.expansion, m.norm_eps, m.rope_theta,
                  m.swiglu_multiple)
            for _ in range(m.n_layers)
        )
        self.lm_head = lecun_linear(self.width, vocab_size)
        # halt head: (q_halt, q_continue) from position 0; starts at "never halt" (TRM). Only
        # q_halt is used (TRM's no_ACT_continue); q_continue is kept for the parameter count.
        self.q_head = nn.Linear(self.width, 2, bias=True)
        nn.init.zeros_(self.q_head.weight)
        nn.init.constant_(self.q_head.bias, -5.0)
        # fixed initial latents (truncated normal, std 1), broadcast over positions
        self.register_buffer("h_init", trunc_normal_init_(torch.empty(self.width), std=1.0))
        self.register_buffer("l_init", trunc_normal_init_(torch.empty(self.width), std=1.0))
        self._compiled_f: Optional[Callable] = None

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

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, n_cells) tokens -> (B, seq, width) input injection x, prefix slots first."""
        x = self.embed_tokens(inputs)
        if self.prefix is not None:
            x = torch.cat([self.prefix.to(x.dtype).expand(x.shape[0], -1, -1), x], dim=1)
        return self.embed_scale * x

    def init_carry(self, batch_size: int, generator: Optional[torch.Generator] = None) -> Carry:
        return self.latent_init(self, batch_size, generator)

    def forward(self, carry: Carry, inputs: torch.Tensor, n_inner: int, n_outer: int
                ) -> tuple[Carry, torch.Tensor, torch.Tensor]:
        """One supervision step. Returns (detached carry, logits (B, n_cells, vocab), q_halt (B,))."""
        x = self.embed(inputs)
        z_h, z_l = carry.z_h, carry.z_l
        chains = carry.chains
        x_l = x.repeat_interleave(chains, dim=0) if chains > 1 else x
        grad_wanted = torch.is_grad_enabled()
        for t in range(n_outer):
            # one loop: passes 1..T-1 run without a graph, the last pass with it
            with torch.set_grad_enabled(grad_wanted and t == n_outer - 1):
                z_h_l = z_h.repeat_interleave(chains, dim=0) if chains > 1 else z_h
                for _ in range(n_inner):
                    z_l = self.update(z_l, self.f(z_l, z_h_l + x_l), self.recursion_cfg)
                z_h = self.update(z_h, self.f(z_h, self._reduce_chains(z_l, chains)), self.recursion_cfg)
        logits = self.lm_head(z_h[:, self.prefix_len:])
        q_halt = self.q_head(z_h[:, 0]).float()[:, 0]
        return Carry(z_h.detach(), z_l.detach()), logits, q_halt

    @staticmethod
    def _reduce_chains(z_l: torch.Tensor, chains: int) -> torch.Tensor:
        # K = 1 today; a multi-chain method registers how the chains feed z_H (e.g. the winner's)
        if chains != 1:
            raise NotImplementedError("K > 1 z_L chains need a chain policy (not built yet)")
        return z_l

    # ---- bookkeeping ---------------------------------------------------------------------------

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by role, for optimiser recipes: 2-D hidden matrices (Muon-able) vs the rest."""
        hidden = [p for p in self.blocks.parameters() if p.ndim == 2]
        hidden_ids = {id(p) for p in hidden}
        embed = [self.embed_tokens.weight] + ([self.prefix] if self.prefix is not None else [])
        head = [self.lm_head.weight, self.q_head.weight, self.q_head.bias]
        other = [p for p in self.blocks.parameters() if id(p) not in hidden_ids]
        groups = {"hidden": hidden, "embed": embed, "head": head, "other": other}
        assert sum(len(g) for g in groups.values()) == len(list(self.parameters()))
        return {k: v for k, v in groups.items() if v}

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops_per_puzzle_step(self, n_inner: int, n_outer: int, training: bool = True) -> int:
        """Analytic matmul FLOPs of one supervision step on one puzzle.

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


def build_model(cfg: TRMConfig, vocab_size: Optional[int] = None, n_cells: Optional[int] = None) -> TRM:
    """The model a config describes; vocab and cell count from the dataset when given."""
    default_vocab, default_cells = task_shape(cfg.data)
    vocab = cfg.model.vocab_size or vocab_size or default_vocab
    return TRM(cfg, vocab, n_cells or default_cells)
