"""Incremental derivation equals derivation from scratch (issue: a pass costs what changed).

A Hypothesis state machine changes a world at random: meetings are added, moved,
re-attended and deleted (one-on-ones, groups, strangers, meetings that count by
title alone, future ones), cards are edited (addresses added, removed and moved
between cards: merges and splits; renames; nicknames), cards are deleted, the user
completes or deletes tasks, and time moves by hours (the same day: incremental) or
days. In every pass, a copy of the ledger as the derivation finds it is derived from
scratch: the two must store the same (people, stories, interactions, identities, the
index) and plan the same follow-ups to write and to resolve.

The engine runs in-process against the memory connector and a real SQLite ledger.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from syncd import config, rules
from syncd import derive as derive_module
from syncd import ledger as L
from syncd.derive import Derive, rule_settings
from syncd.engine import Engine, _copy_to_memory
from syncd.identity import Identity, email_link, record_link
from syncd.infer import (
    ContactRecord,
    Directory,
    Milestone,
    Occurrence,
    PartialDate,
    Party,
    Person,
    Settings,
)
from syncd.ledger import Ledger
from syncd_connectors.base import CONTACTS, EVENTS
from syncd_connectors.memory import MemoryConnector, MemoryStore
from tests.helpers import ME, event, vcard

ADDRESSES = [f"a{i}@example.org" for i in range(5)]
STRANGERS = ["s0@example.net", "s1@example.net"]
NAMES = ["Ana Lima", "Bob Stone", "Cy Diaz", "Ana"]
NICKS = [None, "Bobby", "Cy"]
TITLES = ["Lunch with Ana Lima", "Call Bob Stone", "Cy", "Bobby and Cy", "Gym", "Ana"]
TABLES = {"people": "key", "stories": "key", "interactions": "person, uid, recurrence_id", "bases": "person",
          "persons": "id", "person_links": "link"}
#: the index names a UID by its ``terms`` row: compared by UID
INDEX = {"attend": "address", "titled": "word"}


def _tables(ledger: Ledger) -> dict[str, list[Any]]:
    out = {t: [tuple(r) for r in ledger.conn.execute(f"SELECT * FROM {t} ORDER BY {k}")] for t, k in TABLES.items()}
    for t, k in INDEX.items():
        out[t] = [tuple(r) for r in ledger.conn.execute(
            f"SELECT x.{k}, t.uid FROM {t} x JOIN terms t ON t.id = x.term ORDER BY 1, 2")]
    return out


def _kept_digests(ledger: Ledger) -> dict[str, str]:
    """person -> the digest of their history the ledger keeps (in the form a pass updates)."""
    return {p: d for p, d in ledger.conn.execute("SELECT person, digest FROM histories") if d.startswith(L._DIGEST)}


def _digests(ledger: Ledger) -> dict[str, str]:
    """person -> the digest of the interaction rows stored for them, for those with a kept one."""
    rows: dict[str, list[Any]] = {}
    for r in ledger.conn.execute("SELECT k.key, m.uid, m.recurrence_id, m.start, m.end, m.summary, c.account, "
                                 "c.calendar, i.others, i.organised FROM met i JOIN person_keys k ON k.id = i.person "
                                 "JOIN meetings m ON m.id = i.meeting JOIN calendars c ON c.id = m.calendar"):
        rows.setdefault(r[0], []).append((tuple(r[1:8]), r[8], r[9]))
    return {p: L._digest(rows.get(p, [])) for p in _kept_digests(ledger)}


class Incremental(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp())
        cfg = self.dir / "config.toml"
        cfg.write_text(f"""
[syncd]
me = ["{ME}"]
timezone = "Europe/Berlin"
write_to = "mem"
ledger = "{self.dir / 'ledger.sqlite3'}"
[accounts.mem]
type = "memory"
[inference]
match_titles = true
track_unknown = true
max_attendees = 3
[rules.keep_in_touch]
daily_limit = 2
groups = {{ Friends = "3d" }}
""")
        self.config = config.load(cfg)
        self.store = MemoryConnector.stores["mem"] = MemoryStore()
        self.store.calendars["cal"] = {}
        self.store.calendars["other"] = {}
        self.store.addressbooks["book"] = {}
        self.now = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)
        self.ledger = Ledger.open(self.dir / "ledger.sqlite3")
        self.meetings: list[str] = []
        # stored meetings given two people at a time: the batches must not show
        self.on_top_batch, derive_module._ON_TOP_BATCH = derive_module._ON_TOP_BATCH, 2

    def teardown(self) -> None:
        derive_module._ON_TOP_BATCH = self.on_top_batch
        self.ledger.close()

    @rule(card=st.integers(0, 3), emails=st.sets(st.sampled_from(ADDRESSES), max_size=3),
          name=st.sampled_from(NAMES), nick=st.sampled_from(NICKS), friend=st.booleans())
    def edit_card(self, card: int, emails: set[str], name: str, nick: str | None, friend: bool) -> None:
        text = vcard(name, *sorted(emails), groups="Friends" if friend else None, nickname=nick,
                     uid=f"card-{card}")
        self.store.put(CONTACTS, "book", f"c{card}.vcf", text)

    @rule(card=st.integers(0, 3))
    def delete_card(self, card: int) -> None:
        self.store.addressbooks["book"].pop(f"c{card}.vcf", None)

    @rule(who=st.sets(st.sampled_from(ADDRESSES + STRANGERS), max_size=4), hours=st.integers(-60, 30),
          title=st.sampled_from(TITLES), cal=st.sampled_from(["cal", "other"]), copy=st.booleans())
    def meet(self, who: set[str], hours: int, title: str, cal: str, copy: bool) -> None:
        uid = f"m{len(self.meetings)}"
        start = (self.now + dt.timedelta(hours=hours)).strftime("%Y%m%dT%H%M%SZ")
        text = event(uid, start, title, [f"{a};CN={a[:2].upper()}" for a in sorted(who)])
        self.store.put(EVENTS, cal, f"{uid}.ics", text)
        if copy:  # the same meeting in the other calendar (an invitation seen twice)
            self.store.put(EVENTS, "other" if cal == "cal" else "cal", f"{uid}.ics", text)
        self.meetings.append(uid)

    @rule(data=st.data(), who=st.sets(st.sampled_from(ADDRESSES + STRANGERS), max_size=3),
          hours=st.integers(-60, 30), title=st.sampled_from(TITLES))
    def change_meeting(self, data: st.DataObject, who: set[str], hours: int, title: str) -> None:
        if not self.meetings:
            return
        uid = data.draw(st.sampled_from(self.meetings))
        start = (self.now + dt.timedelta(hours=hours)).strftime("%Y%m%dT%H%M%SZ")
        for cal in ("cal", "other"):
            if f"{uid}.ics" in self.store.calendars[cal]:
                self.store.put(EVENTS, cal, f"{uid}.ics", event(uid, start, title, sorted(who)))

    @rule(data=st.data())
    def delete_meeting(self, data: st.DataObject) -> None:
        if self.meetings:
            uid = data.draw(st.sampled_from(self.meetings))
            for cal in ("cal", "other"):
                self.store.calendars[cal].pop(f"{uid}.ics", None)

    @rule(data=st.data(), done=st.booleans())
    def user_acts_on_a_task(self, data: st.DataObject, done: bool) -> None:
        open_ = sorted(u for u, t in self.store.tasks.items() if "NEEDS-ACTION" in t)
        if not open_:
            return
        uid = data.draw(st.sampled_from(open_))
        if done:
            self.store.tasks[uid] = self.store.tasks[uid].replace(
                "STATUS:NEEDS-ACTION", f"STATUS:COMPLETED\r\nCOMPLETED:{self.now:%Y%m%dT%H%M%SZ}")
        else:
            del self.store.tasks[uid]

    @rule(hours=st.sampled_from([1, 2, 5, 26, 24 * 4]))
    def sync(self, hours: int) -> None:
        self.now += dt.timedelta(hours=hours)
        engine = Engine(self.config, self.ledger, now=lambda: self.now, allow_empty=["mem"])
        seen: dict[str, Any] = {}
        derive, write = engine.derive.changed, engine.writeback.write

        def from_scratch_too() -> Any:
            # The ledger as the derivation finds it (ingested, tasks read back), derived
            # from scratch on a copy.
            copy = _copy_to_memory(self.ledger)
            with copy.transaction():
                copy.set_meta("derived", "")
                copy.set_meta("indexed", "")
                copy.set_meta("directory", "")  # the address book read again, not thawed
            scratch = Derive(self.config, copy, lambda: self.now)
            d = scratch.changed()
            assert d.full
            seen["plan"] = rules.plan(d.each(), copy.followups(), rule_settings(self.config), self.now)
            scratch.store(d)
            seen["copy"] = copy
            return derive()

        def writes(sink: Any, name: str, todo: rules.Plan, result: Any) -> None:
            seen["todo"] = todo
            write(sink, name, todo, result)

        engine.derive.changed = from_scratch_too  # type: ignore[method-assign]
        engine.writeback.write = writes  # type: ignore[method-assign]
        try:
            assert engine.run_pass().ok
        finally:
            engine.close()
        if "copy" in seen:
            assert _tables(seen["copy"]) == _tables(self.ledger)
            assert sorted(w.uid for w in seen["todo"].new) == sorted(w.uid for w in seen["plan"].new)
            assert sorted(seen["todo"].resolve) == sorted(seen["plan"].resolve)
        # a digest kept through passes is the digest of the rows stored
        assert _kept_digests(self.ledger) == _digests(self.ledger)


TestIncremental = Incremental.TestCase
TestIncremental.settings = settings(max_examples=80, stateful_step_count=40, deadline=None)


def test_an_address_left_by_a_card_keeps_its_id_while_its_cards_merge() -> None:
    """Found by the machine above. A card lists a0 and a1, another only a name; a
    meeting has a0, a1 and a2. Then both cards list a0 alone: they merge, and a1 (now
    known by its address only) keeps the id it had through the card (a0's). A later
    pass that derives only the merged person (its task was deleted) must not record
    that id as merged into the merged person: from scratch a1 keeps it."""
    m = Incremental()
    try:
        m.meet(cal="cal", copy=False, hours=0, title="Lunch with Ana Lima", who=set())
        m.edit_card(card=0, emails=set(), friend=False, name="Ana Lima", nick=None)
        m.edit_card(card=3, emails={"a0@example.org", "a1@example.org"}, friend=False, name="Ana Lima", nick=None)
        m.meet(cal="cal", copy=False, hours=0, title="Lunch with Ana Lima",
               who={"a0@example.org", "a1@example.org", "a2@example.org"})
        m.sync(hours=1)  # each pass asserts the same tables as a derivation from scratch
        m.user_acts_on_a_task(_first_open(m), done=False)  # type: ignore[arg-type]
        m.edit_card(card=0, emails={"a0@example.org"}, friend=False, name="Ana Lima", nick=None)
        m.edit_card(card=3, emails={"a0@example.org"}, friend=False, name="Ana Lima", nick=None)
        m.sync(hours=1)
        m.user_acts_on_a_task(_first_open(m), done=False)  # type: ignore[arg-type]
        m.sync(hours=1)
        merged = dict(m.ledger.conn.execute("SELECT id, merged_into FROM persons").fetchall())
        assert merged["a0@example.org"] is None
    finally:
        m.teardown()


class _Drawn:
    """A ``st.data()`` that draws what it was given."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def draw(self, _: Any) -> Any:
        return self.value


def _first_open(m: Incremental) -> _Drawn:
    return _Drawn(min(u for u, t in m.store.tasks.items() if "NEEDS-ACTION" in t))


def test_a_change_derives_only_whom_it_touches(tmp_path: Path) -> None:
    """Ten people, one meeting with one of them changes: one person is derived again."""
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"""
[syncd]
me = ["{ME}"]
timezone = "UTC"
write_to = "mem"
ledger = "{tmp_path / 'ledger.sqlite3'}"
[accounts.mem]
type = "memory"
""")
    conf = config.load(cfg)
    store = MemoryConnector.stores["mem"] = MemoryStore()
    store.calendars["cal"] = {}
    store.addressbooks["book"] = {}
    for i in range(10):
        store.put(CONTACTS, "book", f"c{i}.vcf", vcard(f"Person {i}", f"p{i}@example.org", uid=f"c{i}"))
        store.put(EVENTS, "cal", f"m{i}.ics", event(f"m{i}", f"202603{i + 1:02d}T100000Z", "Coffee",
                                                    [f"p{i}@example.org"]))
    now = dt.datetime(2026, 3, 20, 9, tzinfo=dt.timezone.utc)
    ledger = Ledger.open(tmp_path / "ledger.sqlite3")
    derived: list[list[str]] = []

    def run() -> None:
        engine = Engine(conf, ledger, now=lambda: now)
        original = engine.derive.changed

        def spy() -> Any:
            d = original()
            derived.append(sorted(p.name for p in d.people))
            return d

        engine.derive.changed = spy  # type: ignore[method-assign]
        try:
            assert engine.run_pass().ok
        finally:
            engine.close()

    run()
    assert len(derived[-1]) == 10
    store.put(EVENTS, "cal", "m3.ics", event("m3", "20260305T110000Z", "Coffee, later", ["p3@example.org"]))
    now += dt.timedelta(hours=1)
    run()
    assert derived[-1] == ["Person 3"]
    people = {p["name"]: p for p in ledger.people()}
    assert people["Person 3"]["last_met"] == "2026-03-05T11:00:00Z"
    assert len(people) == 10
    ledger.close()


def new_day_world(tmp_path: Path) -> tuple[config.Config, MemoryStore]:
    """Six friends (a 30-day cadence) who met in twos and alone, and a stranger."""
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"""
[syncd]
me = ["{ME}"]
timezone = "Europe/Berlin"
ledger = "{tmp_path / 'ledger.sqlite3'}"
[accounts.mem]
type = "memory"
[rules.keep_in_touch]
groups = {{ Friends = "30d" }}
""")
    store = MemoryConnector.stores["mem"] = MemoryStore()
    store.calendars["cal"] = {}
    store.addressbooks["book"] = {}
    for i in range(6):  # friends: due dates count from the last meeting
        store.put(CONTACTS, "book", f"c{i}.vcf", vcard(f"Person {i}", f"p{i}@example.org", uid=f"c{i}",
                                                       groups="Friends"))
        for k in range(3):  # some meetings shared by two people, two at the same time
            guests = [f"p{i}@example.org", f"p{(i + k) % 6}@example.org"]
            store.put(EVENTS, "cal", f"m{i}-{k}.ics", event(f"m{i}-{k}", f"202603{k + 1:02d}T10000{k % 2}Z",
                                                            f"Coffee {k}", guests))
    store.put(EVENTS, "cal", "stranger.ics", event("s", "20260304T100000Z", "Visit", ["s0@example.net"]))
    return config.load(cfg), store


def new_day_edits(store: MemoryStore) -> None:
    """A meeting of two friends changed, and a card renamed."""
    store.put(EVENTS, "cal", "m0-1.ics", event("m0-1", "20260302T100000Z", "Tea", ["p0@example.org",
                                                                                 "p1@example.org"]))
    # its person is derived whole, from every meeting of theirs
    store.put(CONTACTS, "book", "c2.vcf", vcard("Pat Two", "p2@example.org", uid="c2", groups="Friends"))


def test_a_new_day_reads_each_ones_stored_meetings_on_their_turn(tmp_path: Path, monkeypatch: Any) -> None:
    """On a new day everyone is derived again from their stored meetings: past a batch
    of people, those are read when ``each`` comes to a person (all of them at once would
    not fit a big ledger), every time it is asked, and are what a derivation from
    scratch gives."""
    monkeypatch.setattr(derive_module, "_ON_TOP_BATCH", 3)  # 7 people: three batches
    conf, store = new_day_world(tmp_path)
    now = dt.datetime(2026, 3, 20, 9, tzinfo=dt.timezone.utc)
    ledger = Ledger.open(tmp_path / "ledger.sqlite3")
    engine = Engine(conf, ledger, now=lambda: now)
    try:
        assert engine.run_pass().ok
        now += dt.timedelta(days=1)
        new_day_edits(store)
        assert engine.sync_account("mem").ok
        d = engine.derive.changed()
        assert not d.full and d.stored is not None
        # nothing stored is read yet: the others hold only the changed meeting
        assert sorted((p.name, sorted(m.summary for m in p.meetings)) for p in d.people if p.meetings) == [
            ("Pat Two", ["Coffee 0", "Coffee 1", "Coffee 1", "Coffee 2", "Coffee 2"]),
            ("Person 0", ["Tea"]), ("Person 1", ["Tea"])]
        assert len(d.people) == 7
        copy = _copy_to_memory(ledger)
        with copy.transaction():
            copy.set_meta("derived", "")
        scratch = Derive(conf, copy, lambda: now).changed()

        def met(derivation: Any) -> list[tuple[str, list[Any]]]:
            return sorted((p.key, list(p.meetings)) for p in derivation.each())

        want = met(scratch)
        assert sum(len(m) for _, m in want) == 6 * 3 * 2 - 6 + 1  # a one-on-one is one row
        reads: list[list[str]] = []
        read = d.stored

        def counted(keys: list[str]) -> Any:
            reads.append(keys)
            return read(keys)

        d.stored = counted
        assert met(d) == want
        assert met(d) == want  # read again if asked again
        assert sum(len(p.meetings) for p in d.people) == 2 + 5  # and let go after
        # What is stored of them was summed up on the first read: the store reads none
        # again, and stores what a derivation from scratch does.
        assert len(d.summaries) == 6 and len(reads) == 2 * 3
        Derive(conf, copy, lambda: now).store(scratch)
        engine.derive.store(d)
        assert len(reads) == 2 * 3
        assert sorted((p["name"], p["due"]) for p in ledger.people() if p["in_address_book"])[:2] == [
            ("Pat Two", "2026-04-02"), ("Person 0", "2026-04-02")]
        assert _tables(ledger) == _tables(copy)
    finally:
        engine.close()
        ledger.close()


# -- a thawed address book is the one that was read ---------------------------------
EMAILS = [*ADDRESSES, *STRANGERS]
IDS = ["a0@example.org", "a1@example.org", "name:ana", "s0@example.net", "p9"]
_dates = st.none() | st.builds(PartialDate, st.integers(1, 12), st.integers(1, 28), st.none() | st.integers(1950, 2000))
_records = st.lists(st.builds(
    ContactRecord, name=st.sampled_from([None, *NAMES]), emails=st.lists(st.sampled_from(ADDRESSES), max_size=3).map(tuple),
    nicknames=st.lists(st.sampled_from(["Bobby", "Cy"]), max_size=1).map(tuple),
    groups=st.lists(st.sampled_from(["Friends", "Family"]), max_size=2).map(tuple), birthday=_dates,
    anniversary=_dates, order=st.tuples(st.integers(0, 1)), ref=st.sampled_from(["uid:c0", "uid:c1", "uid:c2", "at:1:x:0"]),
    milestones=st.lists(st.builds(Milestone, st.sampled_from(["Moved", "Started"]), _dates.filter(bool)),  # type: ignore[arg-type]
                        max_size=2).map(tuple)), max_size=5)
_identities = st.builds(
    Identity,
    links=st.dictionaries(st.sampled_from([*(email_link(e) for e in EMAILS),
                                           *(record_link(r) for r in ("uid:c0", "uid:c1", "uid:c2"))]),
                          st.sampled_from(IDS)),
    merged=st.dictionaries(st.sampled_from(IDS), st.sampled_from(IDS), max_size=2),
    ids=st.permutations(IDS))
_meetings = st.lists(st.tuples(st.lists(st.sampled_from(EMAILS), max_size=3), st.sampled_from(TITLES),
                               st.integers(-30, 30)), max_size=6)


def _people(people: list[Person]) -> list[tuple[Any, ...]]:
    return [(p.key, p.name, p.emails, p.groups, p.nicknames, p.birthday, p.anniversary, p.milestones, p.refs,
             p.origins, p.aliases, p.meetings, p.upcoming) for p in people]


@settings(max_examples=200, deadline=None)
@given(records=_records, known=_identities, meetings=_meetings, titles=st.booleans())
@example(  # a split: the card with a1 was met as a0's person (``Person.origins``)
    records=[ContactRecord(None, ("a0@example.org",), ref="uid:c0"), ContactRecord(None, ("a1@example.org",), ref="uid:c1")],
    known=Identity({email_link("a0@example.org"): "a0@example.org", email_link("a1@example.org"): "a0@example.org"}, {},
                   list(IDS)),
    meetings=[(["a1@example.org"], "Gym", -1)], titles=False)
def test_a_thawed_directory_derives_what_the_read_one_does(records: list[ContactRecord], known: Identity,
                                                           meetings: list[tuple[list[str], str, int]],
                                                           titles: bool) -> None:
    """For any address book, identity and meetings: the directory a pass keeps
    (``freeze``, through JSON) and thaws gives the same people, ids, owners and the
    same identity to remember as the address book read again."""
    s = Settings(match_titles=titles)
    now = dt.datetime(2026, 3, 1, 12, tzinfo=dt.timezone.utc)
    occs = [Occurrence(uid=f"m{i}", recurrence_id="", start=now + dt.timedelta(days=d), summary=title,
                       organizer=Party(ME, None, "ACCEPTED", "INDIVIDUAL"),
                       attendees=tuple(Party(e, None, "ACCEPTED", "INDIVIDUAL") for e in who))
            for i, (who, title, d) in enumerate(meetings)]
    read = Directory(records, {ME}, s, known.copy())
    thawed = Directory.thaw(json.loads(json.dumps(read.freeze())), {ME}, s, known.copy())
    assert {e: p.key for e, p in thawed.by_email.items()} == {e: p.key for e, p in read.by_email.items()}
    assert thawed.owned() == read.owned()
    assert thawed.holders({"ana", "bobby", "cy"}) == read.holders({"ana", "bobby", "cy"})
    one, kept_one = read.attach(occs, now)
    two, kept_two = thawed.attach(occs, now)
    assert _people(two) == _people(one)
    assert kept_two == kept_one
