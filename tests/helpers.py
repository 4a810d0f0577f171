"""Test helpers: temporary vdir worlds driven through the real ``syncd`` command."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ME = "me@example.org"


def event(uid: str, start: str, summary: str = "Meeting", attendees: list[str] | None = None,
          *, minutes: int = 60, organizer: str | None = ME, extra: list[str] | None = None,
          all_day: bool = False, tzid: str | None = "Europe/Berlin") -> str:
    """One VCALENDAR with one VEVENT. ``start`` is local ``YYYYMMDDTHHMMSS`` (or a date).

    ``attendees`` are ``email`` or ``email;PARAM=..`` strings.
    """
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//syncd tests//EN", "BEGIN:VEVENT", f"UID:{uid}",
             "DTSTAMP:20260101T000000Z"]
    if all_day:
        day = dt.date.fromisoformat(start[:4] + "-" + start[4:6] + "-" + start[6:8])
        lines += [f"DTSTART;VALUE=DATE:{day:%Y%m%d}", f"DTEND;VALUE=DATE:{day + dt.timedelta(days=1):%Y%m%d}"]
    else:
        when = dt.datetime.strptime(start.rstrip("Z"), "%Y%m%dT%H%M%S")
        end = when + dt.timedelta(minutes=minutes)
        if start.endswith("Z"):
            lines += [f"DTSTART:{when:%Y%m%dT%H%M%S}Z", f"DTEND:{end:%Y%m%dT%H%M%S}Z"]
        elif tzid:
            lines += [f"DTSTART;TZID={tzid}:{when:%Y%m%dT%H%M%S}", f"DTEND;TZID={tzid}:{end:%Y%m%dT%H%M%S}"]
        else:
            lines += [f"DTSTART:{when:%Y%m%dT%H%M%S}", f"DTEND:{end:%Y%m%dT%H%M%S}"]
    lines.append(f"SUMMARY:{summary}")
    if attendees:
        if organizer:
            lines.append(f"ORGANIZER:mailto:{organizer}")
        for a in attendees:
            email, _, params = a.partition(";")
            lines.append(f"ATTENDEE{';' + params if params else ''}:mailto:{email}")
    lines += extra or []
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return "\r\n".join(lines) + "\r\n"


def vcard(name: str, *emails: str, groups: str | None = None, bday: str | None = None,
          anniversary: str | None = None, nickname: str | None = None, uid: str | None = None) -> str:
    """A vCard 3.0 (4.0 when an anniversary is given)."""
    lines = ["BEGIN:VCARD", f"VERSION:{'4.0' if anniversary else '3.0'}", f"FN:{name}"]
    if uid:
        lines.append(f"UID:{uid}")
    lines += [f"EMAIL:{e}" for e in emails]
    if groups:
        lines.append(f"CATEGORIES:{groups}")
    if bday:
        lines.append(f"BDAY:{bday}")
    if anniversary:
        lines.append(f"ANNIVERSARY:{anniversary}")
    if nickname:
        lines.append(f"NICKNAME:{nickname}")
    lines.append("END:VCARD")
    return "\r\n".join(lines) + "\r\n"


class World:
    """A config with one vdir account (``files``): two calendars, one address book, a tasks folder."""

    def __init__(self, root: Path, **settings: Any) -> None:
        self.root = root
        self.cal = root / "calendars" / "personal"
        self.cal2 = root / "calendars" / "work"
        self.book = root / "contacts" / "default"
        self.tasks = root / "tasks"
        for d in (self.cal, self.cal2, self.book):
            d.mkdir(parents=True, exist_ok=True)
        self.config = root / "config.toml"
        self.write_config(**settings)

    def write_config(self, groups: str = '{ Friends = "30d", Family = "14d" }', daily_limit: int = 3,
                     extra: str = "", days_before: int = 7, tasks_as: str = "todo") -> None:
        """(Re)write config.toml."""
        self.config.write_text(f"""
[syncd]
me = ["{ME}"]
timezone = "Europe/Berlin"
write_to = "files"
ledger = "{self.root / 'state' / 'ledger.sqlite3'}"

[accounts.files]
type = "vdir"
calendars = ["{self.root / 'calendars'}/*"]
addressbooks = ["{self.book}"]
tasks = "{self.tasks}"
tasks_as = "{tasks_as}"

[rules.keep_in_touch]
daily_limit = {daily_limit}
groups = {groups}

[rules.birthday]
days_before = {days_before}
{extra}
""")

    def add_event(self, name: str, text: str, second: bool = False) -> Path:
        """Write an .ics file into the first (or second) calendar."""
        path = (self.cal2 if second else self.cal) / f"{name}.ics"
        path.write_text(text, newline="")
        return path

    def add_contact(self, name: str, text: str) -> Path:
        """Write a .vcf file into the address book."""
        path = self.book / f"{name}.vcf"
        path.write_text(text, newline="")
        return path

    def env(self, now: str | None) -> dict[str, str]:
        """The environment of a syncd run."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCD_", "NOTIFY_", "XDG_"))}
        env.update(PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring", HOME=str(self.root),
                   XDG_RUNTIME_DIR=str(self.root / "run"), TZ="UTC")
        (self.root / "run").mkdir(exist_ok=True, mode=0o700)
        if now:
            env["SYNCD_NOW"] = now
        return env

    def run(self, *args: str, now: str | None = "2026-06-15T10:00:00Z", check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``syncd --config CONFIG ARGS`` as a subprocess."""
        proc = subprocess.run([sys.executable, "-m", "syncd", "--config", str(self.config), *args],
                              capture_output=True, text=True, env=self.env(now), timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"syncd {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def people(self, now: str = "2026-06-15T10:00:00Z") -> dict[str, dict[str, Any]]:
        """``syncd people --json`` by name."""
        return {p["name"]: p for p in json.loads(self.run("people", "--json", now=now).stdout)}

    def tasks_json(self, now: str = "2026-06-15T10:00:00Z", all: bool = True) -> list[dict[str, Any]]:
        """``syncd tasks --json [--all]``."""
        args = ["tasks", "--json"] + (["--all"] if all else [])
        return json.loads(self.run(*args, now=now).stdout)

    def task_files(self) -> dict[str, str]:
        """The tasks folder: file name -> text."""
        if not self.tasks.exists():
            return {}
        return {p.name: p.read_text() for p in sorted(self.tasks.glob("*.ics"))}


def pinned_keyring(path: str) -> Any:
    """A PlaintextKeyring at a fixed file, whatever the environment says later."""
    from keyrings.alt.file import PlaintextKeyring

    class Pinned(PlaintextKeyring):  # type: ignore[misc]
        @property
        def file_path(self) -> str:  # type: ignore[override]
            return path

    return Pinned()


class KeyringCli:
    """``syncd`` runs whose secrets live in a real file keyring under ``data``.

    Subclasses set ``root``, ``data``, ``config``, ``ledger`` and ``outputs`` (every
    stdout and stderr is kept, so tests can check that no secret was ever printed).
    """

    root: Path
    data: Path
    config: Path
    ledger: Path
    outputs: list[str]
    default_now = "2026-06-15T10:00:00Z"

    def keyring(self) -> Any:
        """The keyring file the subprocesses use (``$XDG_DATA_HOME/python_keyring/``)."""
        return pinned_keyring(str(self.data / "python_keyring" / "keyring_pass.cfg"))

    def env(self, now: str) -> dict[str, str]:
        """The environment of a run."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCD_", "NOTIFY_", "XDG_"))}
        env.update(PYTHON_KEYRING_BACKEND="keyrings.alt.file.PlaintextKeyring", HOME=str(self.root),
                   XDG_DATA_HOME=str(self.data), XDG_RUNTIME_DIR=str(self.root / "run"), TZ="UTC",
                   SYNCD_NOW=now)
        (self.root / "run").mkdir(exist_ok=True, mode=0o700)
        return env

    def run(self, *args: str, now: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``syncd --config CONFIG ARGS`` as a subprocess."""
        proc = subprocess.run([sys.executable, "-m", "syncd", "--config", str(self.config), *args],
                              capture_output=True, text=True, env=self.env(now or self.default_now), timeout=120)
        self.outputs += [proc.stdout, proc.stderr]
        if check and proc.returncode != 0:
            raise AssertionError(f"syncd {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def people(self, now: str | None = None) -> dict[str, dict[str, Any]]:
        """``syncd people --json`` by name."""
        return {p["name"]: p for p in json.loads(self.run("people", "--json", now=now).stdout)}

    def tasks_json(self, now: str | None = None, all: bool = True) -> list[dict[str, Any]]:
        """``syncd tasks --json [--all]``."""
        return list(json.loads(self.run("tasks", "--json", *(["--all"] if all else []), now=now).stdout))

    def status(self) -> dict[str, Any]:
        """``syncd status --json``."""
        return dict(json.loads(self.run("status", "--json").stdout))

    def ledger_bytes(self) -> bytes:
        """The ledger and its WAL files."""
        return b"".join(p.read_bytes() for p in sorted(self.ledger.parent.glob(self.ledger.name + "*")))


def rows_of(people: dict[str, list[Any]]) -> list[Any]:
    """``Ledger.replace_people``'s input: each person's interactions, with an empty entry and story."""
    from syncd.ledger import PersonRows

    return [PersonRows(k, "{}", "{}", v) for k, v in people.items()]
