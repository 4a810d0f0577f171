"""The daemon's scheduling, backoff, reload and signals, with a fake engine and ledger.

These run in-process and fast; ``test_service.py`` runs the real ``syncd run``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from syncd import daemon as daemon_mod
from syncd.config import Account, Config
from syncd.daemon import Daemon
from syncd.errors import ConfigError, SecretUnavailable

from .conftest import NotifySocket

IV = dt.timedelta(minutes=15)


def make_config(*names: str, interval: dt.timedelta = IV, path: Path = Path("/tmp/x.toml"),
                options: dict[str, Any] | None = None) -> Config:
    return Config(
        path=path, me=frozenset(), timezone=dt.UTC, interval=interval,
        horizon=dt.timedelta(days=60), write_to=None, ledger=Path("/tmp/ledger.sqlite3"),
        accounts=tuple(Account(n, "vdir", dict(options or {})) for n in names),
    )


@dataclass
class FakeStatus:
    last_success: dt.datetime | None = None
    last_error: str | None = None
    last_error_at: dt.datetime | None = None
    next_attempt: dt.datetime | None = None
    failures: int = 0


@dataclass
class FakeLedger:
    statuses: dict[str, FakeStatus] = field(default_factory=dict)
    broken: bool = False

    def account_status(self, account: str) -> FakeStatus:
        if self.broken:
            raise OSError("disk gone")
        return self.statuses.setdefault(account, FakeStatus())

    def set_schedule(self, account: str, next_attempt: dt.datetime | None, failures: int) -> None:
        st = self.account_status(account)
        st.next_attempt, st.failures = next_attempt, failures


class FakeEngine:
    def __init__(self, behaviour: dict[str, Any]) -> None:
        self.behaviour = behaviour
        self.calls: list[str] = []
        self.reconciles = 0
        self.closed = False

    def sync_account(self, name: str) -> Any:
        self.calls.append(name)
        what = self.behaviour.get(name, "ok")
        if callable(what):
            what = what()
        if isinstance(what, BaseException):
            raise what
        if what == "ok":
            return SimpleNamespace(account=name, ok=True, error=None, changed=2)
        return SimpleNamespace(account=name, ok=False, error=what, changed=0)

    def reconcile(self) -> Any:
        self.reconciles += 1
        return SimpleNamespace(written=0, resolved=0, summary="0 follow-ups written")

    def close(self) -> None:
        self.closed = True


def build(cfg: Config, behaviour: dict[str, Any], ledger: FakeLedger | None = None,
          loader: Any = None) -> tuple[Daemon, FakeLedger, list[FakeEngine]]:
    ledger = ledger or FakeLedger()
    engines: list[FakeEngine] = []

    def make_engine(c: Config, led: Any, progress: Any) -> FakeEngine:
        engines.append(FakeEngine(behaviour))
        return engines[-1]

    d = Daemon(cfg, ledger, make_engine, load_config=loader or (lambda p: cfg), rng=random.Random(3))
    return d, ledger, engines


def due_now(d: Daemon, *names: str) -> None:
    for n in names:
        d.accounts[n].job.next_run = dt.datetime.now() - dt.timedelta(seconds=1)


def wait_of(ledger: FakeLedger, name: str) -> dt.timedelta:
    nxt = ledger.statuses[name].next_attempt
    assert nxt is not None
    return nxt - dt.datetime.now(dt.UTC)


def test_failing_account_backs_off_and_others_keep_their_interval() -> None:
    behaviour: dict[str, Any] = {"good": "ok", "bad": "connection refused"}
    d, ledger, engines = build(make_config("good", "bad"), behaviour)
    d._build_jobs()
    waits = []
    for _ in range(5):
        d.scheduler.run_pending()
        waits.append(wait_of(ledger, "bad"))
        assert IV * 0.85 < wait_of(ledger, "good") < IV * 1.15
        assert ledger.statuses["good"].failures == 0
        due_now(d, "good", "bad")
    assert [ledger.statuses["bad"].failures] == [5]
    assert waits[0] < IV * 1.15 and waits[4] > IV * 14  # 1, 1, 2, 4, 8, 16 x interval
    assert all(b > a for a, b in itertools.pairwise(waits[1:]))
    assert engines[0].reconciles == 10  # after every account pass
    behaviour["bad"] = "ok"  # the server is back
    d.scheduler.run_pending()
    assert ledger.statuses["bad"].failures == 0
    assert IV * 0.85 < wait_of(ledger, "bad") < IV * 1.15


def test_exceptions_are_caught_and_not_rerun_every_tick() -> None:
    d, ledger, engines = build(make_config("a", "b"), {"a": RuntimeError("bug"), "b": SecretUnavailable("keyring locked")})
    d._build_jobs()
    for _ in range(3):
        d.scheduler.run_pending()
    assert engines[0].calls == ["a", "b"]  # once each: their next run is in the future
    assert ledger.statuses["a"].failures == 1
    assert ledger.statuses["b"].failures == 1
    assert wait_of(ledger, "b") > IV * 0.85


def test_restart_respects_the_ledger() -> None:
    now = dt.datetime.now(dt.UTC)
    ledger = FakeLedger({
        "fresh": FakeStatus(last_success=now - dt.timedelta(minutes=5), next_attempt=now + dt.timedelta(minutes=10)),
        "stale": FakeStatus(last_success=now - dt.timedelta(hours=1), next_attempt=now + dt.timedelta(minutes=3)),
        "failing": FakeStatus(next_attempt=now + dt.timedelta(hours=2), failures=4),
        "new": FakeStatus(),
    })
    d, ledger, engines = build(make_config("fresh", "stale", "failing", "new"), {}, ledger)
    d._build_jobs()
    d.scheduler.run_pending()
    assert sorted(engines[0].calls) == ["new", "stale"]
    assert d.accounts["failing"].failures == 4
    job = d.accounts["failing"].job
    assert job.next_run is not None
    assert dt.timedelta(hours=1.9) < job.next_run - dt.datetime.now() < dt.timedelta(hours=2.1)


def test_reload_good_and_bad(notify_socket: NotifySocket) -> None:
    cfg = make_config("a", "b")
    state: dict[str, Any] = {"next": cfg}

    def loader(path: Path) -> Config:
        if isinstance(state["next"], Exception):
            raise state["next"]
        return state["next"]

    d, _, engines = build(cfg, {}, loader=loader)
    d._build_jobs()
    d.scheduler.run_pending()  # both synced; next in ~15 min
    state["next"] = ConfigError(cfg.path, "syncd.interval", "soon", "a duration like 15m")
    d._reload()
    assert d.cfg is cfg and d.engine is engines[0] and not engines[0].closed
    notify_socket.wait("READY", "1")
    notify_socket.wait("STATUS", where=lambda m: "reload refused" in m["STATUS"])
    # a good config: account b changed, c is new, a keeps its schedule
    state["next"] = dataclasses.replace(
        cfg, accounts=(cfg.accounts[0], Account("b", "vdir", {"x": 1}), Account("c", "vdir", {}))
    )
    d._reload()
    assert engines[0].closed and d.engine is engines[1]
    assert sorted(d.accounts) == ["a", "b", "c"]
    d.scheduler.run_pending()
    assert sorted(engines[1].calls) == ["b", "c"]
    notify_socket.wait("READY", "1", count=2)
    keys = [k for k in notify_socket.names() if k in ("RELOADING", "READY")]
    assert keys == ["RELOADING", "READY", "RELOADING", "READY"]


def test_watchdog_only_when_alive(notify_socket: NotifySocket) -> None:
    d, ledger, _ = build(make_config("a"), {})
    assert d._alive()
    ledger.broken = True
    assert not d._alive()


def _kill_later(sig: int, after: float) -> threading.Timer:
    t = threading.Timer(after, os.kill, (os.getpid(), sig))
    t.start()
    return t


def test_serve_stops_on_sigterm(notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    d, _, engines = build(make_config("a", "b"), {})
    before = signal.getsignal(signal.SIGTERM)
    _kill_later(signal.SIGTERM, 1.0)
    start = time.monotonic()
    assert d.serve() == 0
    assert time.monotonic() - start < 3
    assert sorted(engines[0].calls) == ["a", "b"]
    assert engines[0].closed
    notify_socket.wait("STOPPING", "1", timeout=2)
    assert len(notify_socket.seen("WATCHDOG", "1")) >= 2
    keys = notify_socket.names()
    assert keys.index("READY") < keys.index("STATUS") and keys[-1] == "STOPPING"
    assert signal.getsignal(signal.SIGTERM) is before


def test_sighup_in_serve(notify_socket: NotifySocket) -> None:
    d, _, engines = build(make_config("a"), {})
    _kill_later(signal.SIGHUP, 0.5)
    _kill_later(signal.SIGINT, 1.2)
    assert d.serve() == 0
    assert len(engines) == 2 and notify_socket.seen("RELOADING", "1")


def test_sigterm_interrupts_a_long_pass(notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon_mod, "STOP_GRACE", 0.5)

    def hang() -> str:
        for _ in range(600):
            time.sleep(0.05)
        return "ok"

    d, _, engines = build(make_config("slow", "next"), {"slow": hang})
    _kill_later(signal.SIGTERM, 0.5)
    start = time.monotonic()
    assert d.serve() == 0
    assert time.monotonic() - start < 3
    assert engines[0].calls == ["slow"]  # the next account was not started
    notify_socket.wait("STOPPING", "1", timeout=2)
    assert notify_socket.names()[-1] == "STOPPING"


def test_sigterm_lets_a_short_pass_finish(notify_socket: NotifySocket) -> None:
    def short() -> str:
        time.sleep(1.0)
        return "ok"

    d, ledger, engines = build(make_config("a", "b"), {"a": short})
    _kill_later(signal.SIGTERM, 0.3)
    assert d.serve() == 0
    assert engines[0].calls == ["a"]
    assert ledger.statuses["a"].failures == 0 and ledger.statuses["a"].next_attempt is not None


def test_reload_refuses_another_ledger(notify_socket: NotifySocket) -> None:
    cfg = make_config("a")
    moved = dataclasses.replace(cfg, ledger=Path("/tmp/elsewhere.sqlite3"))
    d, _, engines = build(cfg, {}, loader=lambda p: moved)
    d._build_jobs()
    d._reload()
    assert d.cfg is cfg and len(engines) == 1
    notify_socket.wait("STATUS", where=lambda m: "restart syncd to switch ledgers" in m["STATUS"])


def test_stop_skips_jobs_not_yet_started() -> None:
    d, ledger, engines = build(make_config("a", "b"), {})
    d._build_jobs()
    d.stop = True
    d.scheduler.run_pending()
    assert engines[0].calls == []
    assert ledger.statuses == {"a": FakeStatus(), "b": FakeStatus()}
