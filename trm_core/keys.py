"""`python -m trm_core keys [PREFIX] [--preset P]`: every config key with its type, value and docs.

The documentation of a key is the docstring under its field in trm_core/config.py (read from the
source with `ast`, so the config tree stays the one place where keys are described).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import typing

from trm_core import config


@functools.lru_cache(maxsize=None)
def key_docs() -> dict[str, str]:
    """{'optim.lr': 'Learning rate ...', ...} from the field docstrings of the config dataclasses."""
    tree = ast.parse(inspect.getsource(config))
    by_class: dict[str, dict[str, str]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        docs = {}
        for field, nxt in zip(node.body, node.body[1:]):
            if isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name) and \
                    isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
                docs[field.target.id] = " ".join(nxt.value.value.split())
        by_class[node.name] = docs
    out: dict[str, str] = {}

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[f.name]):
                walk(hints[f.name], f"{prefix}{f.name}.")
            else:
                out[f"{prefix}{f.name}"] = by_class.get(cls.__name__, {}).get(f.name, "")

    walk(config.TRMConfig, "")
    return out


def format_keys(prefix: str = "", preset: str | None = None) -> str:
    cfg = config.load_config(preset) if preset else config.TRMConfig()
    values = config.to_flat_dict(cfg)
    types = config.field_types()
    docs = key_docs()
    rows = [k for k in types if k.startswith(prefix)]
    if not rows:
        raise config.ConfigError(f"no config key starts with '{prefix}'{config.did_you_mean(prefix, types)}")
    width = max(len(k) for k in rows)
    lines = []
    for k in rows:
        lines.append(f"{k.ljust(width)}  {types[k].__name__:<5}  {values[k]!r}")
        if docs[k]:
            lines.append(f"{'':{width}}    {docs[k]}")
    return "\n".join(lines)


def register(subparsers) -> None:
    p = subparsers.add_parser("keys", help="list config keys with types, values and documentation",
                              description="Every config key (dotted), its type, its value (defaults, or a preset's) "
                                          "and its documentation, with the paper it comes from.")
    p.add_argument("prefix", nargs="?", default="", help="only keys starting with this, e.g. recursion.")
    p.add_argument("--preset", default=None, help="show a preset's (or YAML file's) values instead of the defaults")
    p.set_defaults(func=lambda args: print(format_keys(args.prefix, args.preset)))
