"""Checkpoints: one directory per save, holding `checkpoint.pt` (tensors and plain containers only,
so it loads with `torch.load(weights_only=True)`).

Contents: step, elapsed seconds, resolved config, model, optimiser, EMA, the ACT batch (puzzles,
step counts and, as train.checkpoint_carry says, its latents), the TrainStream state and every RNG
(torch, numpy, python, and the run's streams: trm_core.rng), so a resumed run continues exactly
(checkpoint_carry=full) or refills its batch, as TRM does (none, the default: a paper-preset batch
of 768 x 97 x 512 latents is 305 MB in fp32, 4x the weights and optimiser state).
Writes are atomic: a temp directory renamed into place.
"""

from __future__ import annotations

import io
import os
import random
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from trm_core.config import TRMConfig, from_dict, parse_override, set_value, validate
from trm_core.errors import UserError
from trm_core.names import check_names
from trm_core.runtime import resolve_device

FORMAT = "trm_core.checkpoint/2"
FILENAME = "checkpoint.pt"


def rng_state(streams: Any) -> dict[str, Any]:
    """Every random source as tensors and primitives."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "gauss": float(gauss)},
        "python": {"version": version, "state": list(py_state), "gauss": py_gauss},
        "streams": streams.state_dict(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], streams: Any) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    streams.load_state_dict(state["streams"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(payload: dict[str, Any], root: str | os.PathLike, step: int, keep: int) -> Path:
    """Write `payload` to root/step_{step:08d}/checkpoint.pt atomically; keep the newest `keep` dirs."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:08d}"
    tmp = root / f".tmp_step_{step:08d}_{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    buf = io.BytesIO()
    torch.save({"format": FORMAT, **payload}, buf)  # serialised in memory, so a failed write says why
    try:
        with open(tmp / FILENAME, "wb") as f:
            f.write(buf.getbuffer())
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:  # disk full, file too large: keep no partial checkpoint
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"cannot write checkpoint {final}: {exc.strerror or exc}; the previous checkpoints are kept") from None
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    if keep > 0:
        for old in sorted(root.glob("step_*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def describe(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line (torch's state-dict errors span several), truncated."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def checkpoint_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    return p / FILENAME if p.is_dir() else p


def run_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """A run directory's checkpoint directories (RUN/checkpoints/step_*), newest first."""
    root = Path(run_dir) / "checkpoints"
    return sorted((p for p in root.glob("step_*") if p.is_dir()), reverse=True) if root.is_dir() else []


def latest_valid_checkpoint(run_dir: str | os.PathLike, warn=None) -> Path | None:
    """The newest checkpoint of a run directory that loads; a corrupt or truncated newer one is
    skipped (and reported through `warn(message)`), so training resumes from the previous one."""
    for path in run_checkpoints(run_dir):
        try:
            load_checkpoint(path)
        except UserError as exc:
            if warn is not None:
                warn(f"skipping {exc}")
            continue
        return path
    return None


def resolve_resume(path: str | os.PathLike, warn=None) -> Path:
    """`--resume` takes a checkpoint (directory or file) or a run directory (its latest valid checkpoint)."""
    p = Path(path)
    if p.is_dir() and not (p / FILENAME).exists() and (p / "checkpoints").is_dir():
        found = latest_valid_checkpoint(p, warn)
        if found is None:
            raise UserError(f"run directory {p} holds no readable checkpoint under {p / 'checkpoints'}")
        return found
    return p


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint directory (or its checkpoint.pt) onto the CPU; one-line UserError if unusable."""
    f = checkpoint_file(path)
    if not f.is_file():
        raise UserError(f"checkpoint {path} not found (expected a checkpoint directory or its {FILENAME})")
    try:
        data = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: torch raises many kinds
        raise UserError(f"checkpoint {f} cannot be read (corrupt or not a trm_core checkpoint): {describe(exc, 200)}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"checkpoint {f} is not a {FORMAT} checkpoint")
    shapes = {"step": int, "config": dict, "model": dict}
    for key, kind in shapes.items():
        if not isinstance(data.get(key), kind) or isinstance(data.get(key), bool):
            raise UserError(f"checkpoint {f} is damaged: '{key}' must be a {kind.__name__}, but is {type(data.get(key)).__name__}")
    ema = data.get("ema")
    if ema is not None and not isinstance(ema, dict):
        raise UserError(f"checkpoint {f} is damaged: 'ema' must be a dict or None, but is {type(ema).__name__}")
    if ema is not None and not isinstance(ema.get("model"), dict):  # eval would fall back to 'model' silently
        given = "a dict without 'model'" if "model" not in ema else f"a dict whose 'model' is {type(ema['model']).__name__}"
        raise UserError(f"checkpoint {f} is damaged: 'ema' must be None or a dict holding the EMA weights "
                        f"(a dict) under 'model', but is {given}")
    return data


def checkpoint_weights(data: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(weights, 'ema' | 'model') of a checkpoint from load_checkpoint: the EMA's when it has them."""
    if data.get("ema") is not None:
        return data["ema"]["model"], "ema"
    return data["model"], "model"


def checkpoint_config(data: dict[str, Any], path: str | os.PathLike, overrides: Sequence[str] = ()) -> TRMConfig:
    """The TRMConfig a checkpoint (from load_checkpoint) was trained with, `--set` overrides applied,
    checked as a run's config is (ranges, registry names, the device). A one-line UserError naming the
    checkpoint when its stored config is at fault; an override's own error is left as it is."""
    f = checkpoint_file(path)
    try:
        cfg = from_dict(data["config"])
    except UserError as exc:
        raise UserError(f"checkpoint {f} holds a config this trainer cannot read: {exc}") from None
    for text in overrides:
        key, value = parse_override(text)
        set_value(cfg, key, value, source="--set")
    error = _config_error(cfg)
    if error is not None:
        stored = _config_error(from_dict(data["config"])) if overrides else error
        if stored is None:
            raise error  # the stored config holds: the --set values are at fault, and the message says which
        with_set = "" if str(stored) == str(error) else " with the --set values"
        raise UserError(f"checkpoint {f} holds a config this trainer cannot use{with_set}: {error} "
                        f"(--set KEY=VALUE overrides a stored value)")
    return cfg


def _config_error(cfg: TRMConfig) -> UserError | None:
    """What a run's config checks (ranges, registry names, the device) say of `cfg`, or None."""
    try:
        validate(cfg)
        check_names(cfg)
        resolve_device(cfg.device)
    except UserError as exc:
        return exc
    return None
