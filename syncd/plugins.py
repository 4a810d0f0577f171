"""Connector plugins: classes registered under the entry-point group ``syncd.connectors``.

Loading is lazy: a pass imports only the connectors its config names, so a vdir-only
setup never pays for the Google client library.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Mapping
from importlib.metadata import EntryPoint, entry_points

from syncd.errors import UnavailableError

GROUP = "syncd.connectors"
log = logging.getLogger(__name__)


class Registry(Mapping[str, type]):
    """Connector type name -> class, importing each class on first use."""

    def __init__(self, eps: dict[str, EntryPoint]) -> None:
        self._eps = eps
        self._loaded: dict[str, type] = {}

    def __getitem__(self, kind: str) -> type:
        if kind not in self._loaded:
            ep = self._eps[kind]
            try:
                cls = ep.load()
            except Exception as exc:  # a broken plugin must not take the others down
                raise UnavailableError(f"connector {kind!r} could not be loaded: {exc}") from exc
            _check(kind, ep, cls)
            self._loaded[kind] = cls
        return self._loaded[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._eps))

    def __len__(self) -> int:
        return len(self._eps)

    def __contains__(self, kind: object) -> bool:
        return kind in self._eps


def _check(kind: str, ep: EntryPoint, cls: type) -> None:
    """Refuse a class that is no connector or misses a method of a role it claims."""
    from syncd_connectors.base import Connector, missing_methods

    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise UnavailableError(f"connector {kind!r} ({ep.value}) is not a syncd_connectors.base.Connector")
    missing = missing_methods(cls)
    if missing:
        raise UnavailableError(f"connector {kind!r} ({ep.value}) is incomplete: its roles require "
                               + ", ".join(f"{m}()" for m in missing))


@functools.cache
def registry() -> Registry:
    """Every installed connector entry point."""
    return Registry({ep.name: ep for ep in entry_points(group=GROUP)})


def connector_class(kind: str) -> type:
    """The class registered for ``kind``.

    Raises:
        UnavailableError: no such connector is installed, or it fails to import.
    """
    if kind not in registry():
        raise UnavailableError(f"no connector of type {kind!r} is installed")
    return registry()[kind]
