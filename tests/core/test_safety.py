"""Hostile input and hostile conditions, each injected for real, through the ``syncd`` command.

Recurrence bombs, one UID in many files, a ledger in a shared 1777 folder, a full disk
(a small tmpfs, else ``RLIMIT_FSIZE``), bad configs, SIGTERM in the middle of a
backfill. Timings of the same cases are in ``bench/bombs_bench.py``, not here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import resource
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import icalendar
import pytest
import recurring_ical_events
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd import events
from syncd.errors import ParseError
from tests.helpers import ME, World, event, vcard

NOW = "2026-06-15T10:00:00Z"
_EVERY = {"BYHOUR": range(24), "BYMINUTE": range(60), "BYSECOND": range(60)}
BOMBS = {
    "secondly": "FREQ=SECONDLY",
    "daily-by": "FREQ=DAILY;" + ";".join(f"{k}={','.join(map(str, v))}" for k, v in _EVERY.items()),
}


def _bomb(name: str, rule: str) -> str:
    return event(f"{name}@bomb", "19700101T000000Z", f"bomb {name}", ["bomb@example.com"],
                 extra=[f"RRULE:{rule}"])


def _meetings(world: World, n: int, second: bool = False) -> list[str]:
    """``n`` meetings with Ana and Bo (in the address book), one file each; their texts."""
    world.add_contact("ana", vcard("Ana Lima", "ana@example.com", groups="Friends"))
    world.add_contact("bo", vcard("Bo Chen", "bo@example.com", groups="Family"))
    texts = []
    for i in range(n):
        who = "ana@example.com" if i % 2 else "bo@example.com"
        text = event(f"m{i}@t", f"2026{1 + i % 5:02d}{1 + i % 28:02d}T{9 + i % 8:02d}0000", f"Meeting {i}", [who])
        world.add_event(f"m{i:04d}", text, second=second)
        texts.append(text)
    return texts


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# -- 3: recurrence cannot hang a pass ------------------------------------------------
def test_recurrence_bombs_are_cut_with_a_warning_and_the_rest_is_counted(tmp_path: Path) -> None:
    plain, bombed = World(tmp_path / "plain"), World(tmp_path / "bombed")
    for w in (plain, bombed):
        _meetings(w, 12)
    for name, rule in BOMBS.items():
        bombed.add_event(f"bomb-{name}", _bomb(name, rule))
    plain.run("--backfill", now=NOW)
    out = bombed.run("--backfill", now=NOW, timeout=100)
    for name in BOMBS:
        line = next(ln for ln in out.stderr.splitlines() if f"bomb-{name}.ics" in ln)
        assert "WARNING" in line and "account files" in line and "cut" in line, line
    assert "files: " in out.stdout and "ok" in out.stdout
    people = bombed.people()
    assert {k: people[k] for k in ("Ana Lima", "Bo Chen")} == plain.people()
    assert people["Ana Lima"]["interactions"] == 6


# -- 4: one UID in many files is one meeting -------------------------------------------
def test_an_export_file_repeating_every_uid_changes_nobody(tmp_path: Path) -> None:
    plain, doubled = World(tmp_path / "plain"), World(tmp_path / "doubled")
    _meetings(plain, 40)
    texts = _meetings(doubled, 40)
    body = [line for t in texts for line in t.split("\r\n")[3:-3]]  # the VEVENTs of every file
    export = "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//export//EN", *body, "END:VCALENDAR"])
    doubled.add_event("export", export + "\r\n", second=True)
    plain.run("--backfill", now=NOW)
    doubled.run("--backfill", now=NOW)
    assert doubled.people() == plain.people()
    assert doubled.people()["Ana Lima"]["interactions"] == 20
    # and removing the export file again changes nothing either
    (doubled.cal2 / "export.ics").unlink()
    doubled.run("sync", "--allow-empty", "files", now=NOW)  # the export's calendar is empty now
    assert doubled.people() == plain.people()


# -- 5: syncd never changes the mode of a folder it did not create ---------------------
def test_a_ledger_in_a_shared_sticky_folder_leaves_the_folder_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    world = World(tmp_path / "w", extra="")
    _meetings(world, 2)
    text = world.config.read_text()
    ledger = f"{world.root / 'state' / 'ledger.sqlite3'}"
    world.config.write_text(text.replace(ledger, str(shared / "ledger.sqlite3")))
    world.run("--backfill", now=NOW)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert (shared / "ledger.sqlite3").exists()
    assert stat.S_IMODE((shared / "ledger.sqlite3").stat().st_mode) == 0o600
    # folders syncd creates itself (parents included) are 0700
    world.config.write_text(text.replace(ledger, str(shared / "new" / "deeper" / "ledger.sqlite3")))
    world.run("--backfill", now=NOW)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert stat.S_IMODE((shared / "new").stat().st_mode) == 0o700
    assert stat.S_IMODE((shared / "new" / "deeper").stat().st_mode) == 0o700


# -- 6: a full disk is a message naming the ledger, and the ledger is intact ---------
@contextlib.contextmanager
def _small_disk(path: Path, size: str) -> Iterator[bool]:
    """A tmpfs of ``size`` at ``path`` if this machine lets us mount one (True), else nothing (False)."""
    path.mkdir()
    if not size or os.geteuid() != 0 or shutil.which("mount") is None:
        yield False
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                             capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], check=True)


def _integrity(ledger: Path) -> str:
    conn = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.parametrize("how", ["tmpfs", "fsize"])
def test_a_full_disk_names_the_ledger_and_keeps_it_intact(tmp_path: Path, how: str) -> None:
    world = World(tmp_path / "w")
    disk = tmp_path / "disk"
    with _small_disk(disk, "1m" if how == "tmpfs" else "") as mounted:
        if how == "tmpfs" and not mounted:
            pytest.skip("cannot mount a tmpfs here (the fsize case covers the same path)")
        text = world.config.read_text()
        world.config.write_text(text.replace(str(world.root / "state" / "ledger.sqlite3"), str(disk / "ledger.sqlite3")))
        _meetings(world, 4)
        world.run("--backfill", now=NOW)
        before = world.people()
        # a few hundred more events do not fit
        for i in range(600):
            world.add_event(f"big{i}", event(f"big{i}@t", "20260301T100000", "Long notes " + "x" * 1200,
                                             [f"p{i}@example.com"]), second=True)
        size = (disk / "ledger.sqlite3").stat().st_size

        def limit() -> None:  # no tmpfs: the same refused write (EFBIG), through a file size limit
            if not mounted:
                resource.setrlimit(resource.RLIMIT_FSIZE, (size + 40_000, size + 40_000))

        proc = subprocess.run([sys.executable, "-m", "syncd", "--config", str(world.config), "sync"],
                              capture_output=True, text=True, env=world.env(NOW), timeout=120, preexec_fn=limit)
        assert proc.returncode == 75, proc.stderr
        assert str(disk / "ledger.sqlite3") in proc.stderr
        assert "full" in proc.stderr and "intact" in proc.stderr and "run syncd again" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert _integrity(disk / "ledger.sqlite3") == "ok"
        after = world.people()
        assert {k: after[k] for k in before} == before  # what was committed is still there


_ASIDE = """
import datetime as dt, resource, sys
from syncd import errors
from syncd.aside import Aside
from syncd.model import Meeting, Person
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
people = [Person(f"p{i}", f"P {i}", [f"p{i}@example.com"]) for i in range(50)]
aside = Aside()
try:
    for i in range(200_000):
        start = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(hours=i)
        aside.add(Meeting(start, "Notes " + "x" * 200, f"uid-{i}@example.com", ""), people[i % 50:i % 50 + 3])
    aside.meetings(people[0])
except errors.TempFailError as exc:
    print(exc)
    sys.exit(exc.exit_code)
"""


def test_a_temporary_folder_without_room_is_named_and_retried_later(tmp_path: Path) -> None:
    # A derivation from scratch sets its meetings aside in SQLite's temporary folder
    # (here ``SQLITE_TMPDIR``); a file there that may not grow past 1 MB is that folder full.
    env = {**os.environ, "SQLITE_TMPDIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", _ASIDE], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 75, proc.stderr
    assert "SQLITE_TMPDIR" in proc.stdout and "ledger is intact" in proc.stdout and "run syncd again" in proc.stdout
    assert "Traceback" not in proc.stderr


# -- 6: bad configs exit 78 naming file and key, creating nothing ------------------------
def _bad_configs(root: Path) -> dict[str, tuple[str, str]]:
    """name -> (config text, the key the error must name)."""
    acc = f'[accounts.files]\ntype = "vdir"\ncalendars = ["{root}/cal"]\n'
    led = f'ledger = "{root}/state/ledger.sqlite3"\n'
    return {
        "interval overflows": (f'[syncd]\ninterval = "99999999d"\n{led}{acc}', "syncd.interval"),
        "horizon overflows": (f'[syncd]\nhorizon = "99999999d"\n{led}{acc}', "syncd.horizon"),
        "horizon beyond int64": (f'[syncd]\nhorizon = "99999999999999999999d"\n{led}{acc}', "syncd.horizon"),
        "interval zero": (f'[syncd]\ninterval = "0m"\n{led}{acc}', "syncd.interval"),
        "ledger is a directory": (f'[syncd]\nledger = "{root}/a-dir"\n{acc}', "syncd.ledger"),
        "ledger under a file": (f'[syncd]\nledger = "{root}/a-file/sub/ledger.sqlite3"\n{acc}', "syncd.ledger"),
        "ledger in /proc": ('[syncd]\nledger = "/proc/syncd-test/ledger.sqlite3"\n' + acc, "syncd.ledger"),
        "TOML nested thousands deep": (f"[syncd]\n{led}me = {'[' * 5000}{']' * 5000}\n{acc}", "(file)"),
        "empty file": ("", "accounts"),
        "account a/../b": (f'[syncd]\n{led}[accounts."a/../b"]\ntype = "vdir"\n', "accounts.a/../b"),
        "days_before 10^18": (f'[syncd]\n{led}{acc}[rules.birthday]\ndays_before = {10**18}\n',
                              "rules.birthday.days_before"),
        "days_before 1000": (f'[syncd]\n{led}{acc}[rules.birthday]\ndays_before = 1000\n',
                             "rules.birthday.days_before"),
        "daily_limit 10^12": (f'[syncd]\n{led}{acc}[rules.keep_in_touch]\ndaily_limit = {10**12}\n',
                              "rules.keep_in_touch.daily_limit"),
        "cadence overflows": (f'[syncd]\n{led}{acc}[rules.keep_in_touch]\ngroups = {{ A = "99999999w" }}\n',
                              "rules.keep_in_touch.groups"),
        "NUL in a path": (f'[syncd]\nledger = "{root}/x\\u0000y"\n{acc}', "syncd.ledger"),
    }


@pytest.mark.parametrize("case", list(_bad_configs(Path("/nonexistent"))))
def test_a_bad_config_exits_78_naming_file_and_key_and_creates_nothing(tmp_path: Path, case: str) -> None:
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-dir").mkdir()
    text, key = _bad_configs(tmp_path)[case]
    config = tmp_path / "config.toml"
    config.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCD_", "XDG_", "NOTIFY_"))}
    env.update(HOME=str(tmp_path / "home"), XDG_RUNTIME_DIR=str(tmp_path / "run"), SYNCD_NOW=NOW,
               PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring")
    before = _tree(tmp_path)
    for args in (["--backfill"], ["status"]):
        proc = subprocess.run([sys.executable, "-m", "syncd", "--config", str(config), *args],
                              capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode == 78, (args, proc.stderr)
        assert f"{config}: {key}:" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and len(proc.stderr) < 2000
    assert _tree(tmp_path) == before
    assert not Path("/proc/syncd-test").exists()


# -- 8: SIGTERM stops a one-shot command cleanly, and a rerun ends where a clean run does ----
def _objects(ledger: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=0.2)
        try:
            return int(conn.execute("SELECT count(*) FROM objects").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def _stop_mid_run(world: World, args: list[str], total: int) -> subprocess.CompletedProcess[str]:
    """Start ``syncd ARGS``, SIGTERM it once it has committed something, wait for it."""
    ledger = world.root / "state" / "ledger.sqlite3"
    start = _objects(ledger) if ledger.exists() else 0
    proc = subprocess.Popen([sys.executable, "-m", "syncd", "--config", str(world.config), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=world.env(NOW))
    deadline = time.monotonic() + 60
    while _objects(ledger) <= start and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "finished before it could be stopped: make the world bigger"
    proc.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    out, err = proc.communicate(timeout=30)
    took = time.monotonic() - stopped
    assert took < 10, f"{took:.1f} s after SIGTERM"
    assert 0 < _objects(ledger) < total, "the stop did not land in the middle of the run"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize("command", [["--backfill"], ["sync"]], ids=["backfill", "sync"])
def test_sigterm_stops_a_one_shot_command_and_a_rerun_ends_like_a_clean_run(tmp_path: Path,
                                                                         command: list[str]) -> None:
    n = 1500
    clean, stopped = World(tmp_path / "clean"), World(tmp_path / "stopped")
    for w in (clean, stopped):
        _meetings(w, n)
        w.add_contact("me", vcard("Me", ME))
    clean.run("--backfill", now=NOW)
    if command == ["sync"]:
        stopped.run("--backfill", now=NOW)  # a first pass, then many new files for `sync`
        for w in (clean, stopped):
            _meetings(w, n, second=True)
        clean.run("sync", now=NOW)
    proc = _stop_mid_run(stopped, command, total=2 * n + 3 if command == ["sync"] else n + 3)
    assert proc.returncode == 0, proc.stderr
    assert "stopped by SIGTERM" in proc.stderr and "Traceback" not in proc.stderr
    assert stopped.run("people", "--json", now=NOW).returncode == 0  # readable in between
    stopped.run(*command, now=NOW)
    assert stopped.people() == clean.people()
    strip = lambda tasks: sorted((t["uid"], t["rule"], t["person"], t["due"], t["state"]) for t in tasks)  # noqa: E731
    assert strip(stopped.tasks_json()) == strip(clean.tasks_json())


# -- 3, in-process: expanding from the window keeps every instance where it was ----------
_RULES = st.fixed_dictionaries({
    "freq": st.sampled_from(["HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"]),
    "interval": st.integers(1, 5),
    "by": st.sampled_from(["", ";BYDAY=MO,TH", ";BYDAY=-1FR", ";BYMONTHDAY=1,15,31", ";BYHOUR=9,17",
                           ";BYMONTH=3,10", ";BYSETPOS=1;BYDAY=MO,TU,WE,TH,FR", ";UNTIL=20230101T000000Z"]),
    "start": st.datetimes(dt.datetime(2010, 1, 1), dt.datetime(2022, 12, 31)).map(lambda d: d.replace(microsecond=0)),
    "kind": st.sampled_from(["berlin", "utc", "floating", "date"]),
    "window": st.datetimes(dt.datetime(2020, 1, 1), dt.datetime(2023, 6, 1)),
})


@settings(max_examples=150, deadline=None)
@given(_RULES)
def test_a_series_moved_to_the_window_has_the_same_instances(rule: dict[str, Any]) -> None:
    start: dt.datetime = rule["start"]
    if rule["kind"] == "date" and (rule["freq"] == "HOURLY" or "BYHOUR" in rule["by"]):  # hours of a day
        return
    dtstart = {"berlin": f"DTSTART;TZID=Europe/Berlin:{start:%Y%m%dT%H%M%S}", "utc": f"DTSTART:{start:%Y%m%dT%H%M%S}Z",
               "floating": f"DTSTART:{start:%Y%m%dT%H%M%S}", "date": f"DTSTART;VALUE=DATE:{start:%Y%m%d}"}[rule["kind"]]
    text = "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:x", "BEGIN:VEVENT", "UID:s", "DTSTAMP:20200101T000000Z",
                        dtstart, "SUMMARY:s", f"RRULE:FREQ={rule['freq']};INTERVAL={rule['interval']}{rule['by']}",
                        "END:VEVENT", "END:VCALENDAR"]) + "\r\n"
    lo = rule["window"].replace(tzinfo=dt.timezone.utc)
    hi = lo + (dt.timedelta(days=20) if rule["freq"] == "HOURLY" else dt.timedelta(days=700))
    zone = zoneinfo.ZoneInfo("Europe/Berlin")
    parsed = events.split(text)
    cal = icalendar.Calendar.from_ical(text)
    try:
        occs, _ = events.expand("s", parsed.by_uid["s"], parsed.timezones, lo, hi, zone)
    except ParseError:  # a rule dateutil refuses (BYHOUR=9,17 every 2 hours from midnight)
        with pytest.raises(ValueError):
            recurring_ical_events.of(cal).between(lo, hi)
        return
    # the library alone, walking from DTSTART: the truth
    truth = sorted(events._occurrence(c, "s", zone, True, 0).start
                   for c in recurring_ical_events.of(cal).between(lo - dt.timedelta(days=2), hi))
    truth = [t for t in truth if lo <= t < hi][-events.MAX_PER_SERIES:]
    assert [o.start for o in occs] == truth


def test_stop_guard_interrupts_a_step_that_never_ends_after_the_grace() -> None:
    from syncd import daemon

    before = signal.getsignal(signal.SIGTERM)
    started = time.monotonic()
    with pytest.raises(daemon.Interrupted), daemon.StopGuard(grace=0.3) as guard:
        os.kill(os.getpid(), signal.SIGTERM)
        assert guard.stop  # asked to stop: the step may still finish ...
        while time.monotonic() - started < 5:  # ... but this one never does
            time.sleep(0.01)
    assert 0.25 < time.monotonic() - started < 2
    # a second SIGTERM does not wait for the grace period
    started = time.monotonic()
    with pytest.raises(daemon.Interrupted), daemon.StopGuard(grace=30):
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        while time.monotonic() - started < 5:
            time.sleep(0.01)
    assert time.monotonic() - started < 1
    assert signal.getsignal(signal.SIGTERM) is before and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
