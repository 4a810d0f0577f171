"""Benchmark of hostile calendars (not part of the tests): recurrence bombs and one UID in many files.

Each case is a ``syncd --backfill`` (a subprocess, fixed ``SYNCD_NOW``) over a generated
vdir folder, timed against a baseline folder measured in the same run:

- baseline: ``--events`` single meetings (default 200), each in its own .ics file;
- duplicate UIDs: the same folder plus one export file holding the same events again
  (SPEC §4: one UID in several files is one meeting); before the fix this was quadratic
  (44.7 s against 1.6 s for 200 events);
- bombs: the baseline folder plus two 600-byte files, ``FREQ=SECONDLY`` from 1970 and
  ``FREQ=DAILY`` with every BYHOUR/BYMINUTE/BYSECOND; each must be cut with a warning
  (``events.MAX_PER_SERIES`` occurrences, ``events.SERIES_SECONDS`` per series) while
  the other events are still counted.

Run: ``.venv/bin/python bench/bombs_bench.py [--events 200] [--dir D]``. Prints one line
per case: wall time, ratio to the baseline, the people count, and warnings seen.
Data goes to a temporary folder (removed afterwards) unless ``--dir`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NOW = "2026-06-15T10:00:00Z"
ME = "me@example.org"
CONFIG = """\
[syncd]
me = ["me@example.org"]
timezone = "Europe/Berlin"
write_to = "files"
ledger = "state/ledger.sqlite3"

[accounts.files]
type = "vdir"
calendars = ["calendars/*"]
addressbooks = ["contacts"]
tasks = "state/followups"
"""
_EVERY = {"BYHOUR": range(24), "BYMINUTE": range(60), "BYSECOND": range(60)}
BOMBS = {
    "secondly": "FREQ=SECONDLY",
    "daily-by": "FREQ=DAILY;" + ";".join(f"{k}={','.join(map(str, v))}" for k, v in _EVERY.items()),
}


def vevent(uid: str, start: str, summary: str, attendee: str, rrule: str | None = None) -> list[str]:
    """The lines of one VEVENT (UTC start, one hour, one attendee)."""
    lines = ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260101T000000Z", f"DTSTART:{start}", "DURATION:PT1H",
             f"SUMMARY:{summary}", f"ORGANIZER:mailto:{ME}", f"ATTENDEE:mailto:{attendee}"]
    return [*lines, *([f"RRULE:{rrule}"] if rrule else []), "END:VEVENT"]


def calendar(vevents: list[list[str]]) -> str:
    """A VCALENDAR around ``vevents``."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//syncd bench//EN"]
    return "\r\n".join([*lines, *(line for v in vevents for line in v), "END:VCALENDAR"]) + "\r\n"


def meetings(n: int) -> list[list[str]]:
    """``n`` single meetings with ``n // 4`` different people, spread over two years."""
    out = []
    for i in range(n):
        day = 1 + i % 28
        month = 1 + (i // 28) % 12
        out.append(vevent(f"m{i}@bench", f"{2025 - (i // 336)}{month:02d}{day:02d}T{9 + i % 8:02d}0000Z",
                          f"Meeting {i}", f"p{i % max(n // 4, 1)}@example.com"))
    return out


def world(root: Path, n: int, export: bool = False, bombs: bool = False) -> Path:
    """A vdir world in ``root``; returns its config."""
    cal = root / "calendars" / "personal"
    cal.mkdir(parents=True)
    (root / "contacts").mkdir()
    events = meetings(n)
    for i, ev in enumerate(events):
        (cal / f"m{i}.ics").write_text(calendar([ev]), newline="")
    if export:
        (cal / "export.ics").write_text(calendar(events), newline="")
    if bombs:
        for name, rule in BOMBS.items():
            text = calendar([vevent(f"{name}@bomb", "19700101T000000Z", name, "bomb@example.com", rule)])
            (cal / f"bomb-{name}.ics").write_text(text, newline="")
    config = root / "config.toml"
    config.write_text(CONFIG)
    return config


def env(root: Path) -> dict[str, str]:
    """A clean environment for a syncd subprocess."""
    out = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCD_", "NOTIFY_", "XDG_"))}
    out.update(PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring", HOME=str(root), TZ="UTC",
               XDG_RUNTIME_DIR=str(root / "run"), SYNCD_NOW=NOW)
    (root / "run").mkdir(exist_ok=True, mode=0o700)
    return out


def backfill(config: Path) -> tuple[float, int, int, int]:
    """Wall time, exit code, people count, warnings of one ``syncd --backfill``."""
    root = config.parent
    cmd = [sys.executable, "-m", "syncd", "--config", str(config)]
    started = time.perf_counter()
    proc = subprocess.run([*cmd, "--backfill"], capture_output=True, text=True, env=env(root))
    took = time.perf_counter() - started
    people = subprocess.run([*cmd, "people", "--json"], capture_output=True, text=True, env=env(root))
    count = len(json.loads(people.stdout)) if people.returncode == 0 else -1
    warnings = sum("warning" in line.lower() or "cut" in line for line in proc.stderr.splitlines())
    return took, proc.returncode, count, warnings


def main() -> None:
    """Run every case and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--dir", type=Path, help="keep the generated data here")
    args = ap.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="syncd-bombs-"))
    try:
        cases = {"baseline": {}, "duplicate UIDs": {"export": True}, "bombs": {"bombs": True}}
        rows = {}
        for name, opts in cases.items():
            root = base / name.replace(" ", "-")
            shutil.rmtree(root, ignore_errors=True)
            rows[name] = backfill(world(root, args.events, **opts))
        first = rows["baseline"][0]
        print(f"{'case':<16} {'seconds':>8} {'ratio':>6} {'rc':>3} {'people':>7} {'warnings':>8}")
        for name, (took, rc, people, warnings) in rows.items():
            print(f"{name:<16} {took:8.2f} {took / first:6.2f} {rc:3d} {people:7d} {warnings:8d}")
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
