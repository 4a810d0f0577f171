"""Connector plugins: classes registered under the entry-point group ``syncd.connectors``.

Loading is lazy: a pass imports only the connectors its config names, so a vdir-only
setup never pays for the Google client library.

Finding the entry points with ``importlib.metadata`` reads every installed
distribution (and importing it costs as much again): a large part of a pass with
nothing to do. So what it found is cached (``$CACHE_DIRECTORY`` or the XDG cache dir,
``entry-points.json``) under a key that whatever installs, removes or changes a
distribution moves: the ``sys.path`` entries, and in each the name of every
``.dist-info``/``.egg-info`` folder with the size and mtime of its
``entry_points.txt``. Building the key is one folder listing and a ``stat`` per
distribution; a key that differs, or any doubt (an unreadable cache, a finder that
knows distributions of its own), scans again. Only a pass writes the cache
(``save_cache``), once its config loaded, and not a dry run: a bad config or a dry run
creates nothing.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import logging
import os
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syncd import __version__
from syncd.errors import UnavailableError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

GROUP = "syncd.connectors"
CACHE_NAME = "entry-points.json"
log = logging.getLogger(__name__)

#: ``module:attr.attr [extras]``, as ``importlib.metadata.EntryPoint`` reads a value
_VALUE = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$")


class Entry:
    """An entry point read back from the cache: the ``name`` and ``value`` of an
    ``importlib.metadata.EntryPoint`` and its ``load``, without importing that module."""

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self.value = value

    def load(self) -> Any:
        """The object the value names (imported), as ``EntryPoint.load`` does."""
        match = _VALUE.match(self.value)
        if match is None:
            raise ValueError(f"not an entry point value: {self.value!r}")
        module = importlib.import_module(match.group("module"))
        attrs = filter(None, (match.group("attr") or "").split("."))
        return functools.reduce(getattr, attrs, module)


class Registry(Mapping[str, type]):
    """Connector type name -> class, importing each class on first use."""

    def __init__(self, eps: Mapping[str, EntryPoint | Entry]) -> None:
        self._eps = dict(eps)
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


def _check(kind: str, ep: EntryPoint | Entry, cls: type) -> None:
    """Refuse a class that is no connector or misses a method of a role it claims."""
    from syncd_connectors.base import Connector, missing_methods

    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise UnavailableError(f"connector {kind!r} ({ep.value}) is not a syncd_connectors.base.Connector")
    missing = missing_methods(cls)
    if missing:
        raise UnavailableError(f"connector {kind!r} ({ep.value}) is incomplete: its roles require "
                               + ", ".join(f"{m}()" for m in missing))


_registry: Registry | None = None
#: what a scan found and the cache does not hold yet: (path, entries) for ``save_cache``
_unsaved: tuple[Path, list[dict[str, Any]]] | None = None


def registry() -> Registry:
    """Every installed connector entry point (found once per process)."""
    global _registry
    if _registry is None:
        _registry = Registry(_entry_points())
    return _registry


def save_cache() -> None:
    """Keep what this process's scan found for the next run. Called once a command is
    sure to do its work: a bad config or a dry run creates nothing, not even this."""
    global _unsaved
    if _unsaved is not None:
        _write(*_unsaved)
        _unsaved = None


def connector_class(kind: str) -> type:
    """The class registered for ``kind``.

    Raises:
        UnavailableError: no such connector is installed, or it fails to import.
    """
    if kind not in registry():
        raise UnavailableError(f"no connector of type {kind!r} is installed")
    return registry()[kind]


# -- the cache ---------------------------------------------------------------------
#: keys remembered: one per ``sys.path`` seen lately (``python -m syncd`` puts the
#: working directory first, so running from elsewhere is another key)
_KEPT = 8


def _entry_points() -> dict[str, EntryPoint | Entry]:
    """name -> entry point of ``GROUP``: from the cache when its key still holds."""
    global _unsaved
    key = _key()
    path = cache_path()
    kept = _read(path)
    if key is not None:
        for entry in kept:
            if entry["key"] == key:
                return {name: Entry(name, value) for name, value in entry["entry_points"].items()}
    from importlib.metadata import entry_points

    found: dict[str, EntryPoint | Entry] = {ep.name: ep for ep in entry_points(group=GROUP)}
    if key is not None:
        fresh = {"key": key, "entry_points": {name: ep.value for name, ep in found.items()}}
        _unsaved = (path, [fresh, *(e for e in kept if e["key"] != key)][:_KEPT])
    return found


def cache_path() -> Path:
    """Where the entry points found lately are kept."""
    from syncd import paths

    return paths.cache_dir() / CACHE_NAME


def _key() -> str | None:
    """A digest of what the installed distributions look like now; None when it cannot
    be told (then nothing is cached)."""
    import hashlib
    from importlib.machinery import PathFinder

    # importlib.metadata also asks every finder on sys.meta_path that knows
    # distributions; only PathFinder's are seen by the listing below.
    if any(hasattr(f, "find_distributions") and f is not PathFinder for f in sys.meta_path):
        return None
    key: list[Any] = [__version__, sys.version, GROUP]
    for entry in sys.path:
        key.append(entry)
        key.append(_folder_key(entry or "."))
    return hashlib.sha256(json.dumps(key).encode("utf-8", "surrogateescape")).hexdigest()


def _folder_key(entry: str) -> Any:
    """The distributions of one ``sys.path`` entry: (name, size, mtime) of each one's
    ``entry_points.txt``; a file (a zip) by its own size and mtime."""
    try:
        st = os.stat(entry)
    except OSError:
        return None
    if not os.path.isdir(entry):
        return [st.st_size, st.st_mtime_ns]
    out: list[Any] = []
    try:
        with os.scandir(entry) as it:
            names = sorted(e.name for e in it if e.name.lower().endswith((".dist-info", ".egg-info"))
                           or e.name.lower() == "egg-info")
    except OSError:
        return None
    for name in names:
        try:
            ep = os.stat(os.path.join(entry, name, "entry_points.txt"))
            out.append([name, ep.st_size, ep.st_mtime_ns])
        except OSError:
            out.append([name])
    return out


def _read(path: Path) -> list[dict[str, Any]]:
    """The cache's entries; none when it is missing or not what it should be."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return []
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return []
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("key"), str)
            and isinstance(e.get("entry_points"), dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in e["entry_points"].items())]


def _write(path: Path, entries: list[dict[str, Any]]) -> None:
    """Write the cache atomically; failing to is no error (the next run scans again)."""
    from syncd import paths

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        paths.private_dir(path.parent)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"entries": entries}, fh)
        os.replace(tmp, path)
    except OSError as exc:
        log.debug("cannot write %s: %s", path, exc)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
