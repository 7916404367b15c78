"""K parallel chains (SIC): latent inits per chain, carry policies, expunge, diversity, SVD alignment."""

import pytest
import torch

from trm_core.config import load_config
from trm_core.errors import ConfigError
from trm_core.model import CARRY_POLICIES, build_model
from trm_core.model.chains import chain_diversity, duplicate_chains
from trm_core.model.latents import align_to_first_chain


def model_with(*extra):
    cfg = load_config("sudoku4_tiny", ["model.hidden_size=32", "device=cpu"] + list(extra))
    torch.manual_seed(0)
    return build_model(cfg)


def rows(values):
    """Per-row constant latents: (rows,) -> (rows, 2, 3)."""
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1).expand(-1, 2, 3).clone()


def test_carry_policies_on_hand_made_latents():
    z = rows([10, 11, 12, 20, 21, 22])  # 2 puzzles x 3 chains
    fresh = rows([-1, -2, -3, -4, -5, -6])
    winner = torch.tensor([2, 0])
    first = lambda t: t[:, 0, 0].tolist()
    assert first(CARRY_POLICIES.get("copy")(z, winner, None)) == [12, 12, 12, 20, 20, 20]
    assert first(CARRY_POLICIES.get("all")(z, winner, None)) == [10, 11, 12, 20, 21, 22]
    assert first(CARRY_POLICIES.get("top1")(z, winner, fresh)) == [-1, -2, 12, 20, -5, -6]


def test_duplicates_and_diversity():
    a, b = torch.randn(2, 3), torch.randn(2, 3)
    z = torch.stack([a, a * 2, b, a, b, b * 3])  # puzzle 0: chain 1 duplicates chain 0; puzzle 1: chain 2 dup of 1
    dup = duplicate_chains(z, 2, 0.95)
    assert dup.tolist() == [False, True, False, False, False, True]
    same = torch.stack([a, a, a, a])
    assert chain_diversity(same, 1).item() == pytest.approx(1.0, abs=1e-6)
    assert chain_diversity(torch.stack([a, -a]), 1).item() == pytest.approx(-1.0, abs=1e-6)


def test_fixed_init_gives_each_chain_its_own_buffer():
    model = model_with("recursion.chains=3")
    carry = model.init_carry(2, 3)
    assert carry.z_l.shape == (6, model.seq_len, 32)
    assert torch.equal(carry.z_l[4, 0], model.l_init[1]) and not torch.equal(carry.z_l[0, 0], carry.z_l[1, 0])
    assert torch.equal(carry.z_h[0], carry.z_h[5])  # one shared z_H start
    with pytest.raises(ConfigError, match="3 z_L init buffer"):
        model.init_carry(1, 4)


def test_random_inits_draw_from_their_stream_only():
    for name in ("fresh", "svd_aligned", "normal"):
        model = model_with(f"recursion.latent_init={name}", "recursion.chains=2", "recursion.init_sigma_l=2.0")
        g = lambda: torch.Generator().manual_seed(4)
        state = torch.get_rng_state()
        a, b = model.init_carry(3, 2, g()), model.init_carry(3, 2, g())
        assert torch.equal(torch.get_rng_state(), state)  # the global generator is untouched
        assert torch.equal(a.z_l, b.z_l) and not torch.equal(a.z_l[0], a.z_l[1])
        assert torch.equal(a.z_h[0], a.z_h[1])  # z_H shared by the chains of a puzzle


def test_normal_init_has_eqr_scales():
    model = model_with("recursion.latent_init=normal", "recursion.init_sigma_h=1.0", "recursion.init_sigma_l=8.0")
    carry = model.init_carry(64, 1, torch.Generator().manual_seed(0))
    assert carry.z_h.std().item() == pytest.approx(1.0, rel=0.05)
    assert carry.z_l.std().item() == pytest.approx(8.0, rel=0.05)
    assert not torch.equal(carry.z_l[0, 0], carry.z_l[0, 1])  # i.i.d. per position


def test_fresh_init_is_a_truncated_normal_vector_per_chain():
    model = model_with("recursion.latent_init=fresh", "recursion.init_sigma_l=0.5")
    carry = model.init_carry(2000, 1, torch.Generator().manual_seed(0))
    v = carry.z_l[:, 0]
    assert torch.equal(carry.z_l[:, 0], carry.z_l[:, 3])  # broadcast over positions, like TRM's buffer
    assert v.std().item() == pytest.approx(0.5, rel=0.02)
    assert v.abs().max().item() <= 2 * 0.5 / 0.8796 + 1e-4


def test_svd_alignment_equalises_each_chains_alignment_with_chain_zero():
    torch.manual_seed(0)
    basis = torch.linalg.qr(torch.randn(16, 4)).Q.T  # 4 orthonormal rows in R^16
    v = torch.randn(5, 3, 16)
    out = align_to_first_chain(v, basis)
    align = lambda t: ((t @ basis.T) @ basis).norm(dim=-1) / t.norm(dim=-1)
    assert torch.allclose(align(out), align(out)[:, :1].expand(-1, 3), atol=1e-5)
    assert torch.equal(out[:, 0], v[:, 0])
    outside = lambda t: t - (t @ basis.T) @ basis
    assert torch.allclose(outside(out), outside(v), atol=1e-5)  # only the in-span component is rescaled


def test_svd_aligned_init_runs_on_block_zero():
    model = model_with("recursion.latent_init=svd_aligned", "recursion.chains=4")
    carry = model.init_carry(3, 4, torch.Generator().manual_seed(0))
    top = torch.linalg.svd(model.blocks[0].mlp.gate_up.weight.detach(), full_matrices=False).Vh[:10]
    v = carry.z_l[:, 0].view(3, 4, -1)
    align = ((v @ top.T) @ top).norm(dim=-1) / v.norm(dim=-1)
    assert torch.allclose(align, align[:, :1].expand(-1, 4), atol=1e-4)
