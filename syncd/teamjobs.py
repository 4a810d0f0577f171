"""Passes as Procrastinate jobs (SPEC §9): one job is one member's pass.

- ``syncd.team.pass(member)`` runs ``Team.run_pass``; it is deferred with
  ``lock = queueing_lock = "member:<name>"``: Procrastinate never runs two jobs of one
  lock at once and never queues a second one while one waits. The pass itself also
  holds a PostgreSQL session lock of the member (``Team.pass_ledger``), so even a job
  taken over from a worker presumed dead cannot overlap a pass still running.
- ``syncd.team.tick`` runs every minute on whichever worker's periodic deferrer fires
  first (Procrastinate defers one job per tick for all workers): it hands the jobs of
  workers whose heartbeat stopped (killed, host lost) back to the queue, and enqueues
  every member whose ``next_run`` has come, moving ``next_run`` one interval on. A
  member whose pass is still queued is not queued again, so slow workers never make
  the queue grow.
- A pass that failed in a way a retry may fix is retried with exponential backoff and
  jitter (``Backoff``); the next tick does not add to it (its queueing lock).

A worker killed mid-pass loses nothing committed and writes nothing twice: the pass is
crash-safe like ``syncd sync`` (pending follow-ups, stable UIDs).

Public API: ``make_app``, ``enqueue_due``, ``recover_stalled``, ``run_worker``, ``Backoff``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import logging
import random
import threading
from typing import Any

import procrastinate
import psycopg
from procrastinate import exceptions as pexc
from procrastinate.jobs import Job
from procrastinate.retry import BaseRetryStrategy, RetryDecision

from syncd import errors
from syncd.team import PASS_TASK, Team, TeamConfig

log = logging.getLogger(__name__)

TICK_TASK = "syncd.team.tick"


class RetryablePass(Exception):
    """The pass failed in a way a later attempt may fix (the message says how)."""


class Backoff(BaseRetryStrategy):
    """Exponential backoff with full jitter: attempt n waits U(0.5, 1) x min(cap, base x 2^n)."""

    def __init__(self, max_attempts: int = 6, base: float = 15.0, cap: float = 3600.0) -> None:
        self.max_attempts, self.base, self.cap = max_attempts, base, cap

    def delay(self, attempts: int) -> float:
        """Seconds before the next attempt after ``attempts`` failed ones."""
        return random.uniform(0.5, 1.0) * min(self.cap, self.base * 2 ** attempts)

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if job.attempts + 1 >= self.max_attempts:
            return None
        if not isinstance(exception, (RetryablePass, psycopg.OperationalError)):
            return None
        return RetryDecision(retry_at=utcnow() + dt.timedelta(seconds=self.delay(job.attempts)))


def _lock(member: str) -> str:
    return f"member:{member}"


def make_app(team: TeamConfig, fernet: Any, *, tick_cron: str = "* * * * *",
             stalled_after: float = 30.0, backoff: Backoff | None = None) -> procrastinate.App:
    """The Procrastinate app of a team: its tasks, bound to the team database.

    Args:
        team: the team config; fernet: the team key.
        tick_cron: when the periodic enqueue runs (6 fields: seconds first... last).
        stalled_after: seconds without a heartbeat after which a worker is presumed dead.
        backoff: the retry strategy of passes.
    """
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=team.database, min_size=1, max_size=4))

    local = threading.local()  # each pass thread keeps its connection to the team tables

    def owner() -> Team:
        db: Team | None = getattr(local, "team", None)
        if db is None or db.conn.closed or db.conn.broken:
            db = local.team = Team(team)
        return db

    @app.task(name=PASS_TASK, retry=backoff or Backoff())
    def member_pass(member: str) -> None:
        try:
            result = owner().run_pass(member, fernet)
        except errors.TempFailError as exc:
            raise RetryablePass(str(exc)) from None
        except errors.SyncdError as exc:
            log.error("member %r: %s", member, errors.message(exc))
            return
        if result is None:
            return
        failures = [a.exc for a in result.accounts if a.exc is not None]
        if result.reconcile.exc is not None:
            failures.append(result.reconcile.exc)
        for failure in failures:
            log.warning("member %r: %s", member, errors.message(failure))
        if failures and any(errors.retry_may_help(e) for e in failures):
            raise RetryablePass(f"member {member!r}: {len(failures)} failures; retrying")

    @app.periodic(cron=tick_cron)
    @app.task(name=TICK_TASK, queueing_lock=TICK_TASK)
    async def tick(timestamp: int) -> None:
        await recover_stalled(app, stalled_after)
        await enqueue_due(app, team)

    return app


async def recover_stalled(app: procrastinate.App, stalled_after: float) -> int:
    """Hand the passes of dead workers back to the queue; how many."""
    n = 0
    for job in await app.job_manager.get_stalled_jobs(task_name=PASS_TASK, seconds_since_heartbeat=stalled_after):
        try:
            await app.job_manager.retry_job(job)
            n += 1
        except pexc.UniqueViolation:
            # A newer pass of the member already waits: this one is not needed.
            await app.job_manager.finish_job(job, status=procrastinate.jobs.Status.FAILED, delete_job=False)
        log.info("took back the pass of member %r from a worker that stopped", job.task_kwargs.get("member"))
    return n


async def enqueue_due(app: procrastinate.App, team: TeamConfig) -> list[str]:
    """Enqueue every member whose ``next_run`` has come; the names enqueued."""
    async with await psycopg.AsyncConnection.connect(team.database, autocommit=True) as conn:
        cur = await conn.execute(
            "UPDATE syncd_team.members SET next_run = now() + %s "
            "WHERE next_run IS NULL OR next_run <= now() RETURNING name", (team.interval,))
        names = sorted(r[0] for r in await cur.fetchall())
    task = app.tasks[PASS_TASK]
    queued = []
    for name in names:
        try:
            await task.configure(lock=_lock(name), queueing_lock=_lock(name)).defer_async(member=name)
            queued.append(name)
        except pexc.AlreadyEnqueued:
            pass  # its last pass is still waiting: one in the queue is enough
    return queued


def defer(app: procrastinate.App, member: str) -> bool:
    """Queue one pass of ``member`` now (unless one waits already)."""
    try:
        app.tasks[PASS_TASK].configure(lock=_lock(member), queueing_lock=_lock(member)).defer(member=member)
    except pexc.AlreadyEnqueued:
        return False
    return True


def run_worker(team: TeamConfig, fernet: Any, concurrency: int, heartbeat: float = 10.0,
               tick_cron: str = "* * * * *") -> None:
    """Take passes until SIGTERM/SIGINT; then let running passes finish, and return."""
    app = make_app(team, fernet, tick_cron=tick_cron, stalled_after=3 * heartbeat)

    async def main() -> None:
        # sync tasks run in the loop's default executor: one thread per concurrent pass
        asyncio.get_running_loop().set_default_executor(
            concurrent.futures.ThreadPoolExecutor(max_workers=concurrency + 1, thread_name_prefix="pass"))
        async with app.open_async():
            await recover_stalled(app, 3 * heartbeat)
            await app.run_worker_async(
                concurrency=concurrency, name="syncd-team",
                update_heartbeat_interval=heartbeat, stalled_worker_timeout=3 * heartbeat,
                delete_jobs="successful", install_signal_handlers=True,
            )

    asyncio.run(main())


def utcnow() -> dt.datetime:
    """Now, in UTC."""
    return dt.datetime.now(dt.timezone.utc)
