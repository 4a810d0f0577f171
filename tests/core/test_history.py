"""The follow-up history as the rules read it: each person's rows are found by their ids
and addresses (``rules.History``), never by reading every row again for each person.

Years of closed follow-ups pile up in the ledger; a plan of everyone (a new day, a
changed config) that filtered all of them for each person grew with people times rows.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd import ledger as L
from syncd import rules
from syncd.ledger import FollowupRow, Ledger
from syncd.model import Person
from tests.helpers import World, event, vcard

IDS = ["p1", "p2", "p3", "p4"]
EMAILS = ["a@x.org", "b@x.org", "c@x.org", "d@x.org"]


def _row(i: int, person: str, emails: list[str], rule: str) -> FollowupRow:
    day = dt.date(2024, 1, 1) + dt.timedelta(days=i)
    return FollowupRow(uid=f"u{i}", rule=rule, key=f"{rule}:{person}:{i}", person=person, name=person,
                       emails=emails, cycle=str(i), due=day, summary="s", reason="r", account="files",
                       state="done", written_on=day)


rows_st = st.lists(st.tuples(st.sampled_from(IDS), st.lists(st.sampled_from(EMAILS), max_size=3),
                             st.sampled_from([rules.KEEP_IN_TOUCH, rules.FIRST_MEETING])), max_size=25)
person_st = st.builds(
    lambda key, emails, aliases: Person(key, key, emails, aliases=frozenset(aliases) | {key} if aliases else frozenset()),
    st.sampled_from(IDS), st.lists(st.sampled_from(EMAILS), max_size=3), st.lists(st.sampled_from(IDS), max_size=3))


@settings(max_examples=300, deadline=None)
@given(rows=rows_st, person=person_st, ids=st.sets(st.sampled_from(IDS)))
def test_a_persons_rows_are_the_rows_that_name_them_in_the_ledgers_order(
        rows: list[tuple[str, list[str], str]], person: Person, ids: set[str]) -> None:
    """With stable ids, a follow-up is P's when its person is an id P stands for (SPEC
    §4); without, when it names P's key or any of P's addresses."""
    history = [_row(i, pid, emails, rule) for i, (pid, emails, rule) in enumerate(rows)]
    index = rules.History(history)
    if person.aliases:
        expected = [r for r in history if r.person in person.aliases]
    else:
        expected = [r for r in history if r.person == person.key or set(person.emails) & set(r.emails)]
    assert index.of(person) == expected
    assert index.of_ids(ids) == [r for r in history if r.person in ids]
    assert list(index) == history and len(index) == len(history)


class Counted(FollowupRow):
    """A follow-up row that counts how often anything asks whose it is."""

    reads = 0

    def __getattribute__(self, name: str) -> Any:
        if name in ("person", "emails"):
            Counted.reads += 1
        return super().__getattribute__(name)


def counted(rows: list[FollowupRow]) -> list[FollowupRow]:
    return [Counted(**vars(r)) for r in rows]


def _everyone(n: int) -> list[Person]:
    return [Person(f"p{i}", f"P{i}", [f"p{i}@x.org"], groups=["Friends"], in_address_book=True,
                   aliases=frozenset({f"p{i}"})) for i in range(n)]


def test_a_plan_reads_the_history_as_often_for_fifty_people_as_for_five() -> None:
    """200 closed catch-ups, shared out among 5 people or among 50: planning everyone
    reads whose each row is as often either way (it read all of them again for
    each person)."""
    s = rules.RuleSettings(cadences={"Friends": dt.timedelta(days=30)})
    reads = {}
    for n in (5, 50):
        history = counted([_row(i, f"p{i % n}", [f"p{i % n}@x.org"], rules.KEEP_IN_TOUCH) for i in range(200)])
        Counted.reads = 0
        plan = rules.plan(_everyone(n), history, s, dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC))
        assert plan.new  # everyone's last catch-up was done long ago
        reads[n] = Counted.reads
    assert reads[50] <= reads[5] * 1.1, reads


def test_a_new_days_pass_reads_the_history_as_often_for_many_people_as_for_few(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through a pass: a new day plans everyone again and stores each one's due date.
    With 60 closed follow-ups in the ledger, 30 people read whose each row is about
    as often as 3 people do."""
    from syncd import config
    from syncd.engine import Engine

    followups = Ledger.followups
    monkeypatch.setattr(Ledger, "followups", lambda self, *a, **k: counted(followups(self, *a, **k)))
    reads = {}
    for n in (3, 30):
        world = World(tmp_path / str(n))
        for i in range(n):
            world.add_contact(f"c{i}", vcard(f"Friend {i}", f"f{i}@example.com", groups="Friends"))
            world.add_event(f"e{i}", event(f"e{i}", f"202605{1 + i % 28:02d}T100000", "Lunch", [f"f{i}@example.com"]))
        world.run("sync", now="2026-06-15T10:00:00Z")
        cfg = config.load(world.config)
        ledger = Ledger.open(cfg.ledger)
        with ledger.transaction():
            for i in range(60):
                ledger.put_followup(_row(i, f"gone{i}", [f"gone{i}@example.com"], rules.KEEP_IN_TOUCH))
        engine = Engine(cfg, ledger, now=lambda: dt.datetime(2026, 6, 16, 10, tzinfo=dt.UTC))  # a new day
        Counted.reads = 0
        try:
            assert engine.run_pass().ok
        finally:
            engine.close()
            ledger.close()
        reads[n] = Counted.reads
    assert reads[30] <= reads[3] * 1.2, reads


def test_a_pass_after_an_edit_counts_the_catch_ups_written_today_for_others(tmp_path: Path) -> None:
    """A pass after an edit plans only the people it touched, from their follow-ups,
    the open ones and this week's: the daily limit still counts the catch-ups written
    earlier today for people it did not touch, done ones too."""
    world = World(tmp_path)
    world.write_config(daily_limit=2)
    for i, name in enumerate(["Ana", "Bea", "Cora"]):
        world.add_contact(name, vcard(f"{name} Lima", f"{name.lower()}@example.com", groups="Friends"))
        world.add_event(f"e{i}", event(f"e{i}", f"2026030{i + 1}T100000", "Lunch", [f"{name.lower()}@example.com"]))

    def catch_ups(now: str) -> set[str]:
        return {t["person"] for t in world.tasks_json(now=now) if t["rule"] == rules.KEEP_IN_TOUCH}

    world.run("sync", now="2026-06-15T10:00:00Z")
    assert catch_ups("2026-06-15T10:00:00Z") == {"Ana Lima", "Bea Lima"}  # the limit: Cora waits
    [(name, text)] = [(n, t) for n, t in world.task_files().items() if "Ana Lima" in t]
    (world.tasks / name).write_text(text.replace(
        "STATUS:NEEDS-ACTION", "STATUS:COMPLETED\r\nCOMPLETED:20260615T081000Z"), newline="")
    world.run("sync", now="2026-06-15T10:15:00Z")  # Ana's is done: she is not due any more
    assert {t["person"]: t["state"] for t in world.tasks_json(now="2026-06-15T10:15:00Z")}["Ana Lima"] == "done"
    world.add_contact("Cora", vcard("Cora Lima-Stone", "cora@example.com", groups="Friends"))
    world.run("sync", now="2026-06-15T10:30:00Z")  # Cora alone is planned again
    assert catch_ups("2026-06-15T10:30:00Z") == {"Ana Lima", "Bea Lima"}
    world.run("sync", now="2026-06-16T10:00:00Z")  # the next day has room for her
    assert catch_ups("2026-06-16T10:00:00Z") == {"Ana Lima", "Bea Lima", "Cora Lima-Stone"}


STATES = ["pending", "open", "done", "dismissed", "resolved"]
stored_st = st.lists(st.tuples(st.sampled_from(IDS), st.sampled_from(STATES), st.integers(0, 20)), max_size=30)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stored=stored_st, ids=st.sets(st.sampled_from(IDS)), since=st.integers(0, 21))
def test_the_follow_ups_a_plan_of_a_few_reads_are_theirs_the_open_ones_and_the_recent_ones(
        tmp_path_factory: pytest.TempPathFactory, stored: list[tuple[str, str, int]], ids: set[str],
        since: int) -> None:
    """``Ledger.followups_for``: every row of ``ids``, every pending or open one, and
    every one written on ``since`` or later, in the order of ``followups``; for more ids
    than it looks up at once, every row."""
    ledger = Ledger.open(tmp_path_factory.mktemp("l") / "ledger.sqlite3")
    try:
        day0 = dt.date(2026, 5, 1)
        with ledger.transaction():
            for i, (pid, state, written) in enumerate(stored):
                ledger.put_followup(FollowupRow(
                    uid=f"u{i}", rule=rules.KEEP_IN_TOUCH, key=f"k{i}", person=pid, name=pid.upper(), emails=[],
                    cycle=str(i), due=day0 + dt.timedelta(days=(i * 7) % 30), summary="s", reason="r",
                    account="files", state=state, written_on=day0 + dt.timedelta(days=written)))
        everything = ledger.followups()
        cut = day0 + dt.timedelta(days=since)
        assert ledger.followups_for(ids, cut) == [
            r for r in everything if r.person in ids or r.state in ("pending", "open") or r.written_on >= cut]
        assert ledger.followups_for([*ids, *(f"x{i}" for i in range(L._CHUNK + 1))], cut) == everything
    finally:
        ledger.close()
