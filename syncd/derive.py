"""Ledger -> people: who the user met, with remembered identities, and what is stored
of it (the people snapshot, stories, interactions).

Public API: ``Derive`` (``inputs``, ``people``, ``store``, ``unchanged_since_last``,
``reconcile_key``), ``Inputs`` and ``rule_settings``.

Inference depends on the ledger's inputs, the config, today's date and which meetings
have started or come within the horizon; when none of those moved since the last
pass, what was stored is still true and a no-change pass stops before deriving.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass

from syncd import infer, relate, rules
from syncd.config import Config
from syncd.infer import ContactRecord, Occurrence, Person
from syncd.ledger import Interaction, Ledger, occurrence_from, record_from

#: what is stored of a derivation; a syncd that stores more derives once after an upgrade
SNAPSHOT_FORMAT = "2"  # 2: SPEC §8 fields, stories and interactions


@dataclass
class Inputs:
    """Everything inference reads (``infer.derive``'s arguments but the identity)."""

    occurrences: list[Occurrence]
    contacts: list[ContactRecord]
    me: set[str]
    settings: infer.Settings
    now: dt.datetime
    until: dt.datetime


def rule_settings(c: Config) -> rules.RuleSettings:
    """The config's rule tables."""
    return rules.RuleSettings(c.timezone, c.first_meeting, c.due_after, c.lookback, c.daily_limit,
                              c.cadences, c.birthdays, c.days_before, max_others=c.max_others,
                              weekly_limit=c.weekly_limit,
                              learn=relate.Learn(c.learn, c.learn_factor, c.learn_min.days, c.learn_max.days),
                              people=c.people, milestones=c.milestones)


class Derive:
    """Derives people from one ledger under one config."""

    def __init__(self, config: Config, ledger: Ledger, now: Callable[[], dt.datetime]) -> None:
        self.config = config
        self.ledger = ledger
        self.now = now

    def _orders(self) -> dict[int, int]:
        names = [a.name for a in self.config.accounts]
        rows = sorted(self.ledger.collections(),
                      key=lambda r: (names.index(r.account) if r.account in names else len(names), r.id))
        return {r.id: i for i, r in enumerate(rows)}

    def inputs(self) -> Inputs:
        """What inference reads from the ledger, as of now."""
        orders = self._orders()
        where = {c.id: (c.account, c.name) for c in self.ledger.collections()}
        occs = [occurrence_from(json.loads(data), orders.get(cid, 1 << 30), *where.get(cid, ("", "")))
                for cid, data in self.ledger.all_occurrences() if cid in orders]
        contacts = [record_from(json.loads(data), (orders.get(cid, 1 << 30), href, idx), f"at:{cid}:{href}:{idx}")
                    for cid, href, idx, data in self.ledger.all_contacts() if cid in orders]
        me = set(self.config.me) | self.ledger.self_addresses()
        s = infer.Settings(self.config.max_attendees, self.config.count_all_day,
                           self.config.match_titles, self.config.track_unknown, tuple(self.config.ignore))
        now = self.now()
        return Inputs(occs, contacts, me, s, now, now + self.config.horizon)

    def people(self) -> list[Person]:
        """Inference over everything in the ledger, as of now, with remembered identities."""
        i = self.inputs()
        known = self.ledger.identity()
        people, remembered = infer.derive(i.occurrences, i.contacts, i.me, i.settings, i.now, i.until,
                                          identity=known)
        if remembered is not None:
            # Before any follow-up is written for these ids: a crash in between
            # re-derives the same ids from the same inputs.
            with self.ledger.transaction():
                self.ledger.put_identity(remembered, known)
        return people

    def unchanged_since_last(self, now: dt.datetime) -> bool:
        """True when inference would give what the last reconcile stored.

        Inference depends on the ledger's inputs, the config, today's date and which
        meetings have started or come within the horizon; if none of those moved, the
        people and the plan are what they were, and a no-change pass can stop here.
        """
        last = self.ledger.meta("reconciled")
        if not last or self.ledger.followups(("pending",)):
            return False
        gen, day, fingerprint, when = last.split("|")
        then = dt.datetime.fromisoformat(when)
        if (gen, day, fingerprint) != self.reconcile_key(now)[:3]:
            return False
        h = self.config.horizon
        return not self.ledger.starts_between([(then, now), (then + h, now + h)])

    def reconcile_key(self, now: dt.datetime) -> tuple[str, str, str, str]:
        return (self.ledger.meta("generation") or "0", rules.local_date(now, self.config.timezone).isoformat(),
                f"{self.config.fingerprint}:{SNAPSHOT_FORMAT}", now.isoformat())

    def store(self, people: list[Person]) -> None:
        """Store what was derived (inside one transaction): the people snapshot, their
        stories and every counted interaction."""
        from syncd import views

        history = self.ledger.followups()
        today = rules.local_date(self.now(), self.config.timezone)
        s = rule_settings(self.config)
        shared: dict[int, dt.date] = {}  # meetings are shared objects: their local date is found once
        snap, stories = {}, {}
        rows: dict[str, list[Interaction]] = {}
        for p in people:
            entry, story = views.snapshot(p, history, s, today, shared)
            snap[p.key] = json.dumps(entry, sort_keys=True)
            stories[p.key] = json.dumps(story, sort_keys=True)
            rows[p.key] = [Interaction(p.key, m.uid, m.recurrence_id, m.start, m.end, m.summary, m.account,
                                       m.calendar, m.others, m.organised) for m in p.meetings]
        with self.ledger.transaction():
            self.ledger.replace_people(snap, stories, rows)
