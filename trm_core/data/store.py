"""Dataset directories on disk: build once per spec (cached, atomic, safe under concurrency), load.

A dataset directory holds `meta.json` and, for each split, `{split}_inputs.npy` and
`{split}_labels.npy` (uint8, shape (N, seq_len)) plus `{split}_ratings.npy` (int32) when the task
rates its puzzles, and `{split}_puzzle_ids.npy` (int32 (N,), TRM's puzzle identifiers, each in
0..n_puzzle_ids-1) when puzzles have their own identifiers (without it every puzzle has id 0). `meta.json` holds task, board_size, vocab_size, seq_len, splits {name: n},
generator (the build spec), seed, spec_hash (the cache key) and content_hash (of the arrays).

Writes are atomic: a build goes into a temporary directory next to the target, which is then
renamed onto it. When several processes (Ray trials) build the same spec at once, one rename wins
and the others see a finished directory with the same spec_hash and reuse it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from trm_core.errors import UserError

FORMAT_VERSION = 1
META_KEYS = ("task", "board_size", "vocab_size", "seq_len", "splits", "generator", "seed", "content_hash")


def spec_hash(spec: Mapping[str, Any]) -> str:
    """Cache key of a build spec: sha256 of its canonical JSON (with the format version), 16 hex.

    Keys starting with '_' (such as local file paths) are informational and not hashed.
    """
    hashed = {k: v for k, v in spec.items() if not k.startswith("_")}
    blob = json.dumps({"format_version": FORMAT_VERSION, **hashed}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def content_hash(arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 over the arrays' names, shapes, dtypes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Loading


@dataclass
class PuzzleDataset:
    """A loaded dataset directory: `.meta` and per-split uint8 arrays of shape (N, seq_len)."""

    path: Path
    meta: dict[str, Any]

    @property
    def splits(self) -> list[str]:
        return list(self.meta["splits"])

    def _array(self, split: str, kind: str) -> np.ndarray:
        if split not in self.meta["splits"]:
            raise UserError(f"{self.path}: no split '{split}'; splits are {', '.join(self.splits)}")
        return np.load(self.path / f"{split}_{kind}.npy", mmap_mode="r")

    def inputs(self, split: str) -> np.ndarray:
        """Puzzle tokens (N, seq_len), uint8."""
        return self._array(split, "inputs")

    def labels(self, split: str) -> np.ndarray:
        """Solution tokens (N, seq_len), uint8."""
        return self._array(split, "labels")

    def ratings(self, split: str) -> np.ndarray | None:
        """Difficulty ratings (N,), int32, or None when the task has none."""
        self._array(split, "inputs")  # checks the split name
        f = self.path / f"{split}_ratings.npy"
        return np.load(f) if f.exists() else None

    @property
    def n_puzzle_ids(self) -> int:
        """Identifiers of the puzzle embedding (meta n_puzzle_ids; 1: every puzzle shares id 0)."""
        return int(self.meta.get("n_puzzle_ids", 1))

    def puzzle_ids(self, split: str) -> np.ndarray:
        """Puzzle identifiers (N,), int32; zeros when the dataset has none."""
        inputs = self._array(split, "inputs")
        f = self.path / f"{split}_puzzle_ids.npy"
        return np.load(f) if f.exists() else np.zeros(len(inputs), dtype=np.int32)

    def all_arrays(self) -> dict[str, np.ndarray]:
        return {f.stem: np.load(f) for f in sorted(self.path.glob("*.npy"))}


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """meta.json of a dataset directory, checked; one-line UserError when missing or malformed."""
    p = Path(path)
    f = p / "meta.json"
    if not p.is_dir():
        raise UserError(f"dataset directory {p} does not exist (build one with `python -m trm_core data build ...`)")
    try:
        meta = json.loads(f.read_text())
    except FileNotFoundError:
        raise UserError(f"{p} is not a dataset directory: it has no meta.json") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{f} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise UserError(f"{f} must hold a JSON object, but holds {type(meta).__name__}")
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise UserError(f"{f} lacks the key(s) {', '.join(missing)}")
    for key in ("board_size", "vocab_size", "seq_len"):
        if not isinstance(meta[key], int) or meta[key] <= 0:
            raise UserError(f"{f}: {key} must be a positive int, but got {meta[key]!r}")
    if not isinstance(meta["splits"], dict) or not meta["splits"]:
        raise UserError(f"{f}: splits must be a non-empty {{name: size}} object, but got {meta['splits']!r}")
    return meta


def load_dataset(path: str | os.PathLike, verify: bool = False) -> PuzzleDataset:
    """Open a dataset directory; checks meta and array shapes (and the content hash if `verify`)."""
    p = Path(path)
    meta = read_meta(p)
    for split, n in meta["splits"].items():
        for kind in ("inputs", "labels"):
            f = p / f"{split}_{kind}.npy"
            try:
                a = np.load(f, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise UserError(f"{p}: cannot read {f.name}: {exc}") from None
            if a.dtype != np.uint8 or a.shape != (n, meta["seq_len"]):
                raise UserError(
                    f"{f} must be uint8 of shape ({n}, {meta['seq_len']}), but is {a.dtype} {a.shape}"
                )
        ids_file = p / f"{split}_puzzle_ids.npy"
        if ids_file.exists():
            ids = np.load(ids_file, mmap_mode="r")
            n_ids = meta.get("n_puzzle_ids", 1)
            if ids.shape != (n,) or ids.dtype.kind not in "iu" or (n and not 0 <= int(ids.min()) <= int(ids.max()) < n_ids):
                raise UserError(f"{ids_file} must hold {n} integer ids in 0..{n_ids - 1} (meta n_puzzle_ids), "
                                f"but holds {ids.dtype} {ids.shape}")
    ds = PuzzleDataset(p, meta)
    if verify and content_hash(ds.all_arrays()) != meta["content_hash"]:
        raise UserError(f"{p}: arrays do not match meta.json's content_hash (files changed or corrupt)")
    return ds


# --------------------------------------------------------------------------------------------
# Building

BuildFn = Callable[[dict[str, Any], bool], tuple[dict[str, np.ndarray], dict[str, Any]]]
"""build(spec, progress) -> (arrays {'{split}_{kind}': array}, meta fields task/board_size/...)."""


def _write(tmp: Path, spec: Mapping[str, Any], arrays: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> None:
    for name, a in arrays.items():
        np.save(tmp / f"{name}.npy", a)
    splits = {k[: -len("_inputs")]: int(a.shape[0]) for k, a in arrays.items() if k.endswith("_inputs")}
    meta = {
        **info,
        "splits": splits,
        "generator": dict(spec),
        "seed": spec.get("seed"),
        "spec_hash": spec_hash(spec),
        "content_hash": content_hash(arrays),
        "format_version": FORMAT_VERSION,
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def existing_spec_hash(path: Path) -> str | None:
    """spec_hash of the dataset at `path`, None when there is none; UserError if `path` is something else."""
    if not path.exists():
        return None
    if path.is_dir() and not any(path.iterdir()):
        return None
    if not (path / "meta.json").exists():
        raise UserError(f"{path} exists and is not a dataset directory; choose another --out")
    return read_meta(path).get("spec_hash")


def build_at(path: str | os.PathLike, spec: dict[str, Any], build: BuildFn, progress: bool = False) -> tuple[Path, bool]:
    """Build `spec` into directory `path` atomically. Returns (path, reused).

    Reuses a directory that already holds the same spec; refuses one that holds another.
    """
    target = Path(path).expanduser()
    key = spec_hash(spec)
    have = existing_spec_hash(target)
    if have == key:
        return target, True
    if have is not None:
        raise UserError(f"{target} holds a dataset built from another spec (spec_hash {have}, want {key}); "
                        "choose another --out or delete it")
    target.parent.mkdir(parents=True, exist_ok=True)
    arrays, info = build(spec, progress)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        _write(tmp, spec, arrays, info)
        try:
            os.rename(tmp, target)  # atomic; fails if another builder already put a non-empty dir there
        except OSError:
            if existing_spec_hash(target) != key:
                raise UserError(f"{target} was filled by another process with a different dataset") from None
            return target, True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target, False


def default_cache_dir() -> Path:
    """$TRM_DATA_CACHE or ~/.cache/trm_core/datasets."""
    env = os.environ.get("TRM_DATA_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "trm_core" / "datasets"


def cached_path(spec: Mapping[str, Any], cache_dir: str | os.PathLike | None = None) -> Path:
    """Where a spec lives in the cache: {cache_dir}/{task}-{board_size}-{spec_hash}."""
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    return root / f"{spec['task']}-{spec.get('board_size', 'x')}-{spec_hash(spec)}"


def build_cached(spec: dict[str, Any], cache_dir: str | os.PathLike | None = None, progress: bool = False) -> Path:
    """Build (or reuse) `spec` in the cache and return its directory."""
    from trm_core.data.builders import builder_for

    path, _ = build_at(cached_path(spec, cache_dir), spec, builder_for(spec), progress)
    return path


def build_from_config(data_cfg: Any) -> Path:
    """The dataset directory for a DataConfig: `data_cfg.path` if set, else built into the cache.

    Generated tasks: sudoku (board_size 4, 6, 9) and maze. sudoku-extreme needs `path`.
    """
    from trm_core.data.builders import spec_from_config

    if data_cfg.path:
        meta = read_meta(Path(data_cfg.path).expanduser())
        if (meta["task"] == "maze") != (data_cfg.task == "maze"):
            raise UserError(f"data.path={data_cfg.path} holds a {meta['task']} dataset, but data.task={data_cfg.task}")
        if int(meta["board_size"]) != data_cfg.board_size:
            side = meta["board_size"]
            raise UserError(f"data.path={data_cfg.path} holds a {side}x{side} {meta['task']} dataset, but "
                            f"data.board_size={data_cfg.board_size}: set data.board_size={side} or use a "
                            f"{data_cfg.board_size}x{data_cfg.board_size} dataset")
        return Path(data_cfg.path).expanduser()
    spec = spec_from_config(data_cfg)
    return build_cached(spec, data_cfg.cache_dir or None)
