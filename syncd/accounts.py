"""Connector lifecycle: one connector per account, built once per pass, closed after.

Public API: ``Accounts`` (``get``, ``save_state``, ``close``). A dry run's contexts
store no secret (a refreshed token stays in memory).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from syncd import plugins
from syncd.config import Config
from syncd.context import AccountContext
from syncd.ledger import Ledger
from syncd_connectors.base import Connector

log = logging.getLogger(__name__)


def _nowhere(account: str, secret: str) -> None:
    """A dry run keeps a refreshed token to itself."""

class Accounts:
    """The connectors of one config over one ledger."""

    def __init__(self, config: Config, ledger: Ledger, dry_run: bool = False,
                 registry: Mapping[str, type] | None = None,
                 secrets: tuple[Callable[[str], str], Callable[[str, str], None]] | None = None,
                 cache: Path | None = None) -> None:
        self.config = config
        self.cache = None if dry_run else cache  # a dry run writes nothing anywhere
        self.ledger = ledger
        self.dry_run = dry_run
        self.registry = registry
        self.secrets = secrets
        self._connectors: dict[str, tuple[Connector, AccountContext]] = {}

    def get(self, name: str) -> tuple[Connector, AccountContext]:
        """The connector of account ``name`` and its context (built once)."""
        if name not in self._connectors:
            acc = self.config.account(name)
            cls = self.registry[acc.type] if self.registry else plugins.connector_class(acc.type)
            with self.ledger.transaction():
                self.ledger.ensure_account(name, acc.type)
            ctx = AccountContext(account=name, timezone=self.config.timezone,
                                 state_dict=self.ledger.connector_state(name), cache=self._cache(name))
            if self.secrets is not None:
                ctx.get_secret, ctx.put_secret = self.secrets
            if self.dry_run:
                ctx.put_secret = _nowhere
            self._connectors[name] = (cls(name, acc.options, ctx), ctx)
        return self._connectors[name]

    def _cache(self, name: str) -> Path | None:
        """The account's cache folder: ``accounts/<name>/<ledger>/`` of the cache dir.

        What is kept there describes this ledger (a vdir folder's listing is used only
        while this ledger's note names it), so two configs with an account of the same
        name (each with its own ledger) keep theirs apart instead of replacing, or
        removing, each other's."""
        if self.cache is None:
            return None
        ledger = hashlib.blake2b(os.path.abspath(self.ledger.path).encode("utf-8", "surrogateescape"),
                                 digest_size=8).hexdigest()
        return self.cache / "accounts" / name / ledger

    def save_state(self, name: str, ctx: AccountContext) -> None:
        """Store the connector's state if it changed (inside the caller's transaction)."""
        if ctx.dirty:
            self.ledger.set_connector_state(name, ctx.state_dict)
            ctx.dirty = False

    def close(self) -> None:
        """Close every connector."""
        for conn, _ in self._connectors.values():
            try:
                conn.close()
            except Exception:  # closing must not hide the pass's result
                log.debug("closing a connector failed", exc_info=True)
        self._connectors.clear()
