"""The pieces of one TRM block: RMSNorm (no weights), SwiGLU, the two token mixers, RoPE.

Linear layers keep fp32 weights and cast them to the input's dtype at use (TRM's CastedLinear), so
the same module runs a bf16 forward (train.precision=reference) or an fp32 one. RMSNorm and RoPE
are computed in fp32 and cast back, as in TRM's code.

A block is post-norm (TRM): `x = norm(x + mix_tokens(x)); x = norm(x + swiglu(x))`; with the
MLP-Mixer, the first norm runs over the sequence axis, as in TRM's code. The token mixer
is either a SwiGLU over the sequence axis (MLP-Mixer, TRM's `mlp_t`) or non-causal attention with
rotary position embeddings. Shapes: (batch, seq, width) throughout.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def swiglu_width(width: int, expansion: float, multiple: int = 256) -> int:
    """SwiGLU hidden size as in TRM: round up(round(expansion * 2/3 * width), multiple)."""
    hidden = round(expansion * width * 2 / 3)
    return -(-hidden // multiple) * multiple


def trunc_normal_sigma(std: float, bound: float = 2.0) -> float:
    """sigma of a normal cut at +-bound sigma whose *realised* std is `std` (TRM's init, JAX-style).

    A normal cut at +-2 sigma has std 0.88 sigma; TRM widens sigma to make up for it.
    """
    pdf = math.exp(-bound * bound / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(bound / math.sqrt(2))  # P(-bound < N(0,1) < bound)
    return std / math.sqrt(1 - 2 * bound * pdf / mass)


def trunc_normal_init_(tensor: torch.Tensor, std: float, bound: float = 2.0) -> torch.Tensor:
    """Fill `tensor` with a truncated normal whose realised std is `std`, cut at +-bound sigma.

    Plain `nn.init.trunc_normal_(std=s)` would give weights 12% too small.
    """
    sigma = trunc_normal_sigma(std, bound)
    return nn.init.trunc_normal_(tensor, std=sigma, a=-bound * sigma, b=bound * sigma)


def trunc_normal(shape: tuple[int, ...], std: float, generator: torch.Generator | None, device: torch.device,
                 bound: float = 2.0) -> torch.Tensor:
    """A fresh truncated-normal tensor (realised std `std`) drawn from `generator` by inverse CDF."""
    sigma = trunc_normal_sigma(std, bound)
    lo, hi = (1 + math.erf(-bound / math.sqrt(2))) / 2, (1 + math.erf(bound / math.sqrt(2))) / 2
    u = torch.rand(shape, generator=generator, device=device) * (hi - lo) + lo
    return torch.erfinv(2 * u - 1).mul_(math.sqrt(2) * sigma).clamp_(-bound * sigma, bound * sigma)


class CastedLinear(nn.Linear):
    """nn.Linear whose fp32 weights are cast to the input's dtype (a no-op in fp32)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return F.linear(x, self.weight.to(x.dtype), bias)


def lecun_linear(d_in: int, d_out: int, bias: bool = False) -> CastedLinear:
    """Linear layer with truncated-normal LeCun init (std 1/sqrt(fan_in)), as TRM's CastedLinear."""
    layer = CastedLinear(d_in, d_out, bias=bias)
    trunc_normal_init_(layer.weight, std=1.0 / math.sqrt(d_in))
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


def rms_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    # RMSNorm without an affine weight, computed in float32 and cast back
    return F.rms_norm(x.float(), (x.shape[-1],), eps=eps).to(x.dtype)


class SwiGLU(nn.Module):
    """A gated MLP over the last axis of size `width`, with `[g, v] = up(x)`:

    standard (TRM): `down(silu(g) * v)`;
    sic ("Speed is Confidence"): `down(sigmoid(g) * RMSNorm(g * v))`, whose bounded magnitudes keep
    Muon stable at high learning rates (REFERENCE.md section 3). The RMSNorm has no weights.
    """

    def __init__(self, width: int, expansion: float, multiple: int = 256, kind: str = "standard",
                 norm_eps: float = 1e-5):
        super().__init__()
        self.hidden = swiglu_width(width, expansion, multiple)
        self.kind, self.norm_eps = kind, norm_eps
        self.gate_up = lecun_linear(width, 2 * self.hidden)
        self.down = lecun_linear(self.hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.gate_up(x).chunk(2, dim=-1)
        if self.kind == "sic":
            return self.down(torch.sigmoid(gate) * rms_norm(gate * value, self.norm_eps))
        return self.down(F.silu(gate) * value)

    def flops(self, n_rows: int) -> int:
        """Multiply-adds x 2 for `n_rows` vectors of size `width`."""
        return 2 * n_rows * (self.gate_up.weight.numel() + self.down.weight.numel())


def rope_tables(seq_len: int, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of shape (seq_len, head_dim), halves repeated (rotate-half convention)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: (batch, heads, seq, head_dim); rotate each (first-half, second-half) pair, in fp32 (TRM)
    xf = x.float()
    x1, x2 = xf.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return (xf * cos + rotated * sin).to(x.dtype)


class Attention(nn.Module):
    """Non-causal multi-head self-attention with RoPE (TRM's attention variant)."""

    def __init__(self, width: int, n_heads: int, seq_len: int, rope_theta: float):
        super().__init__()
        self.n_heads, self.head_dim, self.seq_len = n_heads, width // n_heads, seq_len
        self.qkv = lecun_linear(width, 3 * width)
        self.out = lecun_linear(width, width)
        cos, sin = rope_tables(seq_len, self.head_dim, rope_theta)
        # derived from the config, so left out of checkpoints
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(q, self.cos, self.sin), apply_rope(k, self.cos, self.sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=False)
        return self.out(y.transpose(1, 2).reshape(b, s, d))

    def flops(self, n_rows: int) -> int:
        d = self.n_heads * self.head_dim
        projections = 2 * n_rows * self.seq_len * (self.qkv.weight.numel() + self.out.weight.numel())
        scores_and_mix = 2 * 2 * n_rows * self.seq_len * self.seq_len * d
        return projections + scores_and_mix


class TokenMLP(nn.Module):
    """MLP-Mixer token mixing: a SwiGLU over the sequence axis, shared by all channels."""

    def __init__(self, seq_len: int, expansion: float, multiple: int, kind: str = "standard", norm_eps: float = 1e-5):
        super().__init__()
        self.seq_len = seq_len
        self.mlp = SwiGLU(seq_len, expansion, multiple, kind, norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x.transpose(1, 2)).transpose(1, 2)

    def flops(self, n_rows: int) -> int:
        # one sequence-length vector per channel; the caller's rows are puzzles, so scale by width
        return self.mlp.flops(n_rows)


class Block(nn.Module):
    """Post-norm block: token mixer then channel SwiGLU, each a residual followed by RMSNorm."""

    def __init__(self, width: int, seq_len: int, token_mixer: str, n_heads: int, expansion: float,
                 norm_eps: float, rope_theta: float, multiple: int = 256, swiglu: str = "standard"):
        super().__init__()
        self.width, self.seq_len, self.norm_eps = width, seq_len, norm_eps
        if token_mixer == "mlp":
            self.mixer: nn.Module = TokenMLP(seq_len, expansion, multiple, swiglu, norm_eps)
        else:
            self.mixer = Attention(width, n_heads, seq_len, rope_theta)
        self.mlp = SwiGLU(width, expansion, multiple, swiglu, norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.mixer, TokenMLP):
            # TRM's mlp_t: residual and RMSNorm in the (batch, width, seq) layout, so this norm runs
            # over the sequence axis, not over the channels. Back in (batch, seq, width) the tensor is
            # made contiguous: a transposed view would make the channel MLP's matmul (when its input
            # needs a gradient) broadcast its weight over the batch and copy it, 3x the step's time in bf16.
            xt = x.transpose(1, 2)
            x = rms_norm(xt + self.mixer.mlp(xt), self.norm_eps).transpose(1, 2).contiguous()
        else:
            x = rms_norm(x + self.mixer(x), self.norm_eps)
        return rms_norm(x + self.mlp(x), self.norm_eps)

    def flops(self) -> int:
        """Matmul FLOPs of one block call on one puzzle."""
        if isinstance(self.mixer, TokenMLP):
            mixer = self.mixer.flops(self.width)
        else:
            mixer = self.mixer.flops(1)
        return mixer + self.mlp.flops(self.seq_len)
