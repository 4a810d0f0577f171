"""Benchmark of passes over years of closed follow-ups (not part of the tests).

A user who has run syncd for years has thousands of follow-ups done or dismissed in
the ledger: a few catch-ups a day, birthdays, first meetings. A pass must cost what
changed, not what is stored: closed follow-ups must not make passes slower.

The run: two copies of one generated vdir (``vdir_bench.generate``), each backfilled
onto its own ledger; into one, ``--closed`` closed follow-ups (default 10,000) are put,
spread over its people and over the five years before the bench's day, as passes
would have left them. Then, alternating between the two for ``--rounds`` rounds (each
sees the same machine load): a pass with no change, a pass after 10 edited events
(the same events in both), and after those, the first pass of each of the next
``--days`` days (everyone planned again). Reported: medians of each, and the ratio
with closed follow-ups against without (at most 1.1 is what "costs what changed" asks).

    .venv/bin/python bench/history_bench.py                       # 20,000 events
    .venv/bin/python bench/history_bench.py --events 2000 --contacts 200 --closed 2000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vdir_bench as vb  # the generator and the timed runs of the vdir bench

from syncd.ledger import unpack


def add_closed(ledger: Path, n: int, seed: int) -> int:
    """Put ``n`` closed follow-ups into ``ledger``: catch-ups, birthdays and first
    meetings of its people, written on days over the five years before the bench's day
    (none this week), done or dismissed. Returns how many people they are spread over."""
    rng = random.Random(seed)
    conn = sqlite3.connect(ledger)
    try:
        people = [(k, json.loads(unpack(e))) for k, e in conn.execute("SELECT key, data FROM people ORDER BY key")]
        if not people:
            raise SystemExit("the ledger holds no people")
        today = vb.NOW.date() - dt.timedelta(days=7)
        rows = []
        for i in range(n):
            key, entry = people[i % len(people)]
            rule = rng.choices(["keep_in_touch", "birthday", "first_meeting"], [8, 1, 1])[0]
            written = today - dt.timedelta(days=rng.randrange(5 * 365))
            due = written + dt.timedelta(days=rng.randrange(1, 15))
            state = rng.choices(["done", "dismissed", "resolved"], [6, 2, 2])[0]
            rows.append((f"syncd-bench-closed-{i}", rule, f"{rule}:{key}:c{i}", key, entry.get("name", key),
                         json.dumps(entry.get("emails", [])), f"c{i}", due.isoformat(), f"{rule} {key}",
                         "closed by the bench", "files", state, written.isoformat(),
                         f"{due.isoformat()}T12:00:00Z"))
        with conn:
            conn.executemany("INSERT INTO followups (uid, rule, key, person, name, emails, cycle, due, summary, "
                             "reason, account, state, written_on, closed_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                             rows)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return len(people)
    finally:
        conn.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--contacts", type=int, default=2_000)
    ap.add_argument("--closed", type=int, default=10_000, help="closed follow-ups in the ledger of one copy")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--days", type=int, default=3, help="first passes of new days, after the rounds")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    top = Path(tempfile.mkdtemp(prefix="syncd-history-bench-"))
    try:
        since = (vb.NOW - dt.timedelta(days=vb.SPAN_DAYS + 30)).date().isoformat()
        roots: dict[str, tuple[Path, list[Path]]] = {}
        for name in ("none", "closed"):
            root = top / name
            root.mkdir()
            files = vb.generate(root, args.events, args.contacts, args.seed)
            vb.timed([sys.executable, "-m", "syncd", "--config", str(root / "config.toml"), "-q", "--backfill",
                      "--since", since], root)
            roots[name] = (root, files)
        spread = add_closed(roots["closed"][0] / "state" / "ledger.sqlite3", args.closed, args.seed)
        quiet: dict[str, list[float]] = {k: [] for k in roots}
        edits: dict[str, list[float]] = {k: [] for k in roots}
        for r in range(args.rounds):
            for name, (root, files) in roots.items():
                cmd = [sys.executable, "-m", "syncd", "--config", str(root / "config.toml"), "-q", "sync"]
                vb.timed(cmd, root)  # settled
                quiet[name].append(vb.timed(cmd, root))
                edits[name].append(vb._after_edits(files, args.seed + 3000 + r, args.contacts, cmd[:-1], root))
        days: dict[str, list[float]] = {k: [] for k in roots}
        for day in range(1, 1 + args.days):
            when = (vb.NOW + dt.timedelta(days=day)).strftime("%Y-%m-%dT%H:%M:%SZ")
            for name, (root, _) in roots.items():
                env = {**vb._env(), "SYNCD_NOW": when}
                took, _said = vb.reported(["--config", str(root / "config.toml"), "-q", "sync"], root, env)
                days[name].append(took)
        print(f"{args.events} events, {args.contacts} contacts; {args.closed} closed follow-ups over "
              f"{spread} people in one ledger, none in the other\n")
        rows = []
        for label, got in (("no-change pass", quiet), ("pass after 10 edits", edits), ("first pass of a new day", days)):
            with_, without = statistics.median(got["closed"]), statistics.median(got["none"])
            rows.append((label, f"{with_:7.3f} s", f"{without:7.3f} s", f"{with_ / without:.2f}x"))
        work = (statistics.median(edits["closed"]) - statistics.median(quiet["closed"]),
                statistics.median(edits["none"]) - statistics.median(quiet["none"]))
        rows.append(("work of 10 edits (minus no-change)", f"{work[0]:7.3f} s", f"{work[1]:7.3f} s",
                     f"{work[0] / work[1]:.2f}x" if work[1] > 0 else "-"))
        vb.table(["measure", "closed", "none", "ratio"], rows)
        return 0
    finally:
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
