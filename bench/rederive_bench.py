"""Benchmark of a pass that derives everyone again, after days of passes (not part of
the tests).

A pass whose write-back failed (a server down), a changed config or a clock set back
makes the next pass derive every person from scratch. Whose history comes out as it is
stored is not written again: each person's history keeps a digest, which the passes
in between update as they replace a few rows of it.

The run: a generated vdir (``vdir_bench.generate``), ``syncd --backfill``, then
``--passes`` passes after 10 edited events each. The ledger is saved; then, alternating
for ``--rounds`` rounds, the saved ledger is put back and marked as after a failed
write-back, and ``syncd sync`` is timed (a) as the ledger is, (b) with every history's
digest gone (what passes before the digests were sums left behind: the baseline, in
the same run). For each: median seconds, and the bytes the pass handed to write calls
(``wchar`` of Linux's ``/proc/self/io``: the ledger's pages, its log, the follow-ups).

    .venv/bin/python bench/rederive_bench.py                 # 20,000 events
    .venv/bin/python bench/rederive_bench.py --events 2000 --contacts 200
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vdir_bench as vb  # the generator and the timed runs of the vdir bench


def _mark_failed(ledger: Path, drop_digests: bool) -> None:
    """The ledger as a failed write-back leaves it (derive everyone next), its
    write-ahead log checkpointed and empty."""
    conn = sqlite3.connect(ledger)
    try:
        with conn:
            conn.execute("UPDATE meta SET value='' WHERE key IN ('derived', 'reconciled')")
            if drop_digests:
                conn.execute("DELETE FROM histories")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _restore(saved: Path, ledger: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{ledger}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(saved, ledger)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--contacts", type=int, default=2_000)
    ap.add_argument("--passes", type=int, default=5, help="passes of 10 edits before the measure")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="syncd-rederive-bench-"))
    try:
        files = vb.generate(root, args.events, args.contacts, args.seed)
        syncd = [sys.executable, "-m", "syncd", "--config", str(root / "config.toml"), "-q"]
        since = (vb.NOW - dt.timedelta(days=vb.SPAN_DAYS + 30)).date().isoformat()
        vb.timed([*syncd, "--backfill", "--since", since], root)
        for k in range(args.passes):
            vb.touch(files, 10, args.seed + 10 * k, args.contacts)
            vb.timed([*syncd, "sync"], root)
        ledger = root / "state" / "ledger.sqlite3"
        conn = sqlite3.connect(ledger)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        kept = conn.execute("SELECT count(*) FROM histories WHERE digest LIKE '+%'").fetchone()[0]
        people = conn.execute("SELECT count(*) FROM people").fetchone()[0]
        conn.close()
        saved = root / "saved.sqlite3"
        shutil.copyfile(ledger, saved)
        times: dict[bool, list[float]] = {False: [], True: []}
        wrote: dict[bool, list[int]] = {False: [], True: []}
        for _ in range(args.rounds):
            for drop in (False, True):
                _restore(saved, ledger)
                _mark_failed(ledger, drop)
                took, said = vb.reported([*syncd[3:], "sync"], root)
                times[drop].append(took)
                wrote[drop].append(said.get("wchar", 0))
        kept_s, gone_s = statistics.median(times[False]), statistics.median(times[True])
        print(f"{args.events} events, {args.contacts} contacts, {args.passes} passes of 10 edits: "
              f"{kept} of {people} people keep a digest\n")
        rows = [("pass deriving everyone, digests as kept", f"{kept_s:7.2f} s", f"{kept_s / gone_s:.2f}x baseline"),
                ("  bytes it wrote", f"{statistics.median(wrote[False]) / 1024:7.0f} KB", ""),
                ("baseline: the same pass, digests gone", f"{gone_s:7.2f} s", ""),
                ("  bytes it wrote", f"{statistics.median(wrote[True]) / 1024:7.0f} KB", "")]
        vb.table(["measure", "value", "ratio"], rows)
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
