"""Workers on a real PostgreSQL: passes as Procrastinate jobs (SPEC §9).

Workers are real ``syncd team worker`` processes (``tests.team.shim`` only slows the
vdir sink and logs each pass), ticking every second and presuming a worker dead after
3 s without a heartbeat, so the tests take seconds rather than minutes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd import team as team_mod
from syncd import teamjobs
from tests.helpers import event, vcard
from tests.team.conftest import TeamWorld

ROOT = Path(__file__).resolve().parents[2]


class Workers:
    """Worker processes of one team, and the log of their passes."""

    def __init__(self, team: TeamWorld) -> None:
        self.team = team
        self.log = team.root / "passes.jsonl"
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, concurrency: int = 1, slow: float = 0.0) -> subprocess.Popen[str]:
        env = {**self.team.env(), "SYNCD_TEST_SLOW_PUT": str(slow), "SYNCD_TEST_PASS_LOG": str(self.log)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.team.shim", "--config", str(self.team.config), "team", "worker",
             "--concurrency", str(concurrency), "--heartbeat", "1", "--tick", "* * * * * *"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.procs.append(proc)
        return proc

    def passes(self) -> list[tuple[str, float, float, int]]:
        if not self.log.exists():
            return []
        return [tuple(json.loads(line)) for line in self.log.read_text().splitlines()]  # type: ignore[misc]

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


@pytest.fixture
def workers(team: TeamWorld) -> Iterator[Workers]:
    w = Workers(team)
    yield w
    w.stop_all()


def _until(check: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or check}")


def _config(team: TeamWorld) -> team_mod.TeamConfig:
    return team_mod.load_config(team.config)


def _defer(team: TeamWorld, *members: str) -> list[bool]:
    app = teamjobs.make_app(_config(team), None)
    with app.open():
        return [teamjobs.defer(app, m) for m in members]


def _member_with_meetings(team: TeamWorld, name: str, n: int) -> None:
    """A member whose first pass writes ``n`` first-meeting follow-ups."""
    w = team.member(name)
    for i in range(n):
        email = f"p{i}@{name}.example.org"
        w.add_contact(f"p{i}", vcard(f"Person {i} {name.title()}", email))
        w.add_event(f"e{i}", event(f"{name}-e{i}", f"202606{10 + i % 4}T1{i % 10}0000", f"Coffee {i}", [email]))


def _jobs(team: TeamWorld, status: str | None = None) -> list[tuple[Any, ...]]:
    rows = team.sql("SELECT args->>'member', status FROM procrastinate_jobs WHERE task_name = %s ORDER BY id",
                    (team_mod.PASS_TASK,))
    return [r for r in rows if status is None or r[1] == status]


def _last_success(team: TeamWorld, name: str) -> Any:
    rows = team.sql("SELECT last_success FROM syncd_team.members WHERE name = %s", (name,))
    return rows[0][0] if rows else None


def test_a_worker_passes_due_members_and_exits_0_on_sigterm(team: TeamWorld, workers: Workers) -> None:
    _member_with_meetings(team, "alice", 2)
    _member_with_meetings(team, "bruno", 2)
    proc = workers.start(concurrency=2)
    _until(lambda: _last_success(team, "alice") and _last_success(team, "bruno"), what="both members passed")
    status = team.json("status")
    assert all(m["next_run"] for m in status["members"])  # the tick set the next one an interval on
    assert len(team.worlds["alice"].task_files()) == 2
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert not _jobs(team, "doing")


def test_a_worker_killed_mid_pass_is_taken_over_without_duplicates(team: TeamWorld, workers: Workers) -> None:
    _member_with_meetings(team, "alice", 6)
    team.sql("UPDATE syncd_team.members SET next_run = now() + interval '1 day'")  # only the job we queue
    assert _defer(team, "alice") == [True]
    first = workers.start(slow=0.4)
    tasks = team.worlds["alice"].tasks
    _until(lambda: tasks.exists() and len(list(tasks.glob("*.ics"))) >= 2, what="the first follow-ups")
    first.send_signal(signal.SIGKILL)
    first.wait()
    written_before = len(list(tasks.glob("*.ics")))
    assert 2 <= written_before < 6 and _jobs(team) == [("alice", "doing")]
    second = workers.start()
    _until(lambda: not _jobs(team, "doing") and not _jobs(team, "todo"), what="the job to be done")
    _until(lambda: _last_success(team, "alice"), what="alice's pass")
    files = team.worlds["alice"].task_files()
    uids = [line for text in files.values() for line in text.splitlines() if line.startswith("UID:")]
    assert len(files) == 6 and len(set(uids)) == 6
    assert sorted(t["uid"] for t in team.json("tasks", "alice")) == sorted(u[4:] for u in uids)
    assert any(pid == second.pid for _, _, _, pid in workers.passes())


def test_two_workers_never_run_the_same_member_at_once(team: TeamWorld, workers: Workers) -> None:
    names = ["alice", "bruno", "carla"]
    for name in names:
        _member_with_meetings(team, name, 3)
    team.sql("UPDATE syncd_team.members SET next_run = now() + interval '1 day'")
    workers.start(concurrency=2, slow=0.2)
    workers.start(concurrency=2, slow=0.2)
    # while a pass of a member runs, one more waits (its queueing lock refuses a third)
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        _defer(team, *names)
        time.sleep(0.2)
    _until(lambda: not _jobs(team, "todo") and not _jobs(team, "doing"), what="the queue to drain")
    passes = workers.passes()
    assert len(passes) >= 6
    for name in names:
        mine = sorted((s, e) for ledger, s, e, _ in passes if ledger == f"postgresql:{name}")
        assert mine, name
        for (_, end), (start, _) in itertools.pairwise(mine):
            assert start >= end, f"two passes of {name} overlapped"
        assert len(team.worlds[name].task_files()) == 3
    # with the workers idle, a pass by hand is just another pass, and adds nothing
    team.run("sync", "alice")
    assert len(team.worlds["alice"].task_files()) == 3


def test_a_pass_of_a_member_in_a_pass_is_refused_for_now(team: TeamWorld, workers: Workers) -> None:
    _member_with_meetings(team, "alice", 4)
    team.sql("UPDATE syncd_team.members SET next_run = now() + interval '1 day'")
    _defer(team, "alice")
    workers.start(slow=0.5)
    tasks = team.worlds["alice"].tasks
    _until(lambda: tasks.exists() and list(tasks.glob("*.ics")), what="the pass to write")
    proc = team.run("sync", "alice", check=False)
    assert proc.returncode == 75 and "already in a pass" in proc.stderr


def test_a_member_removed_mid_queue(team: TeamWorld, workers: Workers) -> None:
    _member_with_meetings(team, "alice", 1)
    _member_with_meetings(team, "bruno", 1)
    team.sql("UPDATE syncd_team.members SET next_run = now() + interval '1 day'")
    assert _defer(team, "alice", "bruno", "ghost") == [True, True, True]
    team.run("remove", "alice")
    assert [r[0] for r in _jobs(team)] == ["bruno", "ghost"]  # alice's queued job went with her
    workers.start()
    _until(lambda: _last_success(team, "bruno"), what="bruno's pass")
    _until(lambda: not _jobs(team), what="every job done")  # a job of a member gone ends quietly
    assert not team.worlds["alice"].tasks.exists()
    assert team.sql("SELECT count(*) FROM procrastinate_jobs WHERE args->>'member' = 'alice'") == [(0,)]


def test_the_periodic_enqueue_does_not_pile_up_jobs(team: TeamWorld) -> None:
    for name in ("alice", "bruno"):
        team.member(name)
    cfg = _config(team)
    app = teamjobs.make_app(cfg, None)

    async def ticks() -> list[list[str]]:
        async with app.open_async():
            out = []
            for _ in range(5):  # five intervals go by and no worker takes anything
                team.sql("UPDATE syncd_team.members SET next_run = now() - interval '1 second'")
                out.append(await teamjobs.enqueue_due(app, cfg))
            return out

    rounds = asyncio.run(ticks())
    assert rounds[0] == ["alice", "bruno"] and rounds[1:] == [[]] * 4
    assert sorted(_jobs(team, "todo")) == [("alice", "todo"), ("bruno", "todo")]
    status = team.json("status")
    assert status["queue"]["waiting"] == 2 and status["queue"]["oldest_waiting_s"] >= 0
    assert all(dt.datetime.fromisoformat(m["next_run"].replace("Z", "+00:00")) > dt.datetime.now(dt.timezone.utc)
               for m in status["members"])


def test_backoff_grows_exponentially_with_jitter_and_gives_up() -> None:
    backoff = teamjobs.Backoff(max_attempts=4, base=10, cap=60)
    for attempts, top in [(0, 10), (1, 20), (2, 40), (3, 60), (8, 60)]:
        waits = {round(backoff.delay(attempts), 3) for _ in range(50)}
        assert all(top / 2 <= w <= top for w in waits) and len(waits) > 1

    class Job:
        def __init__(self, attempts: int) -> None:
            self.attempts = attempts

    retry = teamjobs.RetryablePass("down")
    assert backoff.get_retry_decision(exception=retry, job=Job(0)) is not None  # type: ignore[arg-type]
    assert backoff.get_retry_decision(exception=retry, job=Job(3)) is None  # type: ignore[arg-type]
    assert backoff.get_retry_decision(exception=ValueError("bug"), job=Job(0)) is None  # type: ignore[arg-type]


def test_removing_a_member_whose_worker_died_mid_pass(team: TeamWorld, workers: Workers) -> None:
    _member_with_meetings(team, "alice", 4)
    team.sql("UPDATE syncd_team.members SET next_run = now() + interval '1 day'")
    _defer(team, "alice")
    first = workers.start(slow=0.5)
    tasks = team.worlds["alice"].tasks
    _until(lambda: tasks.exists() and list(tasks.glob("*.ics")), what="the pass to write")
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert _jobs(team) == [("alice", "doing")]
    with team_mod.Team(_config(team)) as db:
        db.remove("alice", settle=0.5)  # the dead pass's session lock is gone with its connection
    assert not _jobs(team) and team.json("members") == []


def test_sigterm_mid_pass_lets_the_pass_finish_then_exits_0(team: TeamWorld, workers: Workers) -> None:
    _member_with_meetings(team, "alice", 4)
    team.sql("UPDATE syncd_team.members SET next_run = now() + interval '1 day'")
    _defer(team, "alice")
    proc = workers.start(slow=0.3)
    tasks = team.worlds["alice"].tasks
    _until(lambda: tasks.exists() and list(tasks.glob("*.ics")), what="the pass to write")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert len(team.worlds["alice"].task_files()) == 4 and _last_success(team, "alice")
    assert not _jobs(team)
