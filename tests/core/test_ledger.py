"""Schema 4's ledger rows, through ``Ledger``'s methods: starts follow their series, a
meeting is stored once and goes with its last interaction row, and rows whose ids
come from one hash are each found again."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd import ledger as L
from syncd.ledger import Interaction, Ledger
from syncd.model import Occurrence
from tests.helpers import rows_of

T = dt.datetime(2026, 6, 1, 10, tzinfo=dt.timezone.utc)
DAY = dt.timedelta(days=1)


@pytest.fixture
def led(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger.open(tmp_path / "ledger.sqlite3")
    with ledger.transaction():
        ledger.ensure_account("a", "vdir")
        ledger.collection("a", "events", "r1", "one")
        ledger.collection("a", "events", "r2", "two")
    yield ledger
    ledger.close()


def _series(led: Ledger, cid: int, uid: str, *days: int) -> None:
    occs = [Occurrence(uid, f"r{d}" if len(days) > 1 else "", T + d * DAY, summary=uid) for d in days]
    with led.transaction():
        led.replace_series(cid, uid, *L.series_data(occs, led.packs), len(days) > 1, T + 30 * DAY)


def _uids(led: Ledger, first: int, last: int) -> set[str]:
    return led.uids_starting([(T + first * DAY - dt.timedelta(seconds=1), T + last * DAY)])


def test_starts_follow_their_series(led: Ledger) -> None:
    _series(led, 1, "u", 1, 8, 15)
    _series(led, 2, "v", 2)
    assert _uids(led, 0, 20) == {"u", "v"} and _uids(led, 8, 8) == {"u"}
    _series(led, 1, "u", 3)  # expanded again: its old starts go
    assert _uids(led, 8, 20) == set() and _uids(led, 3, 3) == {"u"}
    assert not led.starts_between([(T + 4 * DAY, T + 20 * DAY)])
    with led.transaction():
        led.drop_series(1, "u")
    assert _uids(led, 0, 20) == {"v"}
    with led.transaction():
        led.drop_collection(2)
    assert _uids(led, 0, 20) == set()
    assert led.conn.execute("SELECT count(*) FROM starts").fetchone()[0] == 0
    assert [len(list(led.occurrences_of([u]))) for u in ("u", "v")] == [0, 0]


def test_a_meeting_is_stored_once_and_goes_with_its_last_row(led: Ledger) -> None:
    lunch = Interaction("p", "u", "", T, T + DAY / 24, "Lunch", "a", "one", 1, True)
    call = Interaction("p", "w", "", T + DAY, None, "Call", "a", "two", 2, False)

    def store(people: dict[str, list[Interaction]], dropped: list[str] | None = None) -> None:
        with led.transaction():
            led.replace_people(rows_of(people), dropped)

    store({"p": [lunch, call], "q": [Interaction("q", *list(lunch.__dict__.values())[1:])]})
    assert led.conn.execute("SELECT count(*) FROM meetings").fetchone()[0] == 2
    assert [r[1] for r in led.meetings_of(["q"])["q"]] == ["u"]
    shared: dict[object, object] = {}
    p_rows, q_rows = led.meetings_of(["p"], shared)["p"], led.meetings_of(["q"], shared)["q"]
    lunch_p = next(r for r in p_rows if r[1] == "u")
    assert all(a is b for a, b in zip(lunch_p[1:8], q_rows[0][1:8], strict=True) if a is not None)  # held once
    assert led.history("p") == [
        {"start": "2026-06-02T10:00:00Z", "end": None, "summary": "Call", "account": "a", "calendar": "two",
         "others": 2, "organised": False},
        {"start": "2026-06-01T10:00:00Z", "end": "2026-06-01T11:00:00Z", "summary": "Lunch", "account": "a",
         "calendar": "one", "others": 1, "organised": True}]
    store({"p": [call]}, dropped=[])  # p no longer met at lunch; q still did
    assert led.conn.execute("SELECT count(*) FROM meetings").fetchone()[0] == 2
    store({"q": []}, dropped=["p"])  # p goes; q has no meetings left
    assert led.conn.execute("SELECT count(*) FROM meetings").fetchone()[0] == 0
    assert led.conn.execute("SELECT count(*) FROM met").fetchone()[0] == 0


@pytest.mark.parametrize("at_once", [1, 3, 7])
def test_people_handed_on_in_parts_store_what_one_hand_over_does(
        tmp_path: Path, led: Ledger, monkeypatch: pytest.MonkeyPatch, at_once: int) -> None:
    """``replace_people`` hands interaction rows on some people at a time: a meeting
    shared by people of different parts (and a person alone over the limit) is stored
    once, with every row naming it, as when everyone goes at once."""
    def meet(k: int, day: int) -> Interaction:
        return Interaction(f"p{k}", f"u{day}", "", T + day * DAY, None, f"M{day}", "a", "one", 2, day % 2 == 0)

    people = {f"p{k}": [meet(k, d) for d in range(6) if (d + k) % 3 != 0] for k in range(5)}
    one = Ledger.open(tmp_path / "one.sqlite3")
    try:
        for ledger, limit in ((one, 10**6), (led, at_once)):
            monkeypatch.setattr(L, "_ROWS_AT_ONCE", limit)
            with ledger.transaction():
                ledger.replace_people(rows_of(people))
        tables = {t: sorted(tuple(r) for r in one.conn.execute(f"SELECT * FROM {t}"))
                  for t in ("interactions", "meetings", "histories")}
        assert tables == {t: sorted(tuple(r) for r in led.conn.execute(f"SELECT * FROM {t}")) for t in tables}
        assert sum(r[-1] for r in tables["meetings"]) == sum(map(len, people.values()))  # refs count every row
    finally:
        one.close()


def _stored_digest(led: Ledger, person: str) -> str:
    rows = [(tuple(r[:7]), r[7], r[8]) for r in led.conn.execute(
        "SELECT m.uid, m.recurrence_id, m.start, m.end, m.summary, c.account, c.calendar, i.others, i.organised "
        "FROM met i JOIN person_keys k ON k.id = i.person JOIN meetings m ON m.id = i.meeting "
        "JOIN calendars c ON c.id = m.calendar WHERE k.key=?", (person,))]
    return L._digest(rows)


def test_a_spliced_history_keeps_a_digest_of_its_rows(led: Ledger) -> None:
    """A pass that replaces a few of a person's rows updates the digest of their
    history from those rows; a later derivation of the whole history that finds the
    same rows then writes none of them."""
    lunch = Interaction("p", "u", "", T, T + DAY / 24, "Lunch", "a", "one", 1, True)
    call = Interaction("p", "w", "", T + DAY, None, "Call", "a", "two", 2, False)
    moved = Interaction("p", "u", "", T + 2 * DAY, None, "Lunch, moved", "a", "one", 3, False)
    with led.transaction():
        led.replace_people(rows_of({"p": [lunch, call]}))
    with led.transaction():  # u changed: only its row is given
        led.replace_people(rows_of({"p": [moved]}), [], spliced=({"p"}, {"u"}))
    [(digest,)] = led.conn.execute("SELECT digest FROM histories WHERE person='p'")
    assert digest == _stored_digest(led, "p") != L._digest([L._met(lunch), L._met(call)])
    before = led.conn.total_changes
    with led.transaction():
        led.replace_people(rows_of({"p": [call, moved]}))
    assert led.conn.total_changes == before  # the same history: nothing written
    assert [r["summary"] for r in led.history("p")] == ["Lunch, moved", "Call"]


def test_rows_of_one_hash_are_each_found_again(led: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(L, "_hash_id", lambda key: 7)  # every id clashes
    index = {f"u{i}": ((f"a{i}@x",), ()) for i in range(L._WINDOW)}
    with led.transaction():
        led.put_index(index, clear=True)
    assert sorted(r[0] for r in led.conn.execute("SELECT id FROM terms")) == list(L._window(7))
    with led.transaction():  # the first goes: the others are still found, past the gap
        led.put_derivation({"u0": ((), ())}, {}, [], [], [])
    assert led.uids_of([f"a{i}@x" for i in range(L._WINDOW)], []) == {f"u{i}" for i in range(1, L._WINDOW)}
    assert led.index_of(["u3"]) == ({"a3@x"}, set())
    with led.transaction():  # u3 indexed again, u0 back: each takes a free place of the window
        led.put_derivation({"u3": (("b@x",), ()), "u0": (("c@x",), ())}, {}, [], [], [])
    assert led.index_of(["u3", "u0"]) == ({"b@x", "c@x"}, set())
    with pytest.raises(L.SyncdError), led.transaction():
        led.put_derivation({"one too many": (("d@x",), ())}, {}, [], [], [])


def test_an_index_rebuilt_in_batches_is_the_index_written_at_once(led: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two windows that overlap (even UIDs from id 7, odd ones from 8): the rebuild places
    # later batches among the ids of earlier ones, a UID indexed twice keeps
    # only its last terms, and a UID indexed with nothing frees its place at once.
    monkeypatch.setattr(L, "_hash_id", lambda key: 7 + int(key[1:]) % 2)
    batches = [{"u0": (("a0@x",), ("w0",)), "u1": (("a1@x",), ())},
               {"u2": (("a2@x",), ()), "u3": ((), ("w3",))},
               {"u1": (("b1@x",), ()), "u2": ((), ())},
               {"u5": (("a5@x",), ()), "u7": (("a7@x",), ())}]  # they fit only in u2's freed place
    with led.transaction():
        led.put_index({}, clear=True)
        for batch in batches:
            led.put_index(batch)
    assert led.index_of(["u0", "u1", "u3", "u5", "u7"]) == ({"a0@x", "b1@x", "a5@x", "a7@x"}, {"w0", "w3"})
    assert led.uids_of(["a1@x", "a2@x", "b1@x"], ["w3"]) == {"u1", "u3"}
    ids = dict(led.conn.execute("SELECT uid, id FROM terms"))
    assert ids == {"u0": 7, "u1": 8, "u5": 9, "u3": 10, "u7": 11}
    with led.transaction():  # later passes find the rebuilt rows
        led.put_derivation({"u0": ((), ())}, {}, [], [], [])
    with led.transaction():
        led.put_derivation({"u2": (("c2@x",), ())}, {}, [], [], [])
    assert led.uids_of(["a0@x", "c2@x", "b1@x", "a5@x"], ["w0", "w3"]) == {"u1", "u2", "u3", "u5"}


_HREFS = st.sampled_from(["a.ics", "b.ics", "c.ics", "d.ics"])
_OPS = st.lists(st.one_of(
    st.tuples(st.just("put"), st.sampled_from([0, 1]), _HREFS, st.lists(st.sampled_from(["u1", "u2"]), max_size=2)),
    st.tuples(st.just("delete"), st.sampled_from([0, 1]), _HREFS, st.just([])),
    st.tuples(st.just("drop"), st.sampled_from([0, 1]), st.just(""), st.just([])),
), max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_OPS)
def test_each_collection_counts_the_objects_it_holds(led: Ledger, ops: list[tuple[str, int, str, list[str]]]) -> None:
    """Whatever is stored, replaced, deleted (twice, or never stored) and dropped with
    its collection, ``etag_count`` answers what counting the objects answers: vdir's
    no-change check and the empty-collection guard trust it."""
    with led.transaction():
        for cid in [c.id for c in led.collections()]:
            led.drop_collection(cid)
    for op, which, href, uids in ops:
        with led.transaction():
            cid = led.collection("a", "events", f"r{which}", "cal").id
            if op == "put":
                led.put_object(cid, href, f"e{len(uids)}", "", uids, led.object_uids(cid, href))
            elif op == "delete":
                led.delete_object(cid, href)
            else:
                led.drop_collection(cid)
        for c in led.collections():
            assert led.etag_count(c.id) == len(led.etags(c.id))


def test_the_run_log_keeps_the_last_passes(led: Ledger) -> None:
    """A daemon passes every 15 minutes: the log keeps the last ``RUNS_KEPT`` of them,
    not every pass ever (35,000 rows a year)."""
    for i in range(L.RUNS_KEPT + 5):
        led.log_run("sync", T + i * DAY, T + i * DAY, f"pass {i}")
    rows = led.conn.execute("SELECT summary FROM runs ORDER BY id").fetchall()
    assert len(rows) == L.RUNS_KEPT
    assert (rows[0][0], rows[-1][0]) == ("pass 5", f"pass {L.RUNS_KEPT + 4}")
