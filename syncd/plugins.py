"""Connector plugins: classes registered under the entry-point group ``syncd.connectors``."""

from __future__ import annotations

import functools
import logging
from importlib.metadata import entry_points

from syncd.errors import UnavailableError

GROUP = "syncd.connectors"
log = logging.getLogger(__name__)


@functools.cache
def registry() -> dict[str, type]:
    """Connector type name -> class, for every installed entry point that loads."""
    found: dict[str, type] = {}
    for ep in entry_points(group=GROUP):
        try:
            found[ep.name] = ep.load()
        except Exception as exc:  # a broken plugin must not take the others down
            log.warning("connector %s could not be loaded: %s", ep.name, exc)
    return found


def connector_class(kind: str) -> type:
    """The class registered for ``kind``.

    Raises:
        UnavailableError: no such connector is installed.
    """
    try:
        return registry()[kind]
    except KeyError:
        raise UnavailableError(f"no connector of type {kind!r} is installed") from None
