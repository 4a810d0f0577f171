"""``syncd run``: the daemon. An incremental pass per account every ``interval``.

Life cycle (SPEC §6): load the config (a bad one: exit 78, nothing done), take the
ledger's lock (held elsewhere: exit 75, naming the holder), open the ledger, then
``READY=1``. Each account has its own job on a private ``schedule.Scheduler``; after
an account's pass the engine reconciles follow-ups (write-back to ``write_to``) and
``STATUS=`` shows a one-line summary.

Scheduling: a healthy account runs every ``interval`` ± 10 %; a failing one (down,
bad credentials, a locked keyring) backs off exponentially with jitter, from
``interval`` up to 6 h, and is back to ``interval`` after its next success
(``next_delay``). One account's failure never moves another's schedule. The schedule
lives in the ledger (``set_schedule``), so after a restart an account syncs at once
when its last success is older than ``interval`` or its ``next_attempt`` has passed,
and waits otherwise (``initial_delay``): a crash loop cannot hammer a server.

Signals: SIGTERM/SIGINT stop between steps; a pass still running after
``STOP_GRACE`` seconds is interrupted (its open SQLite transaction is rolled back
when the ledger closes), so the process exits 0 within 10 s after ``STOPPING=1``.
SIGHUP reloads the config (``RELOADING=1`` ... ``READY=1``): a bad new config is
refused with an error and the old one keeps running. The watchdog (``WATCHDOG=1``,
at half ``WatchdogSec``) is fed from the main loop, only while the ledger answers.

Public API: ``run``, ``Daemon``, ``next_delay``, ``initial_delay``.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import select
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import schedule

from syncd import clock, config, lock, notify, paths
from syncd import log as logsetup
from syncd.config import Config
from syncd.errors import EX_OK, EX_TEMPFAIL, LockedError, SyncdError
from syncd.stop import STOP_GRACE
from syncd.stop import Interrupted as Interrupted
from syncd.stop import Interrupted as _Interrupted
from syncd.stop import StopGuard as StopGuard

log = logging.getLogger(__name__)

MIN_INTERVAL = dt.timedelta(minutes=1)
BACKOFF_CAP = dt.timedelta(hours=6)
JITTER = 0.10
#: the main loop never sleeps longer than this (signals also wake it at once)
TICK = 1.0


# -- what the daemon needs of the ledger and the engine ------------------------------


class AccountStatusLike(Protocol):
    last_success: dt.datetime | None
    next_attempt: dt.datetime | None
    failures: int


class LedgerLike(Protocol):
    def account_status(self, account: str) -> Any: ...
    def set_schedule(self, account: str, next_attempt: dt.datetime | None, failures: int) -> None: ...


Progress = Callable[[str, str, int, "int | None"], None]


class EngineLike(Protocol):
    def sync_account(self, name: str) -> Any: ...
    def reconcile(self) -> Any: ...
    def close(self) -> None: ...


# -- scheduling math (pure) ----------------------------------------------------------


def next_delay(failures: int, interval: dt.timedelta, rng: random.Random) -> dt.timedelta:
    """The wait before an account's next pass.

    ``failures`` is the number of failed passes in a row (0: the last one succeeded).
    The base is ``interval`` (at least a minute); failure n waits base * 2**(n-1),
    capped at 6 h (or at ``interval`` if that is longer). Every delay gets ±10 %
    jitter so that accounts and restarts do not fall into lockstep.
    """
    base = max(interval, MIN_INTERVAL).total_seconds()
    exponent = min(max(failures - 1, 0), 32)
    seconds = max(base, min(BACKOFF_CAP.total_seconds(), base * 2**exponent))
    return dt.timedelta(seconds=seconds * rng.uniform(1 - JITTER, 1 + JITTER))


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def initial_delay(status: AccountStatusLike | None, interval: dt.timedelta, now: dt.datetime) -> dt.timedelta:
    """How long after start an account waits for its first pass, from the ledger.

    At once when it never synced, when its ``next_attempt`` has passed, or (healthy
    accounts) when its last success is older than ``interval``; otherwise the rest
    of the wait. A failing account keeps its backoff across restarts. Times the
    ledger holds in the future (the clock went back since) never stretch the wait
    past ``interval`` (healthy) or the backoff cap (failing).
    """
    zero = dt.timedelta(0)
    if status is None:
        return zero
    nxt, last = _aware(status.next_attempt), _aware(status.last_success)
    if nxt is not None and nxt <= now:
        return zero
    interval = max(interval, MIN_INTERVAL)
    # A clock that jumped back leaves times in the future: no wait is ever longer than
    # the longest delay ``next_delay`` can give, and a last success in the future
    # counts as "just now", so the next pass comes at the interval, not hours later.
    longest = max(BACKOFF_CAP, interval) * (1 + JITTER)
    if status.failures > 0:
        return min(nxt - now, longest) if nxt is not None else zero
    if last is None or now - last >= interval:
        return zero
    remaining = interval - max(now - last, zero)
    return min(remaining, nxt - now) if nxt is not None else remaining


def human(delta: dt.timedelta) -> str:
    """'4m 30s', '2h 5m', '45s'."""
    total = max(int(delta.total_seconds()), 0)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h {m}m" if m else f"{h}h"
    if m:
        return f"{m}m {s}s" if s else f"{m}m"
    return f"{s}s"


# -- the daemon ----------------------------------------------------------------------


class _Fatal(Exception):
    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class _Account:
    name: str
    job: schedule.Job
    failures: int = 0


class Daemon:
    """The main loop, its scheduler, its signals. ``serve()`` returns the exit code.

    Args:
        cfg: the validated config.
        ledger: the open ledger (the caller holds its lock and closes it).
        make_engine: builds an engine for a config (called again on each reload); its
            third argument is a progress callback ``(account, collection, count, total)``
            that feeds the watchdog while a long pass makes progress.
        load_config: reads the config again on SIGHUP.
        rng: jitter source (seeded in tests).
    """

    def __init__(
        self,
        cfg: Config,
        ledger: LedgerLike,
        make_engine: Callable[[Config, LedgerLike, Progress], EngineLike],
        load_config: Callable[[Path], Config] = config.load,
        rng: random.Random | None = None,
    ) -> None:
        self.cfg = cfg
        self.ledger = ledger
        self.make_engine = make_engine
        self.load_config = load_config
        self.rng = rng or random.Random()
        self._wd = notify.watchdog_interval()
        self._next_wd = time.monotonic()
        self.engine = make_engine(cfg, ledger, self._on_progress)
        self.scheduler = schedule.Scheduler()
        self.accounts: dict[str, _Account] = {}
        self.stop = False
        self.reload_requested = False
        self.busy = False
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._old_handlers: dict[int, Any] = {}
        self._old_wakeup = -1

    # -- signals ---------------------------------------------------------------------
    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        if self.stop and self.busy:
            raise _Interrupted  # a second signal: do not wait for the grace period
        self.stop = True
        if self.busy:
            signal.setitimer(signal.ITIMER_REAL, STOP_GRACE)

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if self.stop and self.busy:
            raise _Interrupted

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self.reload_requested = True

    def _install_signals(self) -> None:
        handlers = {
            signal.SIGTERM: self._on_stop,
            signal.SIGINT: self._on_stop,
            signal.SIGHUP: self._on_hup,
            signal.SIGALRM: self._on_alarm,
        }
        for sig, handler in handlers.items():
            self._old_handlers[sig] = signal.signal(sig, handler)
        r, w = socket.socketpair()
        r.setblocking(False)
        w.setblocking(False)
        self._wake_r, self._wake_w = r, w
        self._old_wakeup = signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)

    def _restore_signals(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.set_wakeup_fd(self._old_wakeup)
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        self._wake_r = self._wake_w = None

    def _sleep(self, seconds: float) -> None:
        """Sleep up to ``seconds``; a signal wakes us at once."""
        if self._wake_r is None:
            time.sleep(max(seconds, 0))
            return
        ready, _, _ = select.select([self._wake_r], [], [], max(seconds, 0))
        if ready:
            try:
                while self._wake_r.recv(512):
                    pass
            except BlockingIOError:
                pass

    # -- jobs ------------------------------------------------------------------------
    def _schedule(self, name: str, delay: dt.timedelta, failures: int) -> None:
        seconds = max(round(delay.total_seconds()), 0)
        job = self.scheduler.every(max(seconds, 1)).seconds.do(self._job, name)
        job.next_run = dt.datetime.now() + dt.timedelta(seconds=seconds)
        self.accounts[name] = _Account(name, job, failures)
        when = "now" if seconds == 0 else f"in {human(delay)}"
        log.info("account %s: next pass %s", name, when)

    def _build_jobs(self, at_once: set[str] | None = None) -> None:
        """One job per account; ``at_once``: accounts to sync now whatever the ledger says."""
        keep = {n: a for n, a in self.accounts.items()}
        self.scheduler.clear()
        self.accounts = {}
        now = clock.now()
        for acc in self.cfg.accounts:
            old = keep.get(acc.name)
            if old is not None and acc.name not in (at_once or set()) and old.job.next_run:
                delay = old.job.next_run - dt.datetime.now()
                self._schedule(acc.name, max(delay, dt.timedelta(0)), old.failures)
                continue
            status = self._status(acc.name)
            if at_once and acc.name in at_once:
                delay = dt.timedelta(0)
            else:
                delay = initial_delay(status, self.cfg.interval, now)
            self._schedule(acc.name, delay, getattr(status, "failures", 0) or 0)

    def _status(self, name: str) -> Any:
        try:
            return self.ledger.account_status(name)
        except Exception as exc:  # an unknown account, a fresh ledger
            log.debug("account %s: no schedule in the ledger (%s)", name, exc)
            return None

    def _job(self, name: str) -> None:
        """One account's pass; never raises an ``Exception`` (schedule would rerun it each tick)."""
        acc = self.accounts[name]
        if self.stop:
            return
        try:
            self._pass(acc)
        except (_Fatal, _Interrupted):
            raise
        except Exception:
            log.exception("account %s: the pass failed unexpectedly", name)
            self._reschedule(acc, ok=False, note="unexpected error")

    def _pass(self, acc: _Account) -> None:
        self.busy = True
        try:
            ok, note = self._sync(acc.name)
            self._reschedule(acc, ok, note)
            if not self.stop:
                self._reconcile()
        finally:
            self.busy = False
            if self.stop:
                signal.setitimer(signal.ITIMER_REAL, 0)
        self._status_line(acc, ok, note)

    def _sync(self, name: str) -> tuple[bool, str]:
        try:
            result = self.engine.sync_account(name)
        except LockedError as exc:
            raise _Fatal(EX_TEMPFAIL, str(exc)) from exc
        except SyncdError as exc:  # a locked keyring, an unreachable server: back off
            log.warning("account %s: %s", name, exc)
            return False, str(exc)
        if getattr(result, "ok", False):
            changed = getattr(result, "changed", 0)
            log.info("account %s: synced, %d changed", name, changed)
            return True, f"{changed} changed"
        error = getattr(result, "error", None) or "failed"
        log.debug("account %s: pass failed: %s", name, error)  # the engine logged it
        return False, error

    def _reschedule(self, acc: _Account, ok: bool, note: str) -> None:
        acc.failures = 0 if ok else acc.failures + 1
        delay = next_delay(acc.failures, self.cfg.interval, self.rng)
        acc.job.interval = max(round(delay.total_seconds()), 1)
        acc.job.latest = None
        try:
            self.ledger.set_schedule(acc.name, clock.now() + delay, acc.failures)
        except Exception as exc:
            log.warning("account %s: could not save its schedule: %s", acc.name, exc)
        if not ok:
            log.info("account %s: failure %d in a row; retry in %s", acc.name, acc.failures, human(delay))
        self._last_delay = delay

    def _reconcile(self) -> None:
        try:
            result = self.engine.reconcile()
        except LockedError as exc:
            raise _Fatal(EX_TEMPFAIL, str(exc)) from exc
        except Exception as exc:
            log.warning("follow-ups: write-back failed: %s", exc, exc_info=log.isEnabledFor(logging.DEBUG))
            self._summary = "follow-ups: write-back failed"
            return
        self._summary = str(getattr(result, "summary", "") or "")
        if self._summary:
            log.info("follow-ups: %s", self._summary)

    _summary = ""
    _last_delay = dt.timedelta(0)

    def _status_line(self, acc: _Account, ok: bool, note: str) -> None:
        failing = sum(1 for a in self.accounts.values() if a.failures)
        head = f"{acc.name}: ok ({note})" if ok else f"{acc.name}: failed ({note})"
        parts = [head, f"next in {human(self._last_delay)}"]
        if self._summary:
            parts.append(self._summary)
        if failing:
            parts.append(f"{failing}/{len(self.accounts)} accounts failing")
        notify.status("; ".join(parts))

    # -- reload ----------------------------------------------------------------------
    def _reload(self) -> None:
        self.reload_requested = False
        notify.reloading()
        log.info("SIGHUP: reloading %s", self.cfg.path)
        try:
            new = self.load_config(self.cfg.path)
            if _resolved(new.ledger) != _resolved(self.cfg.ledger):
                raise SyncdError(
                    f"syncd.ledger changed ({self.cfg.ledger} -> {new.ledger}); "
                    "restart syncd to switch ledgers"
                )
            engine = self.make_engine(new, self.ledger, self._on_progress)
        except Exception as exc:
            log.error("reload refused, the running config stays: %s", exc)
            notify.ready()
            notify.status(f"reload refused: {exc}")
            return
        old_accounts = {a.name: a for a in self.cfg.accounts}
        changed = {a.name for a in new.accounts if old_accounts.get(a.name) != a}
        if new.interval != self.cfg.interval:
            changed |= {a.name for a in new.accounts}
        try:
            self.engine.close()
        except Exception as exc:
            log.debug("closing the old engine: %s", exc)
        self.cfg, self.engine = new, engine
        self._build_jobs(at_once=changed)
        log.info("config reloaded: %d accounts", len(new.accounts))
        notify.ready()
        notify.status(f"reloaded: {len(new.accounts)} accounts, interval {human(new.interval)}")

    # -- liveness --------------------------------------------------------------------
    def _on_progress(self, account: str, collection: str, count: int, total: int | None = None) -> None:
        """The engine applied a batch: proof of life during a long pass."""
        log.debug("account %s: %s: %d objects", account, collection, count)
        self._feed_watchdog(checked=True)

    def _feed_watchdog(self, checked: bool = False) -> None:
        """WATCHDOG=1 at half the timeout, after a liveness check (``checked``: done)."""
        if not self._wd or time.monotonic() < self._next_wd:
            return
        if checked or self._alive():
            notify.watchdog()
        self._next_wd = time.monotonic() + self._wd / 2

    def _alive(self) -> bool:
        """The ledger answers (a read); the loop itself is ticking, or we'd not be here."""
        if not self.cfg.accounts:
            return True
        try:
            self.ledger.account_status(self.cfg.accounts[0].name)
        except Exception as exc:
            log.error("liveness check failed, not feeding the watchdog: %s", exc)
            return False
        return True

    def _clamp_jobs(self) -> None:
        """After the wall clock went back, no job waits longer than its own delay.

        ``schedule`` keeps ``next_run`` in wall-clock time; a clock set back by hours
        would otherwise postpone every pass by as much.
        """
        now = dt.datetime.now()
        for acc in self.accounts.values():
            job = acc.job
            longest = dt.timedelta(seconds=int(job.interval) + 1)
            if job.next_run is not None and job.next_run - now > longest:
                log.warning("account %s: the clock went back; next pass in %s", acc.name,
                            human(dt.timedelta(seconds=int(job.interval))))
                job.next_run = now + dt.timedelta(seconds=int(job.interval))

    # -- main loop -------------------------------------------------------------------
    def serve(self) -> int:
        """Run until SIGTERM/SIGINT; the exit code."""
        self._install_signals()
        try:
            return self._loop()
        finally:
            notify.stopping()
            self._restore_signals()
            try:
                self.engine.close()
            except Exception as exc:
                log.debug("closing the engine: %s", exc)

    def _loop(self) -> int:
        self._build_jobs()
        notify.ready()
        notify.status(f"ready: {len(self.cfg.accounts)} accounts, interval {human(self.cfg.interval)}")
        log.info("syncd running: %d accounts, interval %s", len(self.cfg.accounts), human(self.cfg.interval))
        try:
            while not self.stop:
                self._feed_watchdog()
                if self.reload_requested:
                    self._reload()
                self._clamp_jobs()
                self.scheduler.run_pending()
                idle = self.scheduler.idle_seconds
                timeout = TICK if idle is None else min(TICK, max(idle, 0.0))
                if self._wd:
                    timeout = min(timeout, max(self._next_wd - time.monotonic(), 0.0))
                if not self.stop and not self.reload_requested:
                    self._sleep(timeout)
        except _Interrupted:
            log.warning("stopped in the middle of a pass; its uncommitted step is rolled back")
        except _Fatal as exc:
            log.error("%s", exc)
            return exc.exit_code
        log.info("stopping")
        return EX_OK


def _resolved(path: Path) -> Path:
    return Path(path).expanduser().resolve()


def run(config_path: Path | None, verbosity: int = 0) -> int:
    """``syncd run``: the daemon. Returns the exit code (SPEC §2).

    78: bad config (nothing done); 75: the ledger is locked by another instance;
    69: a component is missing; 0 after SIGTERM.
    """
    logsetup.setup(verbosity)
    try:
        cfg = config.load(config_path)
    except SyncdError as exc:
        log.error("%s", exc)
        return exc.exit_code
    from syncd.engine import Engine
    from syncd.ledger import Ledger

    try:
        held = lock.acquire(cfg.ledger, "syncd run")
    except LockedError as exc:
        log.error("%s", exc)
        return exc.exit_code
    try:
        ledger = Ledger.open(cfg.ledger)
        try:
            cache = paths.cache_dir()
            daemon = Daemon(cfg, ledger, lambda c, led, progress: Engine(c, led, progress=progress,  # type: ignore[arg-type]
                                                                         cache=cache))
            return daemon.serve()
        finally:
            ledger.close()
    except SyncdError as exc:
        log.error("%s", exc)
        return exc.exit_code
    finally:
        held.release()


# -- one-shot commands ---------------------------------------------------------------
# ``StopGuard`` and ``Interrupted`` live in ``syncd.stop`` (imported above), which a
# one-shot command loads without the daemon's sockets and scheduler.
