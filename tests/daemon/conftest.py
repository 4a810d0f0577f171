"""Fixtures for the daemon tests: a notify socket, isolated XDG dirs, vdir accounts."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


class NotifySocket:
    """A test-owned sd_notify socket (abstract, so no path-length limits)."""

    def __init__(self) -> None:
        self.address = "@syncd-test-" + uuid.uuid4().hex
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(b"\0" + self.address[1:].encode())
        self.sock.settimeout(0.2)
        self.messages: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self._lock:
                self.messages.append(fields)

    def seen(self, key: str, value: str | None = None) -> list[dict[str, str]]:
        with self._lock:
            return [m for m in self.messages if key in m and (value is None or m[key] == value)]

    def names(self) -> list[str]:
        with self._lock:
            return [k for m in self.messages for k in m]

    def wait(self, key: str, value: str | None = None, timeout: float = 20, count: int = 1,
             where: Callable[[dict[str, str]], bool] | None = None) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for m in self.seen(key, value) if where is None or where(m)]
            if len(found) >= count:
                return found[count - 1]
            time.sleep(0.02)
        raise AssertionError(f"no {key}={value or '*'} (x{count}) within {timeout}s; got {self.messages}")

    def close(self) -> None:
        self._stop = True
        self.sock.close()


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifySocket]:
    ns = NotifySocket()
    monkeypatch.setenv("NOTIFY_SOCKET", ns.address)
    yield ns
    ns.close()


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """HOME and XDG dirs under tmp_path; the systemd directory variables unset."""
    env = {
        "HOME": str(tmp_path / "home"),
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }
    for value in env.values():
        Path(value).mkdir(mode=0o700, parents=True, exist_ok=True)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for var in ("STATE_DIRECTORY", "RUNTIME_DIRECTORY", "CONFIGURATION_DIRECTORY",
                "CREDENTIALS_DIRECTORY", "SYNCD_CONFIG", "SYNCD_NOW", "JOURNAL_STREAM",
                "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(var, raising=False)
    return env


EVENT = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//syncd tests//EN
BEGIN:VEVENT
UID:{uid}
DTSTAMP:20260101T000000Z
DTSTART:{start}
DTEND:{end}
SUMMARY:Coffee with {name}
ORGANIZER;CN=Me:mailto:me@example.org
ATTENDEE;CN=Me;PARTSTAT=ACCEPTED:mailto:me@example.org
ATTENDEE;CN={name};PARTSTAT=ACCEPTED:mailto:{email}
END:VEVENT
END:VCALENDAR
"""

CARD = """BEGIN:VCARD
VERSION:3.0
UID:{uid}
FN:{name}
N:{last};{first};;;
EMAIL:{email}
CATEGORIES:Friends
END:VCARD
"""


def write_vdir(root: Path, who: list[tuple[str, str]]) -> None:
    """A calendar folder and an address book folder under ``root`` with one event and
    one card per (name, email)."""
    cal = root / "calendars" / "personal"
    book = root / "contacts" / "default"
    cal.mkdir(parents=True, exist_ok=True)
    book.mkdir(parents=True, exist_ok=True)
    for i, (name, email) in enumerate(who):
        first, _, last = name.partition(" ")
        day = 10 + i
        (cal / f"ev-{i}.ics").write_text(EVENT.format(
            uid=f"ev-{i}-{root.name}@test", start=f"202601{day}T100000Z",
            end=f"202601{day}T110000Z", name=name, email=email))
        (book / f"card-{i}.vcf").write_text(CARD.format(
            uid=f"card-{i}-{root.name}@test", name=name, first=first, last=last, email=email))


def vdir_account(name: str, root: Path, tasks: bool = False) -> str:
    lines = [
        f"[accounts.{name}]",
        'type = "vdir"',
        f'calendars = ["{root}/calendars/personal"]',
        f'addressbooks = ["{root}/contacts/default"]',
    ]
    if tasks:
        lines.append(f'tasks = "{root}/calendars/followups"')
    return "\n".join(lines) + "\n"


def write_config(path: Path, ledger: Path, accounts: list[tuple[str, Path]], interval: str = "1m",
                 extra: str = "") -> Path:
    """A config with vdir accounts; the first one receives the follow-ups."""
    head = (
        "[syncd]\n"
        'me = ["me@example.org"]\n'
        'timezone = "UTC"\n'
        f'interval = "{interval}"\n'
        f'write_to = "{accounts[0][0]}"\n'
        f'ledger = "{ledger}"\n\n'
    )
    body = "\n".join(vdir_account(n, r, tasks=(i == 0)) for i, (n, r) in enumerate(accounts))
    path.write_text(head + body + extra)
    return path


@pytest.fixture
def clean_env(xdg: dict[str, str]) -> dict[str, str]:
    """The environment a daemon subprocess gets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_"))}
    env.update(xdg)
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    env["PYTHONUNBUFFERED"] = "1"
    return env
