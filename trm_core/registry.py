"""A tiny name -> function registry: YAML names a piece with a snake_case string.

Every seam of the trainer (latent initialisers, recursion updates, depth schedules, supervision
weightings, optimiser recipes) is one `Registry`; each entry has the signature its registry states.
An unknown name is a ConfigError listing the known names, with a "did you mean".
"""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from trm_core.errors import ConfigError, did_you_mean

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    def __init__(self, kind: str, config_key: str):
        self.kind = kind
        """What the entries are, for error messages ("latent initialiser")."""
        self.article = "an" if kind[:1] in "aeiou" else "a"
        self.config_key = config_key
        """The config key that names an entry ("recursion.latent_init")."""
        self._entries: dict[str, F] = {}
        self._defaults: list[str] = []

    def register(self, name: str, default: bool = True) -> Callable[[F], F]:
        """Decorator: `@LATENT_INITS.register("fixed")`. `default=False` keeps an entry out of
        `defaults()` (a variant a user asks for by name, e.g. the selection rule majority_q)."""

        def add(fn: F) -> F:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._entries[name] = fn
            if default:
                self._defaults.append(name)
            return fn

        return add

    def get(self, name: str, key: str | None = None) -> F:
        """The entry `name`; `key` names the config key in the error when the registry serves several."""
        if name not in self._entries:
            raise ConfigError(
                f"{key or self.config_key} must name {self.article} {self.kind} ({', '.join(sorted(self._entries))}), "
                f"but got '{name}'{did_you_mean(name, self._entries)}"
            )
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def defaults(self) -> tuple[str, ...]:
        """The entries registered with default=True, in registration order."""
        return tuple(self._defaults)

    def __contains__(self, name: str) -> bool:
        return name in self._entries
