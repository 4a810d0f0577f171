"""Benchmark of the team mode (SPEC §9; not part of the tests).

Starts a private PostgreSQL cluster (as the team tests do; or uses
``SYNCD_TEST_DATABASE``), makes a team of small vdir members (default 1,000 members, each
40 events and 20 contacts, generated like ``bench/vdir_bench.py``), and measures in one run:

- (a) throughput: members passed per minute by 1, 2, 4 and 8 worker processes (no-change
  passes, the steady state; every member enqueued at once, timed until the queue is
  empty), with the machine's CPU use beside it (all processes, PostgreSQL included) and
  the ratio to linear scaling from one worker;
- (b) the cost of one member's pass through a worker (enqueue to done, a worker already
  running) against the same pass as ``syncd sync`` does it on SQLite (config, lock,
  ledger, ``Engine.run_pass``, in-process), for a no-change pass and a 10-change pass;
- (c) the single-user no-change ``syncd sync`` (a subprocess, 2,000 events) of this tree
  against a baseline commit (default: where this branch left ``main``), interleaved.

With ``--caldav``, (a) uses members with one CalDAV account each (a user of one local
Radicale, 5 events and 5 contacts) reached through a proxy that delays every request by
``--latency`` seconds (default 0.05), so passes wait on the network as in real life
instead of competing for the machine's cores; their passwords are stored with
``Vault`` (encrypted with the team key) as ``syncd team auth`` stores them.

Run: ``.venv/bin/python bench/team_bench.py [--members 1000] [--workers 1,2,4,8]
[--repeats 10] [--baseline REF] [--caldav [--latency 0.05]]`` (``--members 100`` for a
quick run).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.team import pg  # noqa: E402 (the cluster fixture of the tests)

_spec = importlib.util.spec_from_file_location("vdir_bench", ROOT / "bench" / "vdir_bench.py")
assert _spec and _spec.loader
vb: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(vb)

NOW = vb.NOW.strftime("%Y-%m-%dT%H:%M:%SZ")


def _env() -> dict[str, str]:
    env = {**os.environ, "SYNCD_NOW": NOW, "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}
    env.pop("CREDENTIALS_DIRECTORY", None)
    return env


def _cpu_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine."""
    fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_member(root: Path, events: int, contacts: int, seed: int, ledger: bool = False) -> list[Path]:
    """A member's vdir world and config (without ``ledger`` unless asked)."""
    files: list[Path] = vb.generate(root, events, contacts, seed)
    cfg = root / "config.toml"
    if not ledger:
        cfg.write_text("\n".join(line for line in cfg.read_text().splitlines() if not line.startswith("ledger")))
    return files


class Bench:
    def __init__(self, dsn: str, root: Path) -> None:
        from cryptography.fernet import Fernet

        from syncd import team

        self.dsn, self.root = dsn, root
        key = root / "team-key"
        key.write_bytes(Fernet.generate_key())
        self.config = root / "team.toml"
        self.config.write_text(f'[team]\ndatabase = "{dsn}"\nkey_file = "{key}"\ninterval = "15m"\n')
        self.team_config = team.load_config(self.config)
        self.fernet = team.read_key(self.team_config)
        with team.Team(self.team_config) as db:
            db.init()
        import psycopg

        from syncd import teamjobs

        self.poll = psycopg.connect(dsn, autocommit=True)
        self.app = teamjobs.make_app(self.team_config, self.fernet)
        self.app.open()

    def add_caldav_members(self, n: int, radicale: Any, url: str) -> list[str]:
        """Members with one CalDAV account each on ``radicale``, reached at ``url``."""
        from syncd import team

        names = []
        with team.Team(self.team_config) as db:
            for i in range(n):
                name = f"c{i:04d}"
                user, password = radicale.new_user()
                seed = radicale.seeder(user, password)
                cal, book = seed.mkcalendar("Personal"), seed.mkaddressbook("Contacts")
                for j in range(5):
                    email = f"p{j}@{name}.example.org"
                    seed.put(f"{book}p{j}.vcf", seed.vcard(f"{name}-p{j}", f"Person {j}", email))
                    seed.put(f"{cal}e{j}.ics", seed.event(f"{name}-e{j}", "Coffee", f"2026052{j}T100000Z",
                                                          (email, "me@example.org")))
                folder = self.root / "members" / name
                folder.mkdir(parents=True)
                (folder / "config.toml").write_text(
                    '[syncd]\nme = ["me@example.org"]\ntimezone = "Europe/Berlin"\nwrite_to = "home"\n'
                    f'[accounts.home]\ntype = "caldav"\nurl = "{url}"\nusername = "{user}"\n')
                db.add(name, folder / "config.toml")
                ledger = db.ledger(name)
                team.Vault(name, ledger, self.fernet).put("home", str(password))
                ledger.close()
                names.append(name)
            db.conn.execute("UPDATE syncd_team.members SET next_run = now() + interval '1 day'")
        return names

    def add_members(self, n: int, events: int, contacts: int) -> list[str]:
        from syncd import team

        names = []
        with team.Team(self.team_config) as db:
            for i in range(n):
                name = f"m{i:04d}"
                make_member(self.root / "members" / name, events, contacts, seed=i)
                db.add(name, self.root / "members" / name / "config.toml")
                names.append(name)
            db.conn.execute("UPDATE syncd_team.members SET next_run = now() + interval '1 day'")
        return names

    def sql(self, query: str) -> Any:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(query)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    def workers(self, n: int) -> list[subprocess.Popen[bytes]]:
        procs = [subprocess.Popen([sys.executable, "-m", "syncd", "--config", str(self.config), "team", "worker",
                                   "--concurrency", "1"], env=_env(), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for _ in range(n)]
        deadline = time.monotonic() + 120
        while self.sql("SELECT count(*) FROM procrastinate_workers")[0][0] < n:
            if time.monotonic() > deadline:
                raise SystemExit("workers did not start")
            time.sleep(0.05)
        return procs

    def stop(self, procs: list[subprocess.Popen[bytes]]) -> None:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=120)

    def enqueue(self, names: list[str]) -> None:
        """Queue a pass of each member (one batch: members are each queued once here)."""
        from syncd import teamjobs

        if len(names) == 1:
            teamjobs.defer(self.app, names[0])
        else:
            self.app.tasks[teamjobs.PASS_TASK].batch_defer(*[{"member": n} for n in names])  # type: ignore[arg-type]

    def drained(self) -> bool:
        return not self.poll.execute("SELECT 1 FROM procrastinate_jobs WHERE status IN ('todo', 'doing') "
                                     "AND task_name = 'syncd.team.pass' LIMIT 1").fetchone()

    def round(self, names: list[str], n_workers: int) -> tuple[float, float, float]:
        """(members per minute, machine CPU busy fraction, the workers' CPU in cores) for one
        round of passes."""
        procs = self.workers(n_workers)
        try:
            b0, t0c = _cpu_busy()
            w0 = sum(_proc_cpu(p.pid) for p in procs)
            t0 = time.perf_counter()
            self.enqueue(names)
            while not self.drained():
                time.sleep(0.05)
            took = time.perf_counter() - t0
            w1 = sum(_proc_cpu(p.pid) for p in procs)
            b1, t1c = _cpu_busy()
        finally:
            self.stop(procs)
        failed = self.sql("SELECT count(*) FROM procrastinate_jobs WHERE status = 'failed'")[0][0]
        if failed:
            raise SystemExit(f"{failed} passes failed")
        return len(names) / took * 60, (b1 - b0) / max(1.0, t1c - t0c), (w1 - w0) / took

    def one_through_worker(self, name: str) -> float:
        """Seconds from enqueue to done of one member's pass, a worker waiting."""
        t0 = time.perf_counter()
        self.enqueue([name])
        while not self.drained():
            time.sleep(0.002)
        return time.perf_counter() - t0


def scaling(bench: Bench, names: list[str], counts: list[int]) -> None:
    """Print (a): members per minute by worker count."""
    base = None
    for n in counts:
        rate, cpu, workers_cpu = bench.round(names, n)
        base = base or rate / n
        print(f"  {n} worker(s): {rate:7.0f} members/min   {rate / (base * n):4.2f} x linear   "
              f"workers' CPU {workers_cpu:4.2f} cores   machine busy (all users) {cpu:4.0%}")


def caldav_round(bench: Bench, args: argparse.Namespace, counts: list[int]) -> None:
    """(a) with CalDAV members on one Radicale behind a proxy adding ``args.latency`` s."""
    from tests.caldav.proxy import CountingProxy
    from tests.servers import start_radicale

    folder = bench.root / "radicale"
    folder.mkdir()
    radicale = start_radicale(folder)
    proxy = CountingProxy(radicale.url)
    proxy.fault(delay=args.latency, times=10**12)
    try:
        t0 = time.perf_counter()
        names = bench.add_caldav_members(args.members, radicale, proxy.url)
        print(f"added {len(names)} CalDAV members (5 events, 5 contacts each; {args.latency * 1000:.0f} ms "
              f"per request) in {time.perf_counter() - t0:.1f} s")
        rate, cpu, _ = bench.round(names, max(counts))
        print(f"first passes (import), {max(counts)} workers: {rate:.0f} members/min, machine busy {cpu:.0%}")
        proxy.requests.clear()
        print("(a) no-change passes of every CalDAV member:")
        scaling(bench, names, counts)
        print(f"  requests per no-change pass: {proxy.count() / (len(names) * len(counts)):.1f}")
    finally:
        proxy.close()
        radicale.stop()


def sqlite_pass(config: Path) -> float:
    """Seconds of what ``syncd sync`` does in-process: config, lock, ledger, pass."""
    from syncd import config as config_mod
    from syncd import lock
    from syncd.engine import Engine
    from syncd.ledger import Ledger

    t0 = time.perf_counter()
    cfg = config_mod.load(config)
    with lock.hold(cfg.ledger, "bench"):
        ledger = Ledger.open(cfg.ledger)
        engine = Engine(cfg, ledger)
        result = engine.run_pass()
        engine.close()
        ledger.close()
    took = time.perf_counter() - t0
    if result.exit_code != 0:
        raise SystemExit(f"sqlite pass failed: {result.exit_code}")
    return took


def baseline_tree(ref: str, into: Path) -> Path:
    """The syncd and connectors packages of ``ref``, exported under ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref, "syncd", "connectors"],
                             capture_output=True, check=True).stdout
    into.mkdir(parents=True)
    tar = into / "tree.tar"
    tar.write_bytes(archive)
    with tarfile.open(tar) as t:
        t.extractall(into, filter="data")
    return into


def timed_sync(world: Path, pythonpath: str | None) -> float:
    env = _env()
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "syncd", "--config", str(world / "config.toml"), "sync"],
                          cwd=world, env=env, capture_output=True, text=True, timeout=600)
    took = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"syncd sync failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=1000)
    ap.add_argument("--events", type=int, default=40, help="events per member")
    ap.add_argument("--contacts", type=int, default=20, help="contacts per member")
    ap.add_argument("--workers", default="1,2,4,8", help="worker process counts to measure")
    ap.add_argument("--repeats", type=int, default=10, help="passes timed per figure in (b) and (c)")
    ap.add_argument("--baseline", help="the commit to compare the single-user pass with (default: merge-base with main)")
    ap.add_argument("--caldav", action="store_true", help="(a) with CalDAV members behind a slow proxy")
    ap.add_argument("--latency", type=float, default=0.05, help="seconds the proxy adds to each request")
    args = ap.parse_args()
    counts = [int(x) for x in args.workers.split(",")]
    os.environ.update(SYNCD_NOW=NOW, PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring")
    root = Path(tempfile.mkdtemp(prefix="syncd-team-bench-"))
    print(f"machine: {os.cpu_count()} cores; data in {root}")
    given = os.environ.get("SYNCD_TEST_DATABASE")
    cm = pg.cluster() if not given else None
    admin = cm.__enter__() if cm else given
    assert admin
    try:
        pg.ensure_owner(admin)
        bench = Bench(pg.new_database(admin), root)
        if args.caldav:
            caldav_round(bench, args, counts)
        t0 = time.perf_counter()
        names = bench.add_members(args.members, args.events, args.contacts)
        print(f"added {len(names)} vdir members ({args.events} events, {args.contacts} contacts each) "
              f"in {time.perf_counter() - t0:.1f} s")
        rate, cpu, _ = bench.round(names, max(counts))
        print(f"first passes (import), {max(counts)} workers: {rate:.0f} members/min, machine busy {cpu:.0%}")

        if not args.caldav:
            print("(a) no-change passes of every member:")
            scaling(bench, names, counts)

        print(f"(b) one member's pass, median of {args.repeats}:")
        lite = root / "single"
        files = make_member(lite, args.events, args.contacts, seed=0, ledger=True)
        sqlite_pass(lite / "config.toml")
        member_files = sorted((root / "members" / names[0] / "calendars").glob("*/*.ics"))
        from syncd import team

        procs = bench.workers(1)
        try:
            with team.Team(bench.team_config) as db:
                for label, changes in (("no change", 0), ("10 changes", 10)):
                    a: list[float] = []
                    b: list[float] = []
                    c: list[float] = []
                    for r in range(args.repeats):
                        for n, times in enumerate((a, b, c)):
                            if changes:
                                vb.touch(files if n == 0 else member_files, changes, seed=100 + 3 * r + n,
                                         contacts=args.contacts)
                            t0 = time.perf_counter()
                            if n == 0:
                                sqlite_pass(lite / "config.toml")
                            elif n == 1:
                                bench.one_through_worker(names[0])
                            else:
                                db.run_pass(names[0], bench.fernet)
                            times.append(time.perf_counter() - t0)
                    sa, sb, sc = statistics.median(a), statistics.median(b), statistics.median(c)
                    print(f"  {label:10}: syncd sync on SQLite {sa * 1000:6.1f} ms; through a worker "
                          f"{sb * 1000:6.1f} ms ({sb / sa:.2f} x); the same pass in-process on PostgreSQL "
                          f"{sc * 1000:6.1f} ms ({sc / sa:.2f} x)")
            whole = statistics.median(timed_sync(lite, None) for _ in range(args.repeats))
            print(f"  `syncd sync` as a command (interpreter start included), no change: {whole * 1000:.0f} ms")
        finally:
            bench.stop(procs)

        ref = args.baseline or subprocess.run(["git", "-C", str(ROOT), "merge-base", "HEAD", "main"],
                                              capture_output=True, text=True, check=True).stdout.strip()
        tree = baseline_tree(ref, root / "baseline")
        world = root / "single-user"
        vb.generate(world, 2000, 300, 1)
        timed_sync(world, None)
        now_t: list[float] = []
        base_t: list[float] = []
        for r in range(args.repeats):  # alternating which goes first: the first of a pair is slower
            for which in ((None, now_t), (str(tree), base_t))[:: 1 if r % 2 else -1]:
                which[1].append(timed_sync(world, which[0]))
        sn, sb = statistics.median(now_t), statistics.median(base_t)
        print(f"(c) single-user no-change `syncd sync` (2,000 events), median of {args.repeats}: "
              f"this tree {sn * 1000:.0f} ms, {ref[:10]} {sb * 1000:.0f} ms ({sn / sb:.2f} x)")
    finally:
        if cm:
            cm.__exit__(None, None, None)
    print(f"at {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
