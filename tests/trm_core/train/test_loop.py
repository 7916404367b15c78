"""The trainer end to end on a tiny 4x4 Sudoku: smoke run, learning on a fixed batch, resume, eval."""

import contextlib
import json
from pathlib import Path

import pytest
import torch

from trm_core.config import load_config
from trm_core.errors import UserError
from trm_core.model import build_model
from trm_core.data.load import EvalSet
from trm_core.train.evaluate import evaluate
from trm_core.train.loop import train, train_step
from trm_core.data.load import load_data
from trm_core.train.session import build_session
from trm_core.train.loss import supervision_loss
from trm_core.train.optim import OPTIMIZERS
from trm_core.train.schedules import Depth

TINY = ["data.n_train=200", "data.n_test=24", "model.hidden_size=32", "train.batch_size=16", "train.steps=6",
        "train.eval_interval=3", "train.log_interval=1", "recursion.n_supervision=3", "device=cpu",
        "recursion.halt_exploration_prob=0.5", "train.cpu_threads=1"]


def tiny_cfg(*extra):
    return load_config("sudoku4_tiny", TINY + list(extra))


def test_smoke_run_reports_and_writes_files(tmp_path):
    reports = []
    final = train(tiny_cfg(), report=lambda m, d: reports.append((m, d)), out_dir=tmp_path)
    assert [m["step"] for m, _ in reports] == [3, 6]
    for m, d in reports:
        # each report hands the checkpoint of its own step, already on disk
        assert Path(d) == tmp_path / "checkpoints" / f"step_{m['step']:08d}" and (Path(d) / "checkpoint.pt").is_file()
        for key in ["train/loss", "train/exact_acc", "train/cell_acc", "eval/exact_acc", "eval/cell_acc",
                    "eval/avg_steps", "eval/halt_acc", "perf/puzzle_steps_per_s", "time/elapsed_s"]:
            assert key in m, key
    assert final == reports[-1][0]
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all("step" in x for x in lines) and len(lines) == 6 + 2
    assert json.loads((tmp_path / "final.json").read_text())["step"] == 6
    assert (tmp_path / "config.yaml").exists()
    assert 1 <= final["eval/avg_steps"] <= 3


def test_loss_falls_on_a_fixed_batch():
    cfg = tiny_cfg("optim.lr=3e-3", "optim.warmup_steps=0")
    torch.manual_seed(0)
    model = build_model(cfg, 6, 16)
    opt = OPTIMIZERS.get("adamw")(model, cfg.optim)
    x = torch.randint(1, 6, (8, 16))
    y = (x + torch.arange(16)) % 4 + 2  # a function of token and position: learnable
    losses = []
    for _ in range(30):
        out = model(model.init_carry(8), x, 2, 2)
        logits, q = out.logits, out.q_halt
        out = supervision_loss(logits, q, y, torch.ones(8, dtype=torch.long), 3, cfg.loss)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.lm_loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert out.cell_correct.mean() > 0.9


def test_resume_gives_the_same_trajectory(tmp_path):
    extra = ["train.eval_interval=3", "optim.ema_decay=0.9", "optim.name=adam_atan2", "train.checkpoint_carry=full"]
    straight = tiny_cfg(*extra)
    train(straight, out_dir=tmp_path / "a")
    first = tiny_cfg(*extra, "train.steps=3")
    train(first, out_dir=tmp_path / "b")
    train(straight, out_dir=tmp_path / "b", resume_from=tmp_path / "b" / "checkpoints" / "step_00000003")

    def losses(run):
        rows = [json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        return {r["step"]: r["train/loss"] for r in rows if "eval/exact_acc" not in r}

    a, b = losses("a"), losses("b")
    assert list(a) == [1, 2, 3, 4, 5, 6] and a == b
    final_a = json.loads((tmp_path / "a" / "final.json").read_text())
    final_b = json.loads((tmp_path / "b" / "final.json").read_text())
    assert final_a["eval/exact_acc"] == final_b["eval/exact_acc"]
    assert final_a["eval/cell_acc"] == final_b["eval/cell_acc"]


def test_corrupt_or_mismatched_checkpoint_is_one_line_error(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot be read"):
        train(tiny_cfg(), resume_from=bad)
    train(tiny_cfg("train.steps=3"), out_dir=tmp_path / "run")
    ckpt = tmp_path / "run" / "checkpoints" / "step_00000003"
    with pytest.raises(UserError, match=r"trained with another model: model.hidden_size: 32 in the checkpoint, "
                                        r"64 here, model.swiglu_multiple") as err:
        train(tiny_cfg("model.hidden_size=64", "model.swiglu_multiple=32"), resume_from=ckpt)
    assert "\n" not in str(err.value) and "size mismatch" not in str(err.value)
    with pytest.raises(UserError, match="not found"):
        train(tiny_cfg(), resume_from=tmp_path / "missing")


def test_eval_metrics_on_a_tiny_model():
    cfg = tiny_cfg()
    model = build_model(cfg, 6, 16)
    # a model whose lm head always answers token 2 and whose halt head says "halt" at once
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.q_head.bias.fill_(5.0)
    model.lm_head.bias = torch.nn.Parameter(torch.tensor([0, 0, 10.0, 0, 0, 0]))
    labels = torch.full((4, 16), 2)
    labels[0, :4] = 3  # row 0 gets 12 of 16 cells right; rows 1-3 are all right
    data = EvalSet(torch.ones(4, 16, dtype=torch.long).numpy(), labels.numpy(), torch.zeros(4, dtype=torch.long).numpy())
    m = evaluate(model, data, Depth(1, 1, 3), 3, torch.device("cpu"))
    assert m["eval/exact_acc"] == pytest.approx(0.75)
    assert m["eval/cell_acc"] == pytest.approx((12 / 16 + 3) / 4)
    assert m["eval/avg_steps"] == 1.0 and m["eval/halted_exact_acc"] == pytest.approx(0.75)
    # the halt head says "halt" (q > 0) on every step: right for the 3 solved rows, wrong for row 0
    assert m["eval/halt_acc"] == pytest.approx(0.75)
    assert m["eval/n_puzzles"] == 4


def test_carry_persists_across_supervision_steps():
    cfg = tiny_cfg()
    data = load_data(cfg)
    s = build_session(cfg, torch.device("cpu"), data.dataset, data.stream)
    fresh = s.model.init_carry(cfg.train.batch_size)
    train_step(s, contextlib.nullcontext)
    # q_halt starts at -5, so no row halts after one of its 3 steps: every row keeps its latents
    assert not s.batch.halted.any() and s.batch.steps.tolist() == [1] * cfg.train.batch_size
    assert not torch.allclose(s.batch.carry.z_h, fresh.z_h)
    inputs = s.batch.inputs.clone()
    train_step(s, contextlib.nullcontext)
    assert torch.equal(s.batch.inputs, inputs) and s.batch.steps.tolist() == [2] * cfg.train.batch_size


def test_eval_split_and_seeded_subset_are_chosen_by_config():
    data = load_data(tiny_cfg("data.eval_split=train", "train.eval_max_puzzles=5"))
    train_inputs = [r.tobytes() for r in data.dataset.inputs("train")]
    assert len(data.eval_set) == 5 and all(r.tobytes() in train_inputs for r in data.eval_set.inputs)
    assert len(data.final_set) == 200  # the whole split once at the end
    again = load_data(tiny_cfg("data.eval_split=train", "train.eval_max_puzzles=5", "seed=7"))
    assert (again.eval_set.inputs == data.eval_set.inputs).all()  # the subset follows data.data_seed, not the run seed
    other = load_data(tiny_cfg("data.eval_split=train", "train.eval_max_puzzles=5", "data.data_seed=1"))
    other_train = [r.tobytes() for r in other.dataset.inputs("train")]
    picked = sorted(other_train.index(r.tobytes()) for r in other.eval_set.inputs)
    first = sorted(train_inputs.index(r.tobytes()) for r in data.eval_set.inputs)
    assert len(set(picked)) == 5 and picked != first  # another data seed draws other rows of its split
    assert load_data(tiny_cfg("train.eval_max_puzzles=5", "train.final_eval=false")).final_set is None
    with pytest.raises(UserError, match="no split 'lite'; splits are"):
        load_data(tiny_cfg("data.eval_split=lite"))
