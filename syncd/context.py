"""The ``syncd_connectors.base.Context`` the core hands each connector."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncd import secrets


@dataclass
class AccountContext:
    """Secrets from ``syncd.secrets``; connector state in a dict the engine persists.

    ``state_dict`` is loaded from the ledger before the pass and saved with it, so a
    connector's discovery cache or id map commits with the data it describes. ``cache``
    is the account's folder for what the connector can always rebuild.
    """

    account: str
    timezone: dt.tzinfo = dt.timezone.utc
    state_dict: dict[str, Any] = field(default_factory=dict)
    get_secret: Callable[[str], str] = secrets.get
    put_secret: Callable[[str, str], None] = secrets.put
    dirty: bool = False
    cache: Path | None = None

    def secret(self) -> str:
        """The account's secret."""
        return self.get_secret(self.account)

    def store_secret(self, value: str) -> None:
        """Write back a (refreshed) secret."""
        self.put_secret(self.account, value)

    def state(self, key: str) -> Any:
        """A stored JSON value, or None."""
        return self.state_dict.get(key)

    def set_state(self, key: str, value: Any) -> None:
        """Store a JSON value (persisted by the engine)."""
        if self.state_dict.get(key) != value:
            self.state_dict[key] = value
            self.dirty = True
