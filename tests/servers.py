"""Real CalDAV/CardDAV servers for tests: Radicale and Xandikos on localhost.

Fixtures (session-scoped; import them into a ``conftest.py`` with
``from tests.servers import radicale, xandikos  # noqa: F401``):

- ``radicale``: Radicale 3 with htpasswd (plain) auth, storage in a temp dir.
  ``server.new_user()`` adds a fresh user (the htpasswd file is re-read on every
  login), so each test gets its own principal and collections.
- ``xandikos``: Xandikos with ``--defaults``, no auth, one principal ``/user/``;
  ``new_user()`` returns the same account, so tests isolate by collection names.

Both yield a ``Server`` with ``.url`` (base URL), ``.user`` / ``.password`` (a default
account; None for Xandikos), ``.log()`` (its output so far), ``.calendar_home(user)``,
``.addressbook_home(user)`` and ``.seeder(user)``. A server's log is printed when a test
fails while it runs (``pytest_runtest_makereport``: import it into the conftest too).

``Seeder`` writes test data over plain HTTP, independent of the connector:
``mkcalendar``, ``mkaddressbook``, ``put``, ``delete``, ``get``, plus ``event()`` /
``vcard()`` builders.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import niquests
import pytest

STARTUP_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running server process."""

    kind: str  # "radicale" or "xandikos"
    url: str
    proc: subprocess.Popen[bytes]
    logfile: Path
    root: Path
    user: str | None = None
    password: str | None = None
    htpasswd: Path | None = None
    _users: list[str] = field(default_factory=list)

    def log(self) -> str:
        """The server's output so far."""
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""

    def new_user(self) -> tuple[str | None, str | None]:
        """A fresh (user, password) with an empty principal (Xandikos: the shared one)."""
        if self.htpasswd is None:
            return self.user, self.password
        user = "u" + uuid.uuid4().hex[:10]
        with self.htpasswd.open("a") as f:
            f.write(f"{user}:pw\n")
        self._users.append(user)
        return user, "pw"

    def calendar_home(self, user: str | None) -> str:
        """Where the user's calendars live."""
        return f"/{user}/" if self.kind == "radicale" else "/user/calendars/"

    def addressbook_home(self, user: str | None) -> str:
        """Where the user's address books live."""
        return f"/{user}/" if self.kind == "radicale" else "/user/contacts/"

    def seeder(self, user: str | None = None, password: str | None = None) -> Seeder:
        """A plain-HTTP writer for ``user`` (default: the server's default account)."""
        if user is None:
            user, password = self.user, self.password
        return Seeder(self, user, password)

    def stop(self) -> None:
        """Kill the process."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Seeder:
    """Writes test data over plain HTTP (keep-alive session)."""

    def __init__(self, server: Server, user: str | None, password: str | None) -> None:
        self.server = server
        self.user = user
        self.session = niquests.Session()
        if user is not None:
            self.session.auth = (user, password or "")
        if server.kind == "radicale" and user is not None:
            # Radicale creates the principal collection on the first authenticated PROPFIND
            self.request("PROPFIND", f"/{user}/", "", {"Depth": "0"})

    def request(self, method: str, path: str, body: str = "", headers: dict[str, str] | None = None) -> niquests.Response:
        """Send one request to the server (no retries)."""
        return self.session.request(
            method, self.server.url.rstrip("/") + path, data=body.encode(), headers=headers or {},
            timeout=30,
        )

    def _check(self, resp: niquests.Response, what: str) -> None:
        if not 200 <= int(resp.status_code or 0) < 300:
            raise AssertionError(f"{what}: HTTP {resp.status_code}: {(resp.text or '')[:500]}")

    def mkcalendar(self, name: str, components: tuple[str, ...] = ("VEVENT",), slug: str | None = None) -> str:
        """Create a calendar named ``name``; returns its path."""
        path = self.server.calendar_home(self.user) + (slug or uuid.uuid4().hex[:12]) + "/"
        comps = "".join(f'<C:comp name="{c}"/>' for c in components)
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
            f"<D:displayname>{escape(name)}</D:displayname>"
            f"<C:supported-calendar-component-set>{comps}</C:supported-calendar-component-set>"
            "</D:prop></D:set></C:mkcalendar>"
        )
        self._check(self.request("MKCALENDAR", path, body, {"Content-Type": "application/xml"}), f"MKCALENDAR {path}")
        return path

    def mkaddressbook(self, name: str, slug: str | None = None) -> str:
        """Create an address book named ``name`` (extended MKCOL); returns its path."""
        path = self.server.addressbook_home(self.user) + (slug or uuid.uuid4().hex[:12]) + "/"
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:set><D:prop>'
            "<D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>"
            f"<D:displayname>{escape(name)}</D:displayname>"
            "</D:prop></D:set></D:mkcol>"
        )
        self._check(self.request("MKCOL", path, body, {"Content-Type": "application/xml"}), f"MKCOL {path}")
        return path

    def put(self, path: str, text: str, content_type: str | None = None) -> str:
        """PUT an object; returns its etag (may be empty)."""
        ctype = content_type or ("text/vcard" if path.endswith(".vcf") else "text/calendar")
        resp = self.request("PUT", path, text, {"Content-Type": f"{ctype}; charset=utf-8"})
        self._check(resp, f"PUT {path}")
        return str(resp.headers.get("ETag") or "")

    def get(self, path: str) -> str | None:
        """The object's text, or None when absent."""
        resp = self.request("GET", path)
        return None if resp.status_code == 404 else resp.text

    def delete(self, path: str) -> None:
        """DELETE an object or collection."""
        self._check(self.request("DELETE", path), f"DELETE {path}")

    @staticmethod
    def event(uid: str, summary: str = "Meeting", start: str = "20240105T100000Z",
              attendees: tuple[str, ...] = ()) -> str:
        """A small VCALENDAR with one VEVENT."""
        att = "".join(f"ATTENDEE;CN={a}:mailto:{a}\r\n" for a in attendees)
        return (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:{start}\r\n"
            f"DURATION:PT1H\r\nSUMMARY:{summary}\r\n{att}END:VEVENT\r\nEND:VCALENDAR\r\n"
        )

    @staticmethod
    def vcard(uid: str, name: str = "Ana Lima", email: str = "ana@example.org") -> str:
        """A small vCard 3.0."""
        return (
            f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\n"
            f"EMAIL:{email}\r\nEND:VCARD\r\n"
        )


def _wait(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.kind} exited:\n{server.log()}")
        try:
            niquests.request("OPTIONS", server.url, timeout=2)
            return
        except niquests.exceptions.RequestException:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{server.kind} did not answer within {STARTUP_TIMEOUT}s:\n{server.log()}")


def start_radicale(root: Path) -> Server:
    """Start Radicale under ``root``; the caller stops it."""
    port = free_port()
    htpasswd = root / "users"
    htpasswd.write_text("alice:secret\n")
    config = root / "config"
    config.write_text(
        f"[server]\nhosts = 127.0.0.1:{port}\nmax_connections = 20\ndelay_on_error = 0.01\n"
        f"[auth]\ntype = htpasswd\nhtpasswd_filename = {htpasswd}\n"
        "htpasswd_encryption = plain\ndelay = 0.01\n"
        f"[rights]\ntype = owner_only\n[storage]\nfilesystem_folder = {root / 'collections'}\n"
        "[logging]\nlevel = warning\nmask_passwords = True\n"
    )
    logfile = root / "radicale.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "radicale", "--config", str(config)],
        stdout=logfile.open("wb"), stderr=subprocess.STDOUT,
    )
    server = Server("radicale", f"http://127.0.0.1:{port}/", proc, logfile, root,
                    user="alice", password="secret", htpasswd=htpasswd)
    _wait(server)
    return server


def start_xandikos(root: Path) -> Server:
    """Start Xandikos under ``root``; the caller stops it."""
    port = free_port()
    logfile = root / "xandikos.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "xandikos.web", "--defaults", "-d", str(root / "data"),
         "--state-dir", str(root / "state"), "--no-detect-systemd",
         "-l", "127.0.0.1", "-p", str(port)],
        stdout=logfile.open("wb"), stderr=subprocess.STDOUT,
    )
    server = Server("xandikos", f"http://127.0.0.1:{port}/", proc, logfile, root)
    _wait(server)
    return server


_RUNNING: list[Server] = []


@contextlib.contextmanager
def _serve(kind: str) -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix=f"syncd-{kind}-") as tmp:
        server = (start_radicale if kind == "radicale" else start_xandikos)(Path(tmp))
        _RUNNING.append(server)
        try:
            yield server
        finally:
            _RUNNING.remove(server)
            server.stop()


@pytest.fixture(scope="session")
def radicale() -> Iterator[Server]:
    """A Radicale on 127.0.0.1 (htpasswd auth; ``new_user()`` for isolation)."""
    with _serve("radicale") as server:
        yield server


@pytest.fixture(scope="session")
def xandikos() -> Iterator[Server]:
    """A Xandikos on 127.0.0.1 (no auth, one principal ``/user/``)."""
    with _serve("xandikos") as server:
        yield server


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the logs of the servers a failed test used to its report."""
    report = yield
    if report.failed and call.when in ("setup", "call"):
        for server in list(_RUNNING):  # session-scoped: the ones alive now
            report.sections.append((f"{server.kind} log (tail)", server.log()[-10000:]))
    return report
