"""Search-space entries in Optuna's short form, checked against the trainer's config tree.

An entry of `space:` is one of
  - a constant:        `optim.name: adamw`  (or `{type: constant, value: adamw, when: ...}`)
  - a float:           `{type: float, low: 1e-4, high: 1e-2, log: true}` (or `step: 0.1`)
  - an int:            `{type: int, low: 1, high: 4, step: 1, log: false}`
  - a categorical:     `{type: categorical, choices: [64, 128]}`
Any entry may carry `when: {other.key: value_or_list}`: it is sampled (or set) only when every
named earlier entry took one of the listed values; otherwise the base config's value stays.
Every key must be a dotted key of the trainer config and the sampled type must fit its field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from trm_core.config import check_value, field_types
from trm_core.errors import ConfigError

from sweeper.errors import SpecError, describe, did_you_mean

KINDS = ("float", "int", "categorical", "constant")
_ALLOWED = {
    "float": {"type", "low", "high", "log", "step", "when"},
    "int": {"type", "low", "high", "log", "step", "when"},
    "categorical": {"type", "choices", "when"},
    "constant": {"type", "value", "when"},
}


@dataclass
class Param:
    """One validated entry of the search space."""

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: list[Any] = field(default_factory=list)
    value: Any = None
    when: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def searched(self) -> bool:
        return self.kind != "constant"

    def describe(self) -> str:
        if self.kind == "constant":
            text = f"= {self.value!r}"
        elif self.kind == "categorical":
            text = f"categorical {self.choices}"
        else:
            text = f"{self.kind} [{self.low}, {self.high}]" + (" log" if self.log else "")
            text += f" step {self.step}" if self.step is not None else ""
        if self.when:
            text += "  when " + ", ".join(f"{k} in {v}" for k, v in self.when.items())
        return text

    def grid_values(self) -> list[Any]:
        """The values a grid search enumerates (categorical, constant, int, or float with step)."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "constant":
            return [self.value]
        step = self.step if self.step is not None else 1
        n = int(math.floor((self.high - self.low) / step + 1e-9)) + 1
        vals = [self.low + i * step for i in range(n)]
        return [int(v) for v in vals] if self.kind == "int" else [round(v, 12) for v in vals]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_fits(file: str, path: str, key: str, value: Any, types: Mapping[str, type]) -> Any:
    try:
        return check_value(key, value, types[key])
    except TypeError:  # a field type the config tree cannot set from YAML (not bool/int/float/str)
        raise SpecError(file, path, f"config field {key} has type {types[key]!r}, which a sweep cannot set") from None
    except ConfigError:
        tp = types[key].__name__
        raise SpecError(file, path, f"must fit config field {key} ({tp}), but got {describe(value)}") from None


def parse_param(file: str, key: str, raw: Any, types: Mapping[str, type], earlier: Mapping[str, Param]) -> Param:
    """Validate one `space:` entry; `earlier` holds the entries above it (for `when:`)."""
    path = f"space[{key}]"
    if key not in types:
        group = [k for k in types if k.startswith(key + ".")]
        hint = f" (space keys are dotted, e.g. '{group[0]}')" if group else did_you_mean(key, types)
        raise SpecError(file, path, f"is not a key of the trainer config{hint}")
    if not isinstance(raw, Mapping):
        if isinstance(raw, list):
            raise SpecError(file, path, f"a list is not a value; use {{type: categorical, choices: {raw}}}")
        return Param(key, "constant", value=_check_fits(file, path, key, raw, types))
    kind = raw.get("type", "constant" if "value" in raw else None)
    if kind not in KINDS:
        raise SpecError(file, f"{path}.type", f"must be one of {', '.join(KINDS)}, but got {kind!r}{did_you_mean(str(kind), KINDS)}")
    for k in raw:
        if k not in _ALLOWED[kind]:
            raise SpecError(file, f"{path}.{k}", f"is not a field of a {kind} entry (fields: {', '.join(sorted(_ALLOWED[kind]))}){did_you_mean(str(k), _ALLOWED[kind])}")
    when = _parse_when(file, path, raw.get("when"), earlier)
    if kind == "constant":
        if "value" not in raw:
            raise SpecError(file, f"{path}.value", "a constant needs a value")
        return Param(key, kind, value=_check_fits(file, f"{path}.value", key, raw["value"], types), when=when)
    if kind == "categorical":
        return _parse_categorical(file, path, key, raw, types, when)
    return _parse_range(file, path, key, kind, raw, types, when)


def _parse_when(file: str, path: str, raw: Any, earlier: Mapping[str, Param]) -> dict[str, list[Any]]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or not raw:
        raise SpecError(file, f"{path}.when", f"must map earlier space keys to a value or a list of values, but got {describe(raw)}")
    out: dict[str, list[Any]] = {}
    for other, allowed in raw.items():
        if other not in earlier:
            raise SpecError(file, f"{path}.when.{other}", f"must name a space entry above this one{did_you_mean(str(other), earlier)}; known: {', '.join(earlier) or 'none'}")
        values = list(allowed) if isinstance(allowed, list) else [allowed]
        param = earlier[other]
        possible = param.choices if param.kind == "categorical" else [param.value] if param.kind == "constant" else None
        if possible is None:
            raise SpecError(file, f"{path}.when.{other}", f"must name a categorical or constant entry, but {other} is {param.kind}")
        for v in values:
            if v not in possible:
                raise SpecError(file, f"{path}.when.{other}", f"values must be among {possible}, but got {v!r}")
        out[other] = values
    return out


def _parse_categorical(file: str, path: str, key: str, raw: Mapping, types: Mapping[str, type], when: dict) -> Param:
    choices = raw.get("choices")
    if not isinstance(choices, list) or not choices:
        raise SpecError(file, f"{path}.choices", f"a categorical needs a non-empty list of choices, but got {describe(choices)}")
    checked = [_check_fits(file, f"{path}.choices[{i}]", key, c, types) for i, c in enumerate(choices)]
    if len(set(map(repr, checked))) != len(checked):
        raise SpecError(file, f"{path}.choices", f"must not repeat a value, but got {choices}")
    return Param(key, "categorical", choices=checked, when=when)


def _parse_range(file: str, path: str, key: str, kind: str, raw: Mapping, types: Mapping[str, type], when: dict) -> Param:
    field_type = types[key]
    if kind == "float" and field_type is not float:
        raise SpecError(file, f"{path}.type", f"float does not fit config field {key} ({field_type.__name__})")
    if kind == "int" and field_type not in (int, float):
        raise SpecError(file, f"{path}.type", f"int does not fit config field {key} ({field_type.__name__})")
    bounds = {}
    for b in ("low", "high"):
        v = raw.get(b)
        ok = _is_number(v) and (kind == "float" or float(v).is_integer())
        if not ok:
            need = "a number" if kind == "float" else "an integer"
            raise SpecError(file, f"{path}.{b}", f"must be {need}, but got {describe(v)}")
        bounds[b] = float(v) if kind == "float" else int(v)
    low, high = bounds["low"], bounds["high"]
    if low > high:
        raise SpecError(file, path, f"low must be <= high, but got low={low}, high={high}")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise SpecError(file, f"{path}.log", f"must be true or false, but got {describe(log)}")
    step = raw.get("step")
    if log and low <= 0:
        raise SpecError(file, f"{path}.low", f"must be > 0 when log is true, but got low={low}")
    if log and step is not None:
        raise SpecError(file, f"{path}.step", f"cannot be combined with log: true (Optuna samples either), but got step={step}")
    if step is not None:
        if not _is_number(step) or step <= 0 or (kind == "int" and not float(step).is_integer()):
            raise SpecError(file, f"{path}.step", f"must be a positive {'integer' if kind == 'int' else 'number'}, but got {describe(step)}")
        step = float(step) if kind == "float" else int(step)
    return Param(key, kind, low=low, high=high, log=log, step=step, when=when)


def parse_space(file: str, raw: Any, types: Mapping[str, type] | None = None) -> dict[str, Param]:
    """Validate the whole `space:` mapping, in order (a `when:` may only look upwards)."""
    types = types or field_types()
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise SpecError(file, "space", f"must map trainer config keys to entries, but got {describe(raw)}")
    params: dict[str, Param] = {}
    for key, entry in raw.items():
        params[str(key)] = parse_param(file, str(key), entry, types, params)
    return params
