"""The one registry mechanism: names -> components (backends, verifiers, strategies, pipeline ops).

A :class:`Registry` maps names to objects, or to ``"module:attribute"`` strings imported on first
use (so an SDK loads only when its component is used). An unknown name is one line::

    unknown backend 'vllm'; choose one of: llamacpp, openai

(with a "did you mean" hint for a near miss). Config choices are derived from :meth:`Registry.names`,
never copied by hand.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from ttclab.errors import ConfigError, TTCLabError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named components of one kind; dict-like for reading (``in``, iteration over names, ``[name]``)."""

    def __init__(self, kind: str, *, where: str = "", error: type[TTCLabError] = ConfigError) -> None:
        self.kind = kind
        self.where = where  # a prefix naming the config field, e.g. "verifier.name"
        self.error = error
        self._entries: dict[str, T | str] = {}

    def register(self, name: str, obj: T | str, *, replace: bool = True) -> None:
        """Add ``obj`` (or a lazy ``"module:attribute"``) under ``name``."""
        if not replace and name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = obj

    def decorator(self, name: str) -> Callable[[T], T]:
        """``@registry.decorator("name")`` registers the decorated object."""

        def add(obj: T) -> T:
            self.register(name, obj)
            return obj

        return add

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def names(self) -> tuple[str, ...]:
        """Registered names, in registration order."""
        return tuple(self._entries)

    def unknown(self, name: object, where: str | None = None) -> TTCLabError:
        """The one-line error for a name that is not registered (``where``: the field, else ``self.where``)."""
        close = difflib.get_close_matches(str(name), list(self._entries), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        where = self.where if where is None else where
        prefix = f"{where}: " if where else ""
        return self.error(f"{prefix}unknown {self.kind} {name!r}; {hint}choose one of: {', '.join(self._entries)}")

    def get(self, name: str) -> T:
        """The component registered as ``name`` (importing it if lazy); unknown: one-line error."""
        try:
            entry = self._entries[name]
        except (KeyError, TypeError):
            raise self.unknown(name) from None
        if isinstance(entry, str) and ":" in entry:
            module, _, attr = entry.partition(":")
            loaded: T = getattr(importlib.import_module(module), attr)
            self._entries[name] = loaded
            return loaded
        return entry  # type: ignore[return-value]

    def is_loaded(self, name: str) -> bool:
        """Whether ``name``'s component has been imported (lazy entries are not until first use)."""
        entry = self._entries.get(name)
        return not (isinstance(entry, str) and ":" in entry)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> tuple[str, ...]:
        return self.names()

    def values(self) -> list[T]:
        return [self.get(n) for n in self._entries]

    def items(self) -> list[tuple[str, T]]:
        return [(n, self.get(n)) for n in self._entries]

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"


__all__ = ["Registry"]
