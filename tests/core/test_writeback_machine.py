"""A Hypothesis state machine for write-back: the user and the sink misbehave at random.

The engine runs in-process against the shipped ``memory`` connector (source and sink)
and a real SQLite ledger. Steps add people and meetings, move the clock, complete,
delete and edit tasks, and make the sink fail mid-pass; after every step the
invariants of SPEC §5 must hold: nothing duplicated, nothing syncd did not write
touched, a dismissed follow-up never comes back, and a pass after a failure catches up.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import icalendar
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from syncd import config
from syncd.engine import Engine
from syncd.errors import TransientError
from syncd.ledger import Ledger
from syncd_connectors.base import CONTACTS, EVENTS
from syncd_connectors.memory import MemoryConnector, MemoryStore
from tests.helpers import ME, event, vcard

FOREIGN = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//user//EN\r\nBEGIN:VTODO\r\nUID:users-own\r\n"
           "SUMMARY:Buy milk\r\nEND:VTODO\r\nEND:VCALENDAR\r\n")


class WriteBack(RuleBasedStateMachine):
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
[rules.keep_in_touch]
daily_limit = 2
groups = {{ Friends = "10d" }}
[rules.birthday]
days_before = 3
""")
        self.config = config.load(cfg)
        self.store = MemoryConnector.stores["mem"] = MemoryStore()
        self.store.calendars["cal"] = {}
        self.store.addressbooks["book"] = {}
        self.store.tasks["users-own"] = FOREIGN
        self.now = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.timezone.utc)
        self.ledger = Ledger.open(self.dir / "ledger.sqlite3")
        self.people = 0
        self.dismissed: set[str] = set()
        self.edited: dict[str, str] = {}

    def teardown(self) -> None:
        self.ledger.close()

    def _pass(self) -> None:
        engine = Engine(self.config, self.ledger, now=lambda: self.now)
        try:
            engine.run_pass()
        finally:
            engine.close()

    @rule(groups=st.sampled_from(["Friends", ""]), bday=st.integers(0, 40))
    def add_person(self, groups: str, bday: int) -> None:
        i = self.people
        self.people += 1
        day = (self.now + dt.timedelta(days=bday)).date()
        self.store.put(CONTACTS, "book", f"p{i}.vcf",
                       vcard(f"Person {i}", f"p{i}@example.com", groups=groups or None, bday=f"1990-{day:%m-%d}"))

    @rule(who=st.integers(0, 20), days=st.integers(-12, 12))
    def add_meeting(self, who: int, days: int) -> None:
        if self.people == 0:
            return
        who %= self.people
        start = (self.now + dt.timedelta(days=days)).strftime("%Y%m%dT%H%M%SZ")
        uid = f"m{len(self.store.calendars['cal'])}"
        self.store.put(EVENTS, "cal", f"{uid}.ics", event(uid, start, "Coffee", [f"p{who}@example.com"]))

    @rule(hours=st.sampled_from([1, 7, 24, 24 * 4]))
    def advance(self, hours: int) -> None:
        self.now += dt.timedelta(hours=hours)

    @rule()
    def sync(self) -> None:
        self._pass()

    @rule(data=st.data())
    def sink_fails_during_a_pass(self, data: st.DataObject) -> None:
        self.store.fail = TransientError("sink down")
        self._pass()  # recorded as a failure, never raised
        self.store.fail = None

    def _ours(self) -> list[str]:
        return sorted(u for u in self.store.tasks if u != "users-own")

    @rule(data=st.data())
    def user_completes(self, data: st.DataObject) -> None:
        if self._ours():
            uid = data.draw(st.sampled_from(self._ours()))
            self.store.tasks[uid] = self.store.tasks[uid].replace("STATUS:NEEDS-ACTION", "STATUS:COMPLETED")

    @rule(data=st.data())
    def user_deletes(self, data: st.DataObject) -> None:
        if self._ours():
            uid = data.draw(st.sampled_from(self._ours()))
            del self.store.tasks[uid]
            self.dismissed.add(uid)

    @rule(data=st.data())
    def user_edits(self, data: st.DataObject) -> None:
        if self._ours():
            uid = data.draw(st.sampled_from(self._ours()))
            cal = icalendar.Calendar.from_ical(self.store.tasks[uid])
            todo = next(c for c in cal.walk() if c.name == "VTODO")
            todo["summary"] = icalendar.vText(f"{todo['summary']} (my words)")
            self.store.tasks[uid] = cal.to_ical().decode()
            self.edited[uid] = str(todo["summary"])

    @invariant()
    def users_own_task_untouched(self) -> None:
        assert self.store.tasks["users-own"] == FOREIGN

    @invariant()
    def nothing_duplicated(self) -> None:
        keys = []
        for uid in self._ours():
            todo = next(c for c in icalendar.Calendar.from_ical(self.store.tasks[uid]).walk() if c.name == "VTODO")
            assert str(todo["uid"]) == uid
            keys.append(str(todo["x-syncd-key"]))
        assert len(keys) == len(set(keys))

    @invariant()
    def dismissed_never_return(self) -> None:
        assert not self.dismissed & set(self.store.tasks)

    @invariant()
    def user_edits_are_kept(self) -> None:
        for uid, summary in self.edited.items():
            if uid in self.store.tasks:
                assert summary in self.store.tasks[uid]

    @invariant()
    def ledger_and_sink_agree(self) -> None:
        rows = {r.uid: r for r in self.ledger.followups()}
        assert set(self._ours()) <= set(rows)
        for uid, row in rows.items():
            if row.state == "open":
                assert uid in self.store.tasks or uid in self.dismissed

    @invariant()
    def daily_limit_holds(self) -> None:
        per_day: dict[dt.date, int] = {}
        for r in self.ledger.followups():
            if r.rule == "keep_in_touch":
                per_day[r.written_on] = per_day.get(r.written_on, 0) + 1
        assert all(n <= 2 for n in per_day.values())


TestWriteBack = WriteBack.TestCase
TestWriteBack.settings = settings(max_examples=25, stateful_step_count=25, deadline=None)


def test_a_pass_after_a_failure_catches_up() -> None:
    machine = WriteBack()
    try:
        machine.add_person("Friends", 0)
        machine.store.fail = TransientError("down")
        machine._pass()
        assert not machine._ours()
        machine.store.fail = None
        machine._pass()
        assert {r.rule for r in machine.ledger.followups()} == {"keep_in_touch", "birthday"}
        assert len(machine._ours()) == 2
        assert not machine.ledger.followups(("pending",))
    finally:
        machine.teardown()
