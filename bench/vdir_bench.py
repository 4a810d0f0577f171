"""Benchmark of a vdir backfill and of incremental passes (not part of the tests).

Generates a vdir (default: 20,000 events over 5 years in 3 calendar folders, 2,000
contacts; 85 % single meetings with 1-4 attendees from the address book, weekly series
with overrides and EXDATEs, all-day events, declined meetings) and a config, then
measures in one run:

- (a) baseline: reading and parsing every .ics with ``icalendar.Calendar.from_ical``
  (one process, one core);
- (b) ``syncd --backfill`` as a subprocess: wall time, peak RSS (its own ``VmHWM``, its
  largest helper's, and the most all of them held at once), and the ledger's size
  against the source files'; with ``--khal``, khal building its own index of the same
  folders (khal is installed into ``bench/.khal-venv`` on first use). (a) and (b) run in
  turn ``--backfill-rounds`` times (default 3, each backfill onto a fresh ledger): the
  figures are medians, and (b)'s ratio is the median of each round's (this machine's
  speed drifts within minutes);
- (c) a no-change ``syncd sync``: the number of vdir files it opens (in-process, with an
  audit hook; must be 0) and its wall time against ``python -c pass`` and against a
  bare ``python -c`` that ``os.stat``s every .ics and .vcf file;
- (d) ``syncd sync`` after 10 events were edited (the median of three rounds);
- (e) (c) and (d) again with ``[rules.keep_in_touch] learn = false`` and ``learn = true``
  (SPEC §8's figures are derived in both; ``learn`` adds learned cadences);
- (f) ``syncd person`` for the busiest person (every 20th event has them: about 2,000
  interactions at 20,000 events) against ``syncd people --json`` on the same ledger;
- (h) the cost following the change: a second vdir of ``--small`` events (default a tenth,
  same contacts) is backfilled beside the first, and no-change passes and passes after
  10 edits alternate between the two sizes (median of five rounds each); sync10 at the
  big size against sync10 at the small one (issue 8's bar: at most 1.3), and the work
  the 10 edits add (sync10 minus no-change) at both sizes;
- (g) with ``--baseline-src DIR`` (a checkout of an older syncd, e.g. ``git archive``
  of the commit before SPEC §8): median no-change and 10-change passes of that code and
  of this one, alternating, on the same data (what deriving §8's figures costs); and,
  after (i), the first pass of each of the next three days of both, in turn (time and
  own peak RSS);
- (i) the first pass of the next day, which plans everyone again from their stored
  history: its time against a no-change pass that day, and its own peak RSS against the
  backfill's (run last: the bench's clock does not go back after it).

Run: ``.venv/bin/python bench/vdir_bench.py [--events 20000] [--contacts 2000] [--dir D]``
(``--events 2000`` for a quick run; ``--only-backfill`` stops after (b), e.g. for the
growth run at ``--events 200000``). Data goes to a temporary folder unless ``--dir``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
SPAN_DAYS = 5 * 365
ME = "me@example.org"
CALENDARS = ("work", "personal", "shared")
GROUPS = ("Family", "Friends", "Network")
CONFIG = """\
[syncd]
me = ["me@example.org"]
timezone = "Europe/Berlin"
write_to = "files"
ledger = "state/ledger.sqlite3"

[accounts.files]
type = "vdir"
calendars = ["calendars/*"]
addressbooks = ["contacts/*"]
tasks = "state/followups"

[rules.keep_in_touch]
daily_limit = 3
groups = { Family = "14d", Friends = "30d", Network = "90d" }
"""


# -- generator ----------------------------------------------------------------------
def _vcard(i: int, rng: random.Random) -> str:
    lines = ["BEGIN:VCARD", "VERSION:3.0", f"UID:person-{i}", f"FN:Person {i:04d}", f"N:{i:04d};Person;;;",
             f"EMAIL;TYPE=INTERNET:p{i}@example.com"]
    if rng.random() < 0.1:
        lines.append(f"item1.EMAIL;TYPE=INTERNET:p{i}@work.example.net")
    if rng.random() < 0.5:
        lines.append(f"CATEGORIES:{rng.choice(GROUPS)}")
    if rng.random() < 0.3:
        lines.append(f"BDAY:{rng.randint(1950, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}")
    return "\r\n".join([*lines, "END:VCARD"]) + "\r\n"


def _when(rng: random.Random) -> dt.datetime:
    """A local (Europe/Berlin) start in the 5 years before NOW, a few weeks after it too."""
    day = NOW.date() - dt.timedelta(days=rng.randint(-30, SPAN_DAYS))
    return dt.datetime.combine(day, dt.time(rng.randint(8, 18), rng.choice((0, 15, 30))))


def _people(rng: random.Random, contacts: int, declined: bool) -> list[str]:
    who = rng.sample(range(contacts), rng.randint(1, min(4, contacts)))
    lines = [f"ORGANIZER;CN=Me:mailto:{ME}",
             f"ATTENDEE;PARTSTAT={'DECLINED' if declined else 'ACCEPTED'}:mailto:{ME}"]
    for n in who:
        lines.append(f"ATTENDEE;CN=Person {n:04d};PARTSTAT=ACCEPTED;CUTYPE=INDIVIDUAL:mailto:p{n}@example.com")
    if rng.random() < 0.1:
        lines.append("ATTENDEE;CUTYPE=ROOM;CN=Room 1:mailto:room1@example.org")
    return lines


HUB = "ATTENDEE;CN=Person 0000;PARTSTAT=ACCEPTED:mailto:p0@example.com"


def _event(i: int, rng: random.Random, contacts: int, summary: str = "") -> str:
    kind = rng.random()
    uid = f"ev{i:06d}@bench.example.org"
    head = [f"UID:{uid}", "DTSTAMP:20260101T000000Z", f"LAST-MODIFIED:{NOW:%Y%m%dT%H%M%SZ}"]
    start = _when(rng)
    comps: list[list[str]] = []
    if kind < 0.85:  # a single meeting
        end = start + dt.timedelta(minutes=rng.choice((30, 60)))
        comps.append([*head, f"SUMMARY:{summary or 'Meeting'} {i}", f"DTSTART;TZID=Europe/Berlin:{start:%Y%m%dT%H%M%S}",
                      f"DTEND;TZID=Europe/Berlin:{end:%Y%m%dT%H%M%S}", *_people(rng, contacts, False)])
    elif kind < 0.90:  # a weekly series, with overrides and maybe an EXDATE
        count = rng.randint(5, 40)
        people = _people(rng, contacts, False)
        master = [*head, f"SUMMARY:{summary or 'Weekly'} {i}", f"DTSTART;TZID=Europe/Berlin:{start:%Y%m%dT%H%M%S}",
                  "DURATION:PT30M", f"RRULE:FREQ=WEEKLY;COUNT={count}", *people]
        if rng.random() < 0.5:
            master.append(f"EXDATE;TZID=Europe/Berlin:{start + dt.timedelta(weeks=1):%Y%m%dT%H%M%S}")
        comps.append(master)
        for k in rng.sample(range(2, count), min(2, count - 2)):
            orig = start + dt.timedelta(weeks=k)
            moved = orig + dt.timedelta(hours=1)
            comps.append([*head, f"SUMMARY:Weekly {i} (moved)", f"RECURRENCE-ID;TZID=Europe/Berlin:{orig:%Y%m%dT%H%M%S}",
                          f"DTSTART;TZID=Europe/Berlin:{moved:%Y%m%dT%H%M%S}", "DURATION:PT30M", *people])
    elif kind < 0.95:  # all-day
        comps.append([*head, f"SUMMARY:{summary or 'Offsite'} {i}", f"DTSTART;VALUE=DATE:{start:%Y%m%d}",
                      f"DTEND;VALUE=DATE:{start + dt.timedelta(days=1):%Y%m%d}", *_people(rng, contacts, False)])
    else:  # declined
        end = start + dt.timedelta(hours=1)
        comps.append([*head, f"SUMMARY:{summary or 'Declined'} {i}", f"DTSTART;TZID=Europe/Berlin:{start:%Y%m%dT%H%M%S}",
                      f"DTEND;TZID=Europe/Berlin:{end:%Y%m%dT%H%M%S}", *_people(rng, contacts, True)])
    if i % 20 == 0 and HUB not in comps[0]:  # the busiest person, for (f); draws nothing from rng
        comps[0].append(HUB)
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//syncd bench//EN"]
    for c in comps:
        lines += ["BEGIN:VEVENT", *c, "END:VEVENT"]
    return "\r\n".join([*lines, "END:VCALENDAR"]) + "\r\n"


def generate(root: Path, n_events: int, n_contacts: int, seed: int) -> list[Path]:
    """Write the vdir and config under ``root``; returns the event files."""
    rng = random.Random(seed)
    book = root / "contacts" / "people"
    book.mkdir(parents=True)
    for i in range(n_contacts):
        (book / f"person-{i}.vcf").write_text(_vcard(i, rng), encoding="utf-8", newline="")
    files = []
    for name in CALENDARS:
        (root / "calendars" / name).mkdir(parents=True)
    for i in range(n_events):
        path = root / "calendars" / CALENDARS[i % len(CALENDARS)] / f"ev{i:06d}.ics"
        path.write_text(_event(i, rng, n_contacts), encoding="utf-8", newline="")
        files.append(path)
    (root / "config.toml").write_text(CONFIG, encoding="utf-8")
    return files


# -- measurements --------------------------------------------------------------------
def baseline(files: list[Path]) -> float:
    """Seconds to read and parse every event file with icalendar alone."""
    import icalendar

    t0 = time.perf_counter()
    for path in files:
        icalendar.Calendar.from_ical(path.read_bytes())
    return time.perf_counter() - t0


def _env(pythonpath: str | None = None) -> dict[str, str]:
    env = {**os.environ, **({"PYTHONPATH": pythonpath} if pythonpath else {}), "SYNCD_NOW": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
           "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}
    env.pop("JOURNAL_STREAM", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an install has its bytecode compiled: measure that
    return env


def timed(cmd: list[str], cwd: Path, pythonpath: str | None = None) -> float:
    """Wall seconds of a subprocess that must succeed."""
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=_env(pythonpath), capture_output=True, text=True, timeout=3600)
    took = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return took


def median_of(n: int, cmd: list[str], cwd: Path) -> float:
    return statistics.median(timed(cmd, cwd) for _ in range(n))


def _after_edits(files: list[Path], seed: int, contacts: int, syncd: list[str], root: Path) -> float:
    """Seconds of a ``syncd sync`` after 10 events were edited (one round of (d))."""
    touch(files, 10, seed, contacts)
    return timed([*syncd, "sync"], root)


def opened_during_sync(root: Path) -> int:
    """Files under the vdir folders opened by an in-process no-change ``syncd sync``."""
    from syncd import cli

    watched = (str((root / "calendars").resolve()), str((root / "contacts").resolve()))
    state = {"on": False, "count": 0}

    def hook(event: str, args: tuple[object, ...]) -> None:
        if state["on"] and event == "open" and args and isinstance(args[0], str | bytes | os.PathLike):
            path = os.path.abspath(os.fsdecode(args[0]))  # type: ignore[arg-type]
            if path.startswith(watched) and not os.path.isdir(path):  # a folder is listed, not read
                state["count"] += 1

    sys.addaudithook(hook)  # hooks cannot be removed: this one is switched off after use
    os.environ.update({k: v for k, v in _env().items() if k.startswith(("SYNCD_", "PYTHON_KEYRING"))})
    state["on"] = True
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            code = cli.main(["--config", str(root / "config.toml"), "-q", "sync"])
    finally:
        state["on"] = False
    if code != 0:
        raise SystemExit(f"in-process sync failed with {code}")
    return state["count"]


STAT_ALL = """\
import os, sys
for top in sys.argv[1:]:
    for folder, _, names in os.walk(top):
        for name in names:
            if name.endswith((".ics", ".vcf")):
                os.stat(os.path.join(folder, name))
"""


def stat_command(root: Path) -> list[str]:
    """A bare Python process stat-ing every .ics/.vcf file (the floor of a pass that
    must notice any change)."""
    return [sys.executable, "-c", STAT_ALL, str(root / "calendars"), str(root / "contacts")]


def interleaved(n: int, cmds: list[list[str]], cwd: Path) -> list[float]:
    """Median seconds of each command over ``n`` rounds that run them in turn, so that
    a ratio between them sees one machine load (this machine's speed drifts)."""
    times: list[list[float]] = [[] for _ in cmds]
    for _ in range(n):
        for k, cmd in enumerate(cmds):
            times[k].append(timed(cmd, cwd))
    return [statistics.median(t) for t in times]


def source_bytes(root: Path) -> int:
    """Bytes of the source files (calendars and contacts)."""
    return sum(p.stat().st_size for top in ("calendars", "contacts") for p in (root / top).rglob("*") if p.is_file())


def ledger_bytes(root: Path) -> int:
    """Bytes of the ledger, its write-ahead log checkpointed first."""
    import sqlite3

    path = root / "state" / "ledger.sqlite3"
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


KHAL_VENV = Path(__file__).resolve().parent / ".khal-venv"
KHAL_CONFIG = """\
[calendars]
{calendars}
[locale]
timeformat = %H:%M
dateformat = %Y-%m-%d
longdateformat = %Y-%m-%d
datetimeformat = %Y-%m-%d %H:%M
longdatetimeformat = %Y-%m-%d %H:%M
local_timezone = Europe/Berlin
default_timezone = Europe/Berlin

[sqlite]
path = {db}
"""


def khal(root: Path) -> float:
    """Seconds for khal to build its index of the calendar folders (its first command
    after a fresh install reads every file into its SQLite cache)."""
    exe = KHAL_VENV / "bin" / "khal"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(KHAL_VENV)], check=True)
        subprocess.run([str(KHAL_VENV / "bin" / "pip"), "install", "-q", "khal"], check=True)
    home = root / "khal"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir()
    cals = "".join(f"[[{n}]]\npath = {root / 'calendars' / n}\n" for n in CALENDARS)
    config = home / "config"
    config.write_text(KHAL_CONFIG.format(calendars=cals, db=home / "khal.db"), encoding="utf-8")
    env = {**os.environ, "HOME": str(home)}
    env.pop("PYTHONPATH", None)
    t0 = time.perf_counter()
    done = subprocess.run([str(exe), "-c", str(config), "list", "2026-06-01", "1d"], cwd=home, env=env,
                          capture_output=True, text=True, timeout=7200)
    took = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"khal failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return took


def touch(files: list[Path], n: int, seed: int, contacts: int) -> None:
    """Rewrite ``n`` event files with a new summary (new content, size and mtime)."""
    rng = random.Random(seed + 1)
    for path in rng.sample(files, n):
        i = int(path.stem[2:])
        path.write_text(_event(i, random.Random(seed * 7919 + i), contacts, summary="Edited"), encoding="utf-8",
                        newline="")


def baseline_path(src: Path, root: Path) -> str:
    """The PYTHONPATH that runs the syncd checked out at ``src``: its ``connectors/`` folder
    installs as the ``syncd_connectors`` package, so a link of that name is put beside it
    (without it, the connectors of this checkout would be imported)."""
    if not (src / "syncd").is_dir():
        raise SystemExit(f"--baseline-src {src}: no syncd/ folder there")
    parts = [str(src)]
    if (src / "connectors").is_dir() and not (src / "syncd_connectors").exists():
        shim = root / "baseline-shim"
        shim.mkdir(exist_ok=True)
        link = shim / "syncd_connectors"
        if not link.exists():
            link.symlink_to(src / "connectors", target_is_directory=True)
        parts.append(str(shim))
    return os.pathsep.join(parts)


def against_baseline(root: Path, syncd: list[str], src: Path, files: list[Path], seed: int,
                     contacts: int) -> dict[str, tuple[float, float]]:
    """(g): median no-change and 10-change pass times of the code at ``src`` and of this
    one, alternating so that both see the same machine load.

    Each version keeps a ledger (and a follow-up folder) of its own: a ledger is not
    meant to be read by an older syncd than the one that wrote it. Both read the same
    folders, so each version's first pass of a round also takes in the other's edits.
    """
    (root / "config.toml").write_text(CONFIG, encoding="utf-8")  # keys both versions know
    other = root / "config-baseline.toml"
    other.write_text(CONFIG.replace('"state/', '"state-baseline/'), encoding="utf-8")
    cmds = {"baseline": [*syncd[:-3], "--config", str(other), "-q"], "this": syncd}
    times: dict[str, tuple[list[float], list[float]]] = {"baseline": ([], []), "this": ([], [])}
    pythonpath = baseline_path(src, root)
    timed([*cmds["baseline"], "--backfill", "--since", (NOW - dt.timedelta(days=SPAN_DAYS + 30)).date().isoformat()],
          root, pythonpath)
    for k in range(3):
        for who, path in (("baseline", pythonpath), ("this", None)):
            timed([*cmds[who], "sync"], root, path)  # the other version's edits: take them in
            times[who][0].append(timed([*cmds[who], "sync"], root, path))
            touch(files, 10, seed + 1000 + 2 * k + (who == "this"), contacts)
            times[who][1].append(timed([*cmds[who], "sync"], root, path))
    return {who: (statistics.median(a), statistics.median(b)) for who, (a, b) in times.items()}


def scaling(roots: dict[str, tuple[Path, list[Path]]], contacts: int, seed: int, rounds: int = 5
            ) -> dict[str, tuple[float, float]]:
    """(h): median no-change and 10-edit pass times at each size, alternating between the
    sizes so that both see the same machine load. Each pass after edits is followed by
    one more, as the daemon's next pass would be."""
    times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in roots}
    for r in range(rounds):
        for size, (root, files) in roots.items():
            cmd = [sys.executable, "-m", "syncd", "--config", str(root / "config.toml"), "-q", "sync"]
            timed(cmd, root)
            times[size][0].append(timed(cmd, root))
            times[size][1].append(_after_edits(files, seed + 2000 + r, contacts, cmd[:-1], root))
            timed(cmd, root)
    return {k: (statistics.median(a), statistics.median(b)) for k, (a, b) in times.items()}


def set_learn(root: Path, on: bool) -> None:
    """Rewrite the config with ``learn`` on or off."""
    text = CONFIG.replace("daily_limit = 3\n", f"daily_limit = 3\nlearn = {'true' if on else 'false'}\n")
    (root / "config.toml").write_text(text, encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--contacts", type=int, default=2_000)
    ap.add_argument("--dir", type=Path, help="where to generate (default: a temporary folder)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the generated folder")
    ap.add_argument("--baseline-src", type=Path, help="(g): a checkout of an older syncd to compare with")
    ap.add_argument("--khal", action="store_true", help="(b): also time khal indexing the same folders")
    ap.add_argument("--only-backfill", action="store_true", help="stop after (b)")
    ap.add_argument("--backfill-rounds", type=int, default=3,
                    help="(a) and (b): rounds of a parse then a backfill onto a fresh ledger (default 3)")
    ap.add_argument("--small", type=int, help="(h): events of the small vdir (default: a tenth; 0: skip (h))")
    args = ap.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="syncd-vdir-bench-"))
    if args.dir and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    syncd = [py, "-m", "syncd", "--config", str(root / "config.toml"), "-q"]
    try:
        t0 = time.perf_counter()
        files = generate(root, args.events, args.contacts, args.seed)
        gen = time.perf_counter() - t0
        print(f"generated {args.events} events, {args.contacts} contacts in {root} ({gen:.1f} s)", flush=True)
        rounds = []
        peaks: list[tuple[float, float, float]] = []  # peak RSS, MB: its own, largest helper's, all at once
        for r in range(args.backfill_rounds):  # (a) and (b) in turn: both see the same machine
            if r:
                shutil.rmtree(root / "state")  # a fresh ledger (and follow-up folder) each time
            base_r = baseline(files)
            took, said = reported([*syncd[3:], "--backfill", "--since",
                                   (NOW - dt.timedelta(days=SPAN_DAYS + 30)).date().isoformat()], root)
            rounds.append((base_r, took))
            peaks.append((said.get("hwm", 0) / 1024, said["helper"] / 1024, said["together"] / 1024))
        base = statistics.median(b for b, _ in rounds)
        back = statistics.median(k for _, k in rounds)
        ratios = [k / b for b, k in rounds]
        rss_mb = max(own for own, _, _ in peaks)
        helper_mb = max(h for _, h, _ in peaks)
        all_mb = max(every for _, _, every in peaks)
        sizes = (ledger_bytes(root), source_bytes(root))
        khal_s = khal(root) if args.khal else None
        if args.only_backfill:
            return report(args, base, back, ratios, (rss_mb, helper_mb, all_mb), sizes, khal_s, None)
        opened = opened_during_sync(root)
        startup, stat_s, nochange = interleaved(7, [[py, "-c", "pass"], stat_command(root), [*syncd, "sync"]], root)
        after10 = statistics.median(_after_edits(files, args.seed + 10 * r, args.contacts, syncd, root) for r in range(3))
        learn = {}
        for k, on in enumerate((False, True)):
            set_learn(root, on)
            timed([*syncd, "sync"], root)  # a changed config derives everything once
            quiet = median_of(3, [*syncd, "sync"], root)
            learn[on] = (quiet, statistics.median(_after_edits(files, args.seed + 100 + 10 * k + r, args.contacts,
                                                                syncd, root) for r in range(3)))
        people_json = median_of(3, [*syncd, "people", "--json"], root)
        person_json = median_of(3, [*syncd, "person", "p0@example.com", "--json"], root)
        hub = json.loads(subprocess.run([*syncd, "person", "p0@example.com", "--json"], cwd=root, env=_env(),
                                        capture_output=True, text=True, check=True).stdout)["interactions"]
        small = args.events // 10 if args.small is None else args.small
        scale = None
        if small:
            (root / "config.toml").write_text(CONFIG, encoding="utf-8")  # (e) changed it; (h) measures (d)'s
            timed([*syncd, "sync"], root)  # a changed config derives everything once
            little = root / "small"
            little_files = generate(little, small, args.contacts, args.seed)
            timed([py, "-m", "syncd", "--config", str(little / "config.toml"), "-q", "--backfill", "--since",
                   (NOW - dt.timedelta(days=SPAN_DAYS + 30)).date().isoformat()], little)
            scale = (args.events, small, scaling({"big": (root, files), "small": (little, little_files)},
                                                 args.contacts, args.seed))
        base_vs = (against_baseline(root, syncd, args.baseline_src.resolve(), files, args.seed, args.contacts)
                   if args.baseline_src else None)
        passes = Passes(opened, startup, stat_s, nochange, after10, learn, people_json, person_json, hub, base_vs,
                        scale, next_day(root))
        if args.baseline_src:  # after (i): the days that follow it
            passes.days = new_days(root, baseline_path(args.baseline_src.resolve(), root))
        return report(args, base, back, ratios, (rss_mb, helper_mb, all_mb), sizes, khal_s, passes)
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    return 0


@dataclass
class Passes:
    """What (c) to (i) measured."""

    opened: int
    startup: float
    stat_s: float
    nochange: float
    after10: float
    learn: dict[bool, tuple[float, float]]
    people_json: float
    person_json: float
    hub: int
    base_vs: dict[str, tuple[float, float]] | None
    scale: tuple[int, int, dict[str, tuple[float, float]]] | None = None
    day: tuple[float, float, float] | None = None  # (i): seconds, own peak RSS (MB), that day's no-change
    #: (g): who -> the first pass of each following day: (seconds, own peak RSS in MB)
    days: dict[str, list[tuple[float, float]]] | None = None


# syncd, reporting at exit its own peak RSS (``VmHWM`` of /proc/self/status, KiB) and the
# bytes it handed to write calls (``wchar`` of Linux's /proc/self/io). Not ``ru_maxrss``:
# Linux starts a child's at its parent's RSS at the fork (kept through exec), so every
# process this bench starts would report at least the bench's own size.
_REPORTING = """\
import atexit, sys
def _report():
    lines = []
    for name, key in (("/proc/self/status", "VmHWM:"), ("/proc/self/io", "wchar:")):
        try:
            with open(name) as f:
                lines += [line.strip() for line in f if line.startswith(key)]
        except OSError:
            pass
    sys.stderr.write("\\n".join(lines) + "\\n")
atexit.register(_report)
from syncd import cli
sys.exit(cli.main(sys.argv[1:]))
"""


def _kib(pid: int, key: str, where: str = "status") -> int:
    """``key`` (``VmHWM:`` of ``status``, ``Pss:`` of ``smaps_rollup``) of a live
    process in KiB (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/{where}") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _descendants(pid: int) -> set[int]:
    """The live processes below ``pid`` (its workers, their fork server)."""
    parent: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            parent[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = set(), [pid]
    while todo:
        here = todo.pop()
        for child, up in parent.items():
            if up == here and child not in found:
                found.add(child)
                todo.append(child)
    return found


def reported(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, dict[str, int]]:
    """Seconds of a ``syncd ARGS`` run that must succeed, and what it reported at exit:
    ``hwm``, its own peak RSS in KiB; ``wchar``, bytes written, where Linux tells;
    ``helper``, the largest peak RSS (KiB) of the processes it started (their own
    ``VmHWM``, sampled every 0.2 s while it ran: a peak is never lower later, so at most
    the last 0.2 s of a helper's life can be missed), and ``together``, the most memory
    that it and its helpers held at once in those samples (the sum of their PSS: a page
    that forked workers share counts once)."""
    import threading

    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", _REPORTING, *args], cwd=cwd, env=env or _env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    helpers: dict[int, int] = {}
    together = [0]
    done_event = threading.Event()

    def watch() -> None:
        while not done_event.wait(0.2):
            now = _kib(proc.pid, "Pss:", "smaps_rollup")
            for pid in _descendants(proc.pid):
                helpers[pid] = max(helpers.get(pid, 0), _kib(pid, "VmHWM:"))
                now += _kib(pid, "Pss:", "smaps_rollup")
            together[0] = max(together[0], now)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        _out, err = proc.communicate(timeout=3600)
    finally:
        done_event.set()
        watcher.join()
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"syncd {' '.join(args)} failed ({proc.returncode}):\n{err[-3000:]}")
    found = {"helper": max(helpers.values(), default=0), "together": together[0]}
    for line in err.splitlines():
        name, _, value = line.partition(":")
        fields = value.split()
        if name in ("VmHWM", "wchar") and fields and fields[0].isdigit():
            found["hwm" if name == "VmHWM" else "wchar"] = int(fields[0])
    return took, found


def next_day(root: Path) -> tuple[float, float, float]:
    """(i): the first pass of the next day (everyone is planned again from their stored
    history): seconds and its own peak RSS in MB, then a no-change pass that day. Run
    last: a clock set back afterwards would derive everything from scratch."""
    env = {**_env(), "SYNCD_NOW": (NOW + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    args = ["--config", str(root / "config.toml"), "-q", "sync"]
    (took, first), (quiet, _) = reported(args, root, env), reported(args, root, env)
    return took, first.get("hwm", 0) / 1024, quiet


def new_days(root: Path, pythonpath: str, rounds: int = 3) -> dict[str, list[tuple[float, float]]]:
    """(g): the first pass of each of the ``rounds`` days after (i)'s, of the baseline code
    (on its own ledger, brought up to date first) and of this one, in turn: seconds and
    own peak RSS (MB). Each is a new day's pass: everyone planned again."""
    args = {"baseline": ["--config", str(root / "config-baseline.toml"), "-q", "sync"],
            "this": ["--config", str(root / "config.toml"), "-q", "sync"]}
    envs = {"baseline": _env(pythonpath), "this": _env()}
    reported(args["baseline"], root, envs["baseline"])  # this code's last edits, on the bench's day
    out: dict[str, list[tuple[float, float]]] = {"baseline": [], "this": []}
    for day in range(2, 2 + rounds):
        when = (NOW + dt.timedelta(days=day)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for who in ("baseline", "this"):
            took, said = reported(args[who], root, {**envs[who], "SYNCD_NOW": when})
            out[who].append((took, said.get("hwm", 0) / 1024))
    return out


def report(args: argparse.Namespace, base: float, back: float, ratios: list[float], rss: tuple[float, float, float],
           sizes: tuple[int, int], khal_s: float | None, p: Passes | None) -> int:
    """Print the table; 1 if the no-change pass opened a vdir file. (a) and (b) are
    medians over the rounds, and (b)'s ratio the median of each round's."""
    led, src = sizes
    rss_mb, helper_mb, all_mb = rss
    each = ", ".join(f"{r:.2f}" for r in ratios)
    rows = [
        (f"(a) icalendar parse of every .ics ({args.events} events)", f"{base:8.2f} s", f"median of {len(ratios)}"),
        ("(b) syncd --backfill", f"{back:8.2f} s", f"{statistics.median(ratios):.2f}x baseline (rounds: {each})"),
        ("(b) backfill peak RSS (syncd's own process)", f"{rss_mb:8.0f} MB", "largest of the rounds"),
        ("(b) peak RSS of its largest helper process", f"{helper_mb:8.0f} MB", "a parse worker or their fork server"),
        ("(b) memory of all its processes at once", f"{all_mb:8.0f} MB", "sum of PSS, largest of samples every 0.2 s"),
        ("(b) source files", f"{src / 1e6:8.1f} MB", ""),
        ("(b) ledger after the backfill", f"{led / 1e6:8.1f} MB", f"{led / src:.2f}x source files"),
        ("(b) khal building its index", f"{khal_s:8.2f} s", f"backfill {back / khal_s:.2f}x khal")
        if khal_s is not None else ("(b) khal not measured (--khal)", "", ""),
    ]
    if p is not None:
        learn = p.learn
        rows += [
            ("(c) no-change sync: vdir files opened", f"{p.opened:8d}", "must be 0"),
            ("(c) python -c pass", f"{p.startup:8.3f} s", ""),
            ("(c) python -c stat-ing every .ics/.vcf", f"{p.stat_s:8.3f} s", ""),
            ("(c) no-change syncd sync", f"{p.nochange:8.3f} s",
             f"{p.nochange / p.startup:.1f}x startup, {p.nochange / p.stat_s:.2f}x stat"),
            ("(d) syncd sync after 10 edited events", f"{p.after10:8.3f} s", f"{p.after10 / p.nochange:.2f}x no-change"),
            ("(e) no-change sync, learn = false", f"{learn[False][0]:8.3f} s", ""),
            ("(e) no-change sync, learn = true", f"{learn[True][0]:8.3f} s", f"{learn[True][0] / learn[False][0]:.2f}x"),
            ("(e) sync after 10 edits, learn = false", f"{learn[False][1]:8.3f} s", ""),
            ("(e) sync after 10 edits, learn = true", f"{learn[True][1]:8.3f} s", f"{learn[True][1] / learn[False][1]:.2f}x"),
            ("(f) syncd people --json", f"{p.people_json:8.3f} s", ""),
            (f"(f) syncd person --json ({p.hub} interactions)", f"{p.person_json:8.3f} s",
             f"{p.person_json / p.people_json:.2f}x people --json"),
        ]
        if p.scale:
            big_n, small_n, sc = p.scale
            (q_b, e_b), (q_s, e_s) = sc["big"], sc["small"]
            rows += [
                (f"(h) no-change sync, {small_n} events", f"{q_s:8.3f} s", ""),
                (f"(h) sync after 10 edits, {small_n} events", f"{e_s:8.3f} s", f"{e_s / q_s:.2f}x no-change"),
                (f"(h) no-change sync, {big_n} events", f"{q_b:8.3f} s", f"{q_b / q_s:.2f}x {small_n} events"),
                (f"(h) sync after 10 edits, {big_n} events", f"{e_b:8.3f} s",
                 f"{e_b / q_b:.2f}x no-change, {e_b / e_s:.2f}x {small_n} events"),
                (f"(h) work of 10 edits (sync10 - no-change), {small_n}", f"{e_s - q_s:8.3f} s", ""),
                (f"(h) work of 10 edits (sync10 - no-change), {big_n}", f"{e_b - q_b:8.3f} s",
                 f"{(e_b - q_b) / (e_s - q_s):.2f}x {small_n} events" if e_s > q_s else ""),
            ]
        if p.base_vs:
            (b0, b10), (t0_, t10) = p.base_vs["baseline"], p.base_vs["this"]
            rows += [
                ("(g) no-change sync, baseline code", f"{b0:8.3f} s", ""),
                ("(g) no-change sync, this code", f"{t0_:8.3f} s", f"{t0_ / b0:.2f}x baseline"),
                ("(g) sync after 10 edits, baseline code", f"{b10:8.3f} s", ""),
                ("(g) sync after 10 edits, this code", f"{t10:8.3f} s", f"{t10 / b10:.2f}x baseline"),
            ]
        if p.days:
            (bs, bm), (ts, tm) = ([statistics.median(x) for x in zip(*p.days[w], strict=True)]
                                  for w in ("baseline", "this"))
            rows += [
                ("(g) first pass of a new day, baseline code", f"{bs:8.3f} s", f"peak RSS {bm:.0f} MB"),
                ("(g) first pass of a new day, this code", f"{ts:8.3f} s",
                 f"{ts / bs:.2f}x baseline; peak RSS {tm:.0f} MB, {tm / bm:.2f}x"),
            ]
        if p.day:
            took, peak, quiet = p.day
            rows += [
                ("(i) first pass of the next day", f"{took:8.3f} s", f"{took / quiet:.2f}x that day's no-change"),
                ("(i) its peak RSS", f"{peak:8.0f} MB", f"{peak / rss_mb:.2f}x the backfill's"),
            ]
    print()
    table(["measure", "value", "ratio"], rows)
    return 0 if p is None or p.opened == 0 else 1


def table(head: list[str], rows: list[tuple[str, ...]], width: int = 11) -> None:
    """Print ``rows`` under ``head``: the first column left-aligned, the middle ones
    right-aligned in ``width``, the last as it is (the benches' tables)."""
    first = max(len(r[0]) for r in [*rows, head])
    for r in [tuple(head), *rows]:
        print("  ".join([f"{r[0]:<{first}}", *(f"{c:>{width}}" for c in r[1:-1]), r[-1]]))

if __name__ == "__main__":
    sys.exit(main())
