"""A Hypothesis state machine for identity (SPEC §4): cards change at random (addresses
added, removed, moved between cards, renamed, cards deleted), people are met at any of
their addresses, and passes run day after day. After every pass: no follow-up was
written twice for one person (a merged person may carry both halves' first meetings,
never a new one), at most one catch-up is open per person, and nobody in the address
book appears twice in ``people``.

The engine runs in-process against the memory connector and a real SQLite ledger.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from syncd import config
from syncd.engine import Engine
from syncd.ledger import Ledger
from syncd_connectors.base import CONTACTS, EVENTS
from syncd_connectors.memory import MemoryConnector, MemoryStore
from tests.helpers import ME, event, vcard

ADDRESSES = [f"a{i}@example.org" for i in range(5)]
NAMES = ["Ana Lima", "Bob Stone", "Cy Diaz", "Dee Eng"]


class Identities(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp())
        cfg = self.dir / "config.toml"
        cfg.write_text(f"""
[syncd]
me = ["{ME}"]
timezone = "UTC"
write_to = "mem"
ledger = "{self.dir / 'ledger.sqlite3'}"
[accounts.mem]
type = "memory"
[inference]
match_titles = false
[rules.keep_in_touch]
daily_limit = 5
groups = {{ Friends = "5d" }}
""")
        self.config = config.load(cfg)
        self.store = MemoryConnector.stores["mem"] = MemoryStore()
        self.store.calendars["cal"] = {}
        self.store.addressbooks["book"] = {}
        self.now = dt.datetime(2026, 3, 1, 18, 0, tzinfo=dt.timezone.utc)
        self.ledger = Ledger.open(self.dir / "ledger.sqlite3")
        self.meetings = 0
        self.passed = False

    def teardown(self) -> None:
        self.ledger.close()

    @rule(card=st.integers(0, 3), emails=st.sets(st.sampled_from(ADDRESSES), min_size=1, max_size=3),
          name=st.sampled_from(NAMES))
    def edit_card(self, card: int, emails: set[str], name: str) -> None:
        self.store.put(CONTACTS, "book", f"c{card}.vcf",
                       vcard(name, *sorted(emails), groups="Friends", uid=f"card-{card}"))

    @rule(card=st.integers(0, 3))
    def delete_card(self, card: int) -> None:
        self.store.addressbooks["book"].pop(f"c{card}.vcf", None)

    @rule(who=st.sets(st.sampled_from(ADDRESSES), min_size=1, max_size=2))
    def meet(self, who: set[str]) -> None:
        start = (self.now - dt.timedelta(hours=2)).strftime("%Y%m%dT%H%M%SZ")
        self.meetings += 1
        n = self.meetings
        self.store.put(EVENTS, "cal", f"m{n}.ics", event(f"m{n}", start, "Meeting", sorted(who)))

    @rule(days=st.integers(1, 4))
    def sync(self, days: int) -> None:
        self.now += dt.timedelta(days=days)
        engine = Engine(self.config, self.ledger, now=lambda: self.now, allow_empty=["mem"])
        try:
            assert engine.run_pass().ok
        finally:
            engine.close()
        self.passed = True

    @invariant()
    def nothing_written_twice(self) -> None:
        if not self.passed:
            return
        groups = self.ledger.identity().groups()
        rows = self.ledger.followups()
        for key, entry in self.ledger.people_keys():
            ids = groups.get(key, set()) | {key}
            mine = [r for r in rows if r.person in ids]
            open_catch_ups = [r for r in mine if r.rule == "keep_in_touch" and r.state in ("open", "pending")]
            assert len(open_catch_ups) <= 1, (entry["name"], open_catch_ups)
            # each id decided each cycle once (a merge may bring two ids' decisions together)
            cycles = Counter((r.person, r.rule, r.cycle) for r in mine)
            assert all(n == 1 for n in cycles.values()), cycles
            firsts = [r for r in mine if r.rule == "first_meeting"]
            # one per id that stands for the person: a merge keeps both, nothing more
            assert len(firsts) == len({r.person for r in firsts}), firsts

    @invariant()
    def every_card_is_one_person(self) -> None:
        if not self.passed:
            return
        names = Counter(e["name"] for _, e in self.ledger.people_keys() if e["in_address_book"])
        emails = Counter(a for _, e in self.ledger.people_keys() for a in e["emails"])
        assert all(n == 1 for n in emails.values()), emails
        assert sum(names.values()) <= 4


TestIdentities = Identities.TestCase
TestIdentities.settings = settings(max_examples=25, stateful_step_count=20, deadline=None)
