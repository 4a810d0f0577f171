"""The connector contract against the Google emulator (Calendar, People, Tasks)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from syncd.context import AccountContext
from syncd_connectors.base import EVENTS, Collection, Connector
from syncd_connectors.google import GoogleConnector
from tests.connectors.contract import Backend, ConnectorContract
from tests.google.emulator import GoogleEmulator


class GoogleBackend(Backend):
    """The primary calendar, the contacts and the ``Follow-ups`` task list of one emulator."""

    cancel_keeps = False  # Google Tasks has no cancelled state: a resolved follow-up is deleted

    def __init__(self, emu: GoogleEmulator) -> None:
        self.emu = emu
        self.ids: dict[str, str] = {}
        self.state: dict[str, Any] = {}
        self.secret = emu.authorized_user_json()
        self.made: list[GoogleConnector] = []

    def connector(self) -> Connector:
        def put(account: str, value: str) -> None:
            self.secret = value

        ctx = AccountContext(account="work", state_dict=self.state, get_secret=lambda a: self.secret,
                             put_secret=put)
        conn = GoogleConnector("work", {"api_root": self.emu.url}, ctx)
        conn.client.sleep = lambda seconds: None
        self.made.append(conn)
        return conn

    def collection(self, conn: Connector, kind: str) -> Collection:
        [coll] = [c for c in conn.collections() if c.kind == kind]
        return coll

    def add(self, kind: str, key: str) -> None:
        if kind == EVENTS:
            ev = self.emu.add_event(self.emu.email, {
                "summary": f"Meeting {key}", "start": {"dateTime": "2024-01-05T10:00:00Z"},
                "end": {"dateTime": "2024-01-05T11:00:00Z"}})
            self.ids[key] = ev["id"]
        else:
            person = self.emu.add_person({"names": [{"displayName": f"Person {key}"}],
                                          "emailAddresses": [{"value": f"{key}@example.org"}]})
            self.ids[key] = person["resourceName"]

    def modify(self, kind: str, key: str) -> None:
        if kind == EVENTS:
            self.emu.update_event(self.emu.email, self.ids[key], summary=f"Meeting {key} changed")
        else:
            self.emu.update_person(self.ids[key], names=[{"displayName": f"Person {key} changed"}])

    def delete(self, kind: str, key: str) -> None:
        if kind == EVENTS:
            self.emu.cancel_event(self.emu.email, self.ids[key])
        else:
            self.emu.delete_person(self.ids[key])

    def task_count(self) -> int:
        if self.emu.tasklist_by_title("Follow-ups") is None:
            return 0
        return sum(1 for t in self.emu.all_tasks() if not t.get("deleted"))

    def sink_exists(self) -> bool:
        return self.emu.tasklist_by_title("Follow-ups") is not None


class TestGoogle(ConnectorContract):
    @pytest.fixture
    def backend(self) -> Iterator[Backend]:
        with GoogleEmulator() as emu:
            emu.add_calendar(emu.email, "Alice", primary=True)
            backend = GoogleBackend(emu)
            yield backend
            for conn in backend.made:
                conn.close()
