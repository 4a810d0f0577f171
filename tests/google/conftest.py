"""Fixtures for the Google connector: the emulator, a dict-backed context, a network guard."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from syncd.context import AccountContext
from syncd_connectors.google import GoogleConnector
from tests.google.emulator import GoogleEmulator

_LOCAL = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture(autouse=True)
def only_loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """Refuse to resolve any host but loopback; yields the hosts that were resolved."""
    resolved: set[str] = set()
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        resolved.add(name)
        if name not in _LOCAL:
            raise OSError(f"test tried to reach {name}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    yield resolved


@pytest.fixture
def google_emulator() -> Iterator[GoogleEmulator]:
    """A started emulator with a primary calendar (``alice@example.org``)."""
    with GoogleEmulator() as emu:
        emu.add_calendar(emu.email, "Alice", primary=True)
        yield emu


class SecretStore:
    """A dict standing in for the keyring; counts writes."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.writes = 0

    def get(self, account: str) -> str:
        from syncd.errors import SecretUnavailable

        if account not in self.data:
            raise SecretUnavailable(f"no secret for account {account!r}")
        return self.data[account]

    def put(self, account: str, value: str) -> None:
        self.data[account] = value
        self.writes += 1


@pytest.fixture
def secrets_store(google_emulator: GoogleEmulator) -> SecretStore:
    store = SecretStore()
    store.data["work"] = google_emulator.authorized_user_json()
    return store


@pytest.fixture
def ctx(secrets_store: SecretStore) -> AccountContext:
    return AccountContext(account="work", state_dict={}, get_secret=secrets_store.get,
                          put_secret=secrets_store.put)


@pytest.fixture
def make_connector(google_emulator: GoogleEmulator, ctx: AccountContext) -> Any:
    """Build a connector on the emulator (sleeps recorded, not slept)."""
    made: list[GoogleConnector] = []

    def make(**options: Any) -> GoogleConnector:
        conn = GoogleConnector("work", {"api_root": google_emulator.url, **options}, ctx)
        sleeps: list[float] = []
        conn.sleeps = sleeps  # type: ignore[attr-defined]
        conn.client.sleep = sleeps.append
        made.append(conn)
        return conn

    yield make
    for conn in made:
        conn.close()
