"""K parallel chains (SIC): latent inits per chain, carry policies, expunge, diversity, SVD alignment.

Where a test checks a method it writes the method's formula out from the public code (file:line at
the commits docs/METHODS.md names), not from trm_core's implementation.
"""

import math

import pytest
import torch

from trm_core.config import load_config
from trm_core.errors import ConfigError
from trm_core.model import CARRY_POLICIES, build_model
from trm_core.model.chains import chain_diversity, expunged_chains


def model_with(*extra):
    cfg = load_config("sudoku4_tiny", ["model.hidden_size=32", "device=cpu"] + list(extra))
    torch.manual_seed(0)
    return build_model(cfg)


def rows(values):
    """Per-row constant latents: (rows,) -> (rows, 2, 3)."""
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1).expand(-1, 2, 3).clone()


def test_carry_policies_on_hand_made_latents():
    before = rows([-1, -2, -3, -4, -5, -6])  # 2 puzzles x 3 chains, as the step found them
    after = rows([10, 11, 12, 20, 21, 22])  # as the step left them
    winner = torch.tensor([2, 0])
    first = lambda t: t[:, 0, 0].tolist()
    # SIC code/experiment.py:501-530: copy_top1 writes the winner's output to every chain; all keeps each output
    assert first(CARRY_POLICIES.get("copy")(before, after, winner)) == [12, 12, 12, 20, 20, 20]
    assert first(CARRY_POLICIES.get("all")(before, after, winner)) == [10, 11, 12, 20, 21, 22]
    # SIC code/model.py:1977-1980: top1 is z_new = z.clone(); z_new[winner] = z_out[winner]: losers keep their
    # state from before the step
    assert first(CARRY_POLICIES.get("top1")(before, after, winner)) == [-1, -2, 12, 20, -5, -6]


def test_expunge_drops_the_higher_loss_chain_of_a_pair_once_per_puzzle():
    """SIC code/experiment.py:1692-1741: among eligible puzzles, live chains whose z_L cosine > threshold
    form pairs; the chain with the highest loss among the chains in a pair is freed; one per puzzle."""
    a, b, c, d = (torch.randn(2, 3) for _ in range(4))
    z = torch.stack([
        a, 2 * a, b, c,          # puzzle 0: chains 0 and 1 point the same way
        a, 3 * a, b, 0.5 * b,    # puzzle 1: two pairs, (0, 1) and (2, 3)
        a, a, b, c,              # puzzle 2: a pair, but the puzzle halted this step
        a, b, c, a,              # puzzle 3: chains 0 and 3 alike, but chain 3 was dropped earlier
        a, b, c, d,              # puzzle 4: no pair
    ])
    loss = torch.tensor([0.5, 0.3, 9.0, 9.0,
                         0.1, 0.2, 0.7, 0.4,
                         1.0, 2.0, 3.0, 4.0,
                         1.0, 1.0, 1.0, 5.0,
                         1.0, 2.0, 3.0, 4.0])
    alive = torch.ones(20, dtype=torch.bool)
    alive[15] = False
    eligible = torch.tensor([True, True, False, True, True])
    drop = expunged_chains(z, alive, loss, eligible, 0.95)
    expected = torch.zeros(20, dtype=torch.bool)
    expected[0] = True   # the higher-loss chain of the pair (0.5 > 0.3), not the later-numbered one
    expected[6] = True   # of the four chains in pairs, the highest loss (0.7); only one this step
    assert drop.tolist() == expected.tolist()


def test_a_puzzle_goes_on_with_fewer_chains_and_a_refill_revives_them():
    from trm_core.train.loss import supervision_loss

    cfg = load_config("sudoku4_tiny", ["device=cpu", "recursion.chains=3"])
    logits = torch.zeros(6, 16, 6)
    labels = torch.full((2, 16), 2)
    logits[:, :, 2] = torch.tensor([5.0, 1.0, 0.0, 0.0, 0.0, 3.0])[:, None]  # chain 0 of puzzle 0 is best
    alive = torch.tensor([False, True, True, True, True, True])
    out = supervision_loss(logits, torch.zeros(6), labels, torch.ones(2, dtype=torch.long), 4, cfg.loss, alive)
    assert out.winner.tolist() == [1, 2]  # a dropped chain never wins, however low its loss


def test_duplicates_and_diversity():
    a = torch.randn(2, 3)
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


def _truncated_at_two_sigma(x: torch.Tensor, std: float) -> None:
    """The realised std is `std` and every value lies within +-2 sigma of the widened normal (TRM's,
    SIC's and EqR's trunc_normal_init_: sigma = std / sqrt(1 - 2 * 2 * pdf(2) / (erf(2/sqrt(2)))))."""
    pdf = math.exp(-2) / math.sqrt(2 * math.pi)
    sigma = std / math.sqrt(1 - 4 * pdf / math.erf(2 / math.sqrt(2)))
    assert x.std().item() == pytest.approx(std, rel=0.03)
    assert x.abs().max().item() <= 2 * sigma + 1e-5
    assert x.abs().max().item() > 1.9 * sigma  # truncated, not merely small


def test_normal_init_is_eqr_truncated_normal_per_position():
    """EqR models/eqr.py:157-172 + models/common/__init__.py: trunc_normal_init_(std) at +-2 sigma, i.i.d."""
    model = model_with("recursion.latent_init=normal", "recursion.init_sigma_h=1.0", "recursion.init_sigma_l=8.0")
    carry = model.init_carry(64, 1, torch.Generator().manual_seed(0))
    _truncated_at_two_sigma(carry.z_h, 1.0)
    _truncated_at_two_sigma(carry.z_l, 8.0)
    assert not torch.equal(carry.z_l[0, 0], carry.z_l[0, 1])  # i.i.d. per position


def test_fresh_init_draws_z_l_per_position():
    """SIC code/model.py:1465-1475: z_L = trunc_normal_init_(empty([B, N, S, C]), std=1), per position."""
    model = model_with("recursion.latent_init=fresh", "recursion.init_sigma_l=1.0", "recursion.chains=2")
    carry = model.init_carry(300, 2, torch.Generator().manual_seed(0))
    assert not torch.equal(carry.z_l[:, 0], carry.z_l[:, 1])  # positions differ
    _truncated_at_two_sigma(carry.z_l, 1.0)
    assert torch.equal(carry.z_h[0, 0], model.h_init) and torch.equal(carry.z_h[0, 3], model.h_init)


def sic_alignment(z: torch.Tensor, up_proj: torch.Tensor) -> torch.Tensor:
    """SIC's _apply_svd_alignment_batched (code/model.py:1845-1890) written out for z (B, K, S, C)."""
    _, _, v = torch.linalg.svd(up_proj.float(), full_matrices=False)
    v_top = v[:10, :].T  # [C, 10]
    z = z.clone()
    ref = z[:, 0]
    ref_norm = ref / (ref.norm(dim=-1, keepdim=True) + 1e-8)
    target_alignment = (ref_norm @ v_top).norm(dim=-1)
    for k in range(1, z.shape[1]):
        vec = z[:, k].clone()
        orig_norm = vec.norm(dim=-1, keepdim=True)
        vec_parallel = (vec @ v_top) @ v_top.T
        vec_perp = vec - vec_parallel
        new_parallel_norm = (target_alignment**2 * (vec_perp**2).sum(-1) / (1 - target_alignment**2 + 1e-8)).sqrt()
        parallel_norm = vec_parallel.norm(dim=-1, keepdim=True)
        vec_parallel = torch.where(parallel_norm > 1e-8,
                                   vec_parallel / (parallel_norm + 1e-8) * new_parallel_norm.unsqueeze(-1), vec_parallel)
        vec_new = vec_parallel + vec_perp
        z[:, k] = vec_new / (vec_new.norm(dim=-1, keepdim=True) + 1e-8) * orig_norm
    return z


def test_svd_aligned_init_is_sics_per_position_alignment():
    fresh = model_with("recursion.latent_init=fresh", "recursion.chains=4")
    aligned = model_with("recursion.latent_init=svd_aligned", "recursion.chains=4")
    assert torch.equal(fresh.blocks[0].mlp.gate_up.weight, aligned.blocks[0].mlp.gate_up.weight)
    raw = fresh.init_carry(3, 4, torch.Generator().manual_seed(0)).z_l  # the same draw, before alignment
    out = aligned.init_carry(3, 4, torch.Generator().manual_seed(0)).z_l
    expected = sic_alignment(raw.view(3, 4, aligned.seq_len, -1), aligned.blocks[0].mlp.gate_up.weight.detach())
    torch.testing.assert_close(out.view(3, 4, aligned.seq_len, -1), expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out, raw)  # the alignment moved chains 1..
    torch.testing.assert_close(out.view(3, 4, aligned.seq_len, -1)[:, 0], raw.view(3, 4, aligned.seq_len, -1)[:, 0])


def test_fixed_svd_aligned_buffers_follow_sics_vector_alignment():
    """SIC code/model.py:1807-1843 (_equalize_svd_alignment), once, on the buffers at construction."""
    plain = model_with("recursion.latent_init=fixed", "recursion.chains=3")
    aligned = model_with("recursion.latent_init=fixed_svd_aligned", "recursion.chains=3")
    expected = sic_alignment(plain.l_init[None, :, None, :], plain.blocks[0].mlp.gate_up.weight.detach())[0, :, 0]
    torch.testing.assert_close(aligned.l_init, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["fixed", "fresh", "svd_aligned", "fixed_svd_aligned"])
def test_evaluation_starts_from_chain_zeros_buffers(name):
    """SIC code/experiment.py:1542-1546: evaluation's z_H, z_L = H_init[0], L_init[0] broadcast over positions."""
    model = model_with(f"recursion.latent_init={name}", "recursion.chains=4")
    carry = model.eval_carry(5, torch.Generator().manual_seed(1))
    assert torch.equal(carry.z_l, model.l_init[0].expand(5, model.seq_len, -1))
    assert torch.equal(carry.z_h, model.h_init.expand(5, model.seq_len, -1))


def test_evaluation_of_eqr_random_init_draws():
    """EqR draws its random init at evaluation too (models/eqr.py:157-172 has no training switch)."""
    model = model_with("recursion.latent_init=normal")
    a = model.eval_carry(4, torch.Generator().manual_seed(1))
    b = model.eval_carry(4, torch.Generator().manual_seed(2))
    assert not torch.equal(a.z_l, b.z_l) and not torch.equal(a.z_l[0, 0], a.z_l[0, 1])
