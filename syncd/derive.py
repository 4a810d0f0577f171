"""Ledger -> people: who the user met, with remembered identities, and what is stored
of it (the people snapshot, stories, interactions).

Public API: ``Derive`` (``changed``, ``people``, ``inputs``, ``store``,
``unchanged_since_last``, ``reconcile_key``), ``Derivation``, ``Inputs`` and
``rule_settings``.

A pass costs what changed. The ingest notes every UID whose occurrences it changed
(``Ledger.touched``) and the write-back every person whose follow-ups the user changed
(``Ledger.stale``); the derivation keeps an index from addresses and title words to
UIDs, and what each person was derived from (their records, ``bases``). From those it
finds the people a change can touch:

- whoever owns, or owned, an address of a changed meeting (before or after the change);
- whoever a title could name, when a meeting that counts by title alone changed;
- whoever's records changed, and whoever shares a name with them (names that are
  ambiguous match no title);
- meetings that started, or came within the horizon, since the last derivation.

Only those people are derived again, from the meetings the index finds for them; the
address book is read whole (it decides ids and who owns which address). A derivation
under another config, other addresses of the user, or on another day, or one after a
failed write-back, starts from scratch, as does one after a change too large to be
worth tracing. ``tests/core/test_incremental.py`` checks that both always agree.

Inference depends on the ledger's inputs, the config, today's date and which
meetings have started or come within the horizon; when none of those moved since the
last pass, what was stored is still true and a no-change pass stops before deriving.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from syncd.aside import Aside
from syncd.clock import local_date
from syncd.config import Config
from syncd.identity import email_link
from syncd.ledger import Interaction, Ledger, PersonRows, occurrence_from, parse_iso, record_from
from syncd.model import ContactRecord, Meeting, Occurrence, Person

if TYPE_CHECKING:
    # Inference and the rules load when a pass has something to derive: a pass that
    # finds nothing changed needs neither (a no-change pass is mostly start-up).
    from syncd import infer, rules, views

#: what is stored of a derivation; a syncd that stores more derives once after an upgrade
SNAPSHOT_FORMAT = "3"  # 2: SPEC §8 fields, stories and interactions; 3: the index

#: what the index holds (``infer.index_terms``); another format rebuilds it
INDEX_FORMAT = "1"

#: how ``Derive._directory`` keeps the address book between passes
DIRECTORY_FORMAT = "1"

#: a derivation that makes the index anew writes it this many UIDs at a time
_INDEX_BATCH = 5000
#: people whose stored rows are read at a time (``_on_top``, ``Derivation.each``)
_ON_TOP_BATCH = 200

#: past this many changed UIDs, starting from scratch costs less than tracing them
FULL_AT = 2000

_STRANGER = "stranger:"

#: what the index holds of one UID: its addresses and its title words (tuples: at
#: 200,000 events a derivation from scratch holds one per UID)
Terms = tuple[tuple[str, ...], tuple[str, ...]]  # the basis of someone known by one address, not by a record


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
    from syncd import relate, rules
    return rules.RuleSettings(c.timezone, c.first_meeting, c.due_after, c.lookback, c.daily_limit,
                              c.cadences, c.birthdays, c.days_before, max_others=c.max_others,
                              weekly_limit=c.weekly_limit,
                              learn=relate.Learn(c.learn, c.learn_factor, c.learn_min.days, c.learn_max.days),
                              people=c.people, milestones=c.milestones)


@dataclass
class Derivation:
    """What one pass derived: everyone (``full``) or the people a change touched."""

    people: list[Person]
    full: bool
    key: str  # the config, format and addresses of the user it was derived under
    day: str  # the local date it was derived on
    #: ids (and aliases) of people not derived again, whose follow-ups stay as they are
    kept: frozenset[str] = frozenset()
    dropped: set[str] = field(default_factory=set)  # ids whose stored rows go
    bases: dict[str, str] = field(default_factory=dict)  # what each derived person was made of
    index: dict[str, Terms] = field(default_factory=dict)  # uid -> addresses, words
    rebuild: str | None = None  # the index was made anew (and written), for this key
    uids: set[str] | None = field(default_factory=set)  # changed UIDs it took into account (None: all)
    stale: set[str] = field(default_factory=set)  # changed follow-ups' people it took into account
    directory: str | None = None  # the address book read again this pass, to keep (``Derive._directory``)
    #: people given the changed meetings on top of their stored ones: of their
    #: interaction rows, only those of ``uids`` can have changed
    spliced: set[str] = field(default_factory=set)
    #: the bases stored when it was derived (what ``put_derivation`` compares with)
    before: dict[str, str] | None = None
    #: where the meetings of ``people`` are, when not in ``Person.meetings`` (a
    #: derivation from scratch): read them with ``each``
    aside: Aside | None = None
    #: the stored meetings of some of ``spliced`` (person -> those not of ``uids``),
    #: read when ``each`` comes to them: ``Person.meetings`` holds only their changed ones
    stored: Callable[[list[str]], dict[str, list[Meeting]]] | None = None
    #: what is stored of a person, from their meetings (``views.summary``), made for those
    #: whose stored meetings ``each`` reads, the first time it does (``summaries``): the
    #: store then needs only their changed meetings, not a second read
    summarise: Callable[[Person], views.Summary] | None = None
    summaries: dict[str, views.Summary] = field(default_factory=dict)

    def each(self, summarised: Container[str] = ()) -> Iterator[Person]:
        """``people`` in order, each with all their meetings while it is their turn:
        those set aside, or stored, are read some people at a time and let go after.
        ``summarised``: people given without their stored meetings."""
        if self.aside is None and self.stored is None:
            yield from self.people
            return
        for at in range(0, len(self.people), _ON_TOP_BATCH):
            some = self.people[at:at + _ON_TOP_BATCH]
            wanted = [p.key for p in some if p.key in self.spliced and p.key not in summarised]
            stored = self.stored(wanted) if self.stored and wanted else {}
            for p in some:
                own = p.meetings
                if self.aside is not None:
                    p.meetings = self.aside.meetings(p)
                elif p.key in stored:  # stable: the changed ones first among equals, as from scratch
                    p.meetings = sorted(own + stored.pop(p.key), key=_by_start)
                    if self.summarise is not None and p.key not in self.summaries:
                        self.summaries[p.key] = self.summarise(p)
                try:
                    yield p
                finally:
                    p.meetings = own

    def close(self) -> None:
        """Let go of the meetings set aside."""
        if self.aside is not None:
            self.aside.close()


def _basis(p: Person, addresses: Iterable[str]) -> str:
    """What an address-book person is derived from, as text: equal text, equal person."""
    from syncd import infer
    return json.dumps([p.key, p.name, sorted(infer.labels(p)), sorted(addresses), p.emails, p.groups, p.refs,
                       sorted(p.origins), repr((p.birthday, p.anniversary, p.milestones))])


def _basis_parts(text: str) -> tuple[set[str], set[str]]:
    """The addresses and names of a stored basis."""
    if text.startswith(_STRANGER):
        return {text[len(_STRANGER):]}, set()
    d = json.loads(text)
    return set(d[3]), set(d[2])


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

    def _where(self) -> dict[int, tuple[str, str]]:
        """Collection id -> (account, calendar name), as occurrences are labelled."""
        return {c.id: (c.account, c.name) for c in self.ledger.collections()}

    def _decode(self, rows: Iterable[tuple[int, str]], orders: dict[int, int],
                where: dict[int, tuple[str, str]]) -> list[Occurrence]:
        return [occurrence_from(json.loads(data), orders[cid], *where.get(cid, ("", "")))
                for cid, data in rows if cid in orders]

    def _contacts(self, orders: dict[int, int]) -> list[ContactRecord]:
        return [record_from(json.loads(data), (orders[cid], href, idx), f"at:{cid}:{href}:{idx}")
                for cid, href, idx, data in self.ledger.all_contacts() if cid in orders]

    def _settings(self) -> infer.Settings:
        from syncd import infer
        return infer.Settings(self.config.max_attendees, self.config.count_all_day,
                              self.config.match_titles, self.config.track_unknown, tuple(self.config.ignore))

    def inputs(self) -> Inputs:
        """What inference reads from the ledger, as of now."""
        orders = self._orders()
        me = set(self.config.me) | self.ledger.self_addresses()
        now = self.now()
        return Inputs(self._decode(self.ledger.all_occurrences(), orders, self._where()), self._contacts(orders), me,
                      self._settings(), now, now + self.config.horizon)

    def _keys(self, me: Iterable[str]) -> tuple[str, str]:
        """The key a derivation is valid under (with the day), and the key of its index."""
        mine = hashlib.sha256(json.dumps(sorted(me)).encode()).hexdigest()[:16]
        return (f"{self.config.fingerprint}:{SNAPSHOT_FORMAT}:{mine}",
                f"{INDEX_FORMAT}:{mine}:{self.config.fingerprint}")

    def changed(self) -> Derivation:
        """Derive again the people whatever changed since the last derivation touched
        (see the module docstring), or everyone when that is due."""
        from syncd import infer
        now = self.now()
        me = frozenset(e.lower() for e in set(self.config.me) | self.ledger.self_addresses())
        key, index_key = self._keys(me)
        day = local_date(now, self.config.timezone).isoformat()
        last_key, last_day, last = [*(self.ledger.meta("derived") or "").split("|"), "", ""][:3]
        many = self.ledger.touched(FULL_AT)
        then = dt.datetime.fromisoformat(last) if last_key == key and last else None
        if then is None or then > now or many is None or self.ledger.meta("indexed") != index_key:
            return self._full(now, me, key, day, index_key, many)
        uids = many
        h = self.config.horizon
        uids |= self.ledger.uids_starting([(then, now), (then + h, now + h)])
        orders = self._orders()
        s = self._settings()
        where = self._where()
        fresh = self._decode(self.ledger.occurrences_of(uids), orders, where)
        index = infer.terms_by_uid(fresh, uids, me, infer.Ignore(s.ignore))
        addresses, found = self.ledger.index_of(uids)
        for a, w in index.values():
            addresses.update(a)
            found.update(w)
        known = self.ledger.identity()
        book, owned, bases, directory = self._directory(orders, me, s, known, key)
        before = self.ledger.bases()

        def owners(emails: Iterable[str]) -> set[str]:
            out = set()
            for email in emails:
                if (p := book.by_email.get(email)) is not None:
                    out.add(p.key)
                if (link := known.links.get(email_link(email))) is not None:
                    out.add(known.canonical(link))
            return out

        # Derived whole, from every meeting of theirs: people whose records changed (and
        # whoever owned their addresses, or shares one of their names), or are gone.
        whole = {k for k, b in bases.items() if before.get(k) != b}
        whole |= {k for k, b in before.items() if k not in bases and not b.startswith(_STRANGER)}
        moved: set[str] = set()
        names: set[str] = set()
        for k in list(whole):
            for b in (before.get(k), bases.get(k)):
                if b is not None:
                    more, called = _basis_parts(b)
                    moved |= more
                    names |= called
        whole |= owners(moved) | book.holders(names)
        strangers = {e for e in addresses | moved if e not in book.by_email} - me
        # An address once someone else's points to their id: if someone known by one
        # address holds it now, both claim it, and which one keeps it is decided as
        # from scratch (by address), so both are derived again.
        held = {k: b[len(_STRANGER):] for k, b in before.items() if b.startswith(_STRANGER)}
        for e in list(strangers):
            if (link := known.links.get(email_link(e))) is not None and (pid := known.canonical(link)) in held:
                whole.add(pid)
                strangers.add(held[pid])
        for k, b in before.items():
            address = b[len(_STRANGER):]
            if b.startswith(_STRANGER) and (k in whole or address in book.by_email or address in strangers):
                whole.add(k)
                strangers.add(address)
        strangers -= set(book.by_email) | me
        # Given the changed meetings on top of what is stored: whoever a changed meeting
        # names (by address or title), whose follow-ups the user changed, and on a new
        # day everyone (their figures and their plan depend on the day).
        stale = self.ledger.stale()
        touched = owners(addresses) | book.called(found) | {known.canonical(p) for p in stale}
        if last_day != day:
            touched |= self.ledger.people_ids()
        touched -= whole
        cards = {p.key for p in book.people}
        wanted = set(strangers)
        for p in book.people:
            if p.key in whole:
                wanted |= owned.get(p.key, set())
        more = self.ledger.uids_of(wanted - me, book.title_words(whole & cards)) - uids
        occs = fresh + self._decode(self.ledger.occurrences_of(more), orders, where)
        # Someone known by an address and not derived again keeps their id: from scratch,
        # they would claim it again (a conflict over it put them in ``whole``).
        keep = {k for k, b in before.items() if b.startswith(_STRANGER) and k not in whole}
        people, remembered = book.attach(occs, now, now + h, only=(whole | touched) & cards, strangers=strangers,
                                         held=keep)
        self._remember(remembered, known)
        groups = (remembered or known).groups()
        topped = touched & cards | {k for k in touched if before.get(k, "").startswith(_STRANGER)}
        # Many people (a new day: everyone) get their stored meetings when their turn
        # comes (``Derivation.each``), a few (a pass after some edits) now: read once.
        lazy = len(topped) > _ON_TOP_BATCH
        people += self._on_top(people, topped, uids, before, groups, lazy)
        done = {p.key for p in people}
        dirty = whole | touched
        kept: set[str] = set()
        for k in self.ledger.people_ids() - dirty - done:
            kept |= groups.get(k, set()) | {k}
        d = Derivation(people, False, key, day, frozenset(kept), dirty - done,
                       _bases(people, bases), index, None, uids, stale, directory, topped & done, before)
        if lazy and topped & done:
            from syncd import views
            settings, today = rule_settings(self.config), local_date(now, self.config.timezone)
            d.stored = self._stored(uids)
            d.summarise = lambda p: views.summary(p, settings, today)
        return d

    def _stored(self, uids: set[str]) -> Callable[[list[str]], dict[str, list[Meeting]]]:
        """Reads people's stored meetings but those of ``uids`` (``Derivation.stored``)."""
        def read(keys: list[str]) -> dict[str, list[Meeting]]:
            return {k: [_meeting(r) for r in rows if r[1] not in uids]
                    for k, rows in self.ledger.meetings_of(keys, {}).items()}
        return read

    def _on_top(self, people: list[Person], keys: set[str], uids: set[str], before: dict[str, str],
                groups: dict[str, set[str]], lazy: bool) -> list[Person]:
        """Give ``keys`` their stored meetings but those of ``uids`` (whose meetings
        ``people`` holds as derived now): now, or with ``lazy`` in ``Derivation.each``
        (``_stored``); and their stored upcoming meetings but those of ``uids``. Returns
        the people known by one address among them, whom no record brought into ``people``."""
        by_key = {p.key: p for p in people}
        extra = []
        every = sorted(keys)
        read = self._stored(uids)
        stored: dict[str, list[Meeting]] = {}
        # Some people at a time: on a new day ``keys`` is everyone, and all their stored
        # meetings at once would not fit the memory a pass may take.
        for at in range(0, len(every), _ON_TOP_BATCH):
            batch = every[at:at + _ON_TOP_BATCH]
            if not lazy:
                stored = read(batch)
            stories = self.ledger.stories_of(batch)
            entries = self.ledger.entries_of([k for k in batch if k not in by_key])
            for k in batch:
                p = by_key.get(k)
                if p is None:  # someone known by an address, met in no changed meeting
                    entry = entries.get(k)
                    if entry is None:
                        continue
                    p = Person(key=k, name=entry["name"], emails=[before[k][len(_STRANGER):]],
                               aliases=frozenset(groups.get(k, set()) | {k}))
                    extra.append(p)
                p.meetings = sorted([m for m in p.meetings if m.uid in uids] + stored.pop(k, []), key=_by_start)
                p.upcoming = sorted([m for m in p.upcoming if m.uid in uids]
                                    + [_upcoming(u) for u in stories.get(k, {}).get("upcoming", ())
                                       if u["uid"] not in uids], key=_by_start)
        return extra

    def _full(self, now: dt.datetime, me: frozenset[str], key: str, day: str, index_key: str,
              uids: set[str] | None) -> Derivation:
        """Everyone, from every meeting. ``uids``: the changed UIDs (None: too many to
        trace, so the index is made anew)."""
        from syncd import infer
        orders = self._orders()
        s = self._settings()
        known = self.ledger.identity()
        book, _, bases, directory = self._directory(orders, me, s, known, key)
        rebuild = uids is None or self.ledger.meta("indexed") != index_key
        index: dict[str, Terms] = {u: ((), ()) for u in uids or ()}
        ignored = infer.Ignore(s.ignore)

        def stream() -> Iterator[Occurrence]:
            # A UID at a time: the ledger is never held whole (200,000 events would not fit
            # the memory a pass may take); the index is built on the way, and written
            # on the way when it is made anew.
            where = self._where()
            for uid, rows in itertools.groupby(self.ledger.occurrences_by_uid(orders), key=lambda r: r[0]):
                shared: dict[str, str] = {}
                occs = [occurrence_from(json.loads(data), orders[cid], *where.get(cid, ("", "")), shared=shared)
                        for _, cid, data in rows]
                if rebuild or uid in index:
                    index.update(infer.terms_by_uid(occs, (), me, ignored))
                    if rebuild and len(index) >= _INDEX_BATCH:
                        self.ledger.put_index(index)
                        index.clear()
                yield from infer.dedupe(occs)

        horizon = now + self.config.horizon
        aside = Aside()
        try:
            if rebuild:
                with self.ledger.transaction():
                    self.ledger.put_index({}, clear=True)
                    people, remembered = book.attach(stream(), now, horizon, deduped=True, aside=aside)
                    self.ledger.put_index(index)
                    index = {}
            else:
                people, remembered = book.attach(stream(), now, horizon, deduped=True, aside=aside)
            self._remember(remembered, known)
        except BaseException:
            aside.close()
            raise
        derived = _bases(people, bases)
        before = self.ledger.bases()
        return Derivation(people, True, key, day, frozenset(), set(before) - set(derived), derived, index,
                          index_key if rebuild else None, uids, self.ledger.stale(), directory, before=before,
                          aside=aside)

    def _directory(self, orders: dict[int, int], me: frozenset[str], s: infer.Settings, known: infer.Identity,
                   key: str) -> tuple[infer.Directory, dict[str, set[str]], dict[str, str], str | None]:
        """The address book as people (``infer.Directory``), who owns which address, and
        what each person is made of; and, when it was read again, what to keep of it.
        While the cards and the identity stay as they are, the last pass's is thawed."""
        from syncd import infer
        valid = f"{DIRECTORY_FORMAT}|{self.ledger.book_version()}|{key}|{sorted(orders.items())}"
        stored = self.ledger.kept("directory")
        if stored is not None and stored.startswith(valid + "\n"):
            state = json.loads(stored[len(valid) + 1:])
            book = infer.Directory.thaw(state["book"], me, s, known)
            return book, book.owned(), state["bases"], None
        book = infer.Directory(self._contacts(orders), me, s, known)
        owned = book.owned()
        bases = {p.key: _basis(p, owned.get(p.key, ())) for p in book.people}
        return book, owned, bases, f"{valid}\n{json.dumps({'book': book.freeze(), 'bases': bases})}"

    def _remember(self, remembered: infer.Identity | None, known: infer.Identity) -> None:
        if remembered is not None:
            # Before any follow-up is written for these ids: a crash in between
            # re-derives the same ids from the same inputs.
            with self.ledger.transaction():
                self.ledger.put_identity(remembered, known)

    def people(self) -> list[Person]:
        """Inference over everything in the ledger, as of now, with remembered identities."""
        from syncd import infer
        i = self.inputs()
        known = self.ledger.identity()
        people, remembered = infer.derive(i.occurrences, i.contacts, i.me, i.settings, i.now, i.until,
                                          identity=known)
        self._remember(remembered, known)
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
        return (self.ledger.meta("generation") or "0", local_date(now, self.config.timezone).isoformat(),
                f"{self.config.fingerprint}:{SNAPSHOT_FORMAT}", now.isoformat())

    def store(self, d: Derivation, valid: bool = True, history: rules.History | None = None) -> None:
        """Store what was derived, in one transaction: the people snapshot, their stories
        and counted interactions, and what the derivation consumed. ``valid`` false (the
        write-back failed: the plan of these people is not done) makes the next
        derivation start from scratch. ``history``: the follow-ups the plan of ``d``
        read (``Derive.history``), when it ran: the due dates stored count completed
        catch-ups only (``rules.last_contact``), which a write-back never makes, so
        they need not be read again after it."""
        try:
            self._store(d, valid, history)
        finally:
            d.close()

    def history(self, d: Derivation) -> rules.History:
        """The follow-up rows the plan and the store of ``d`` read: all of them for
        everyone; for a few people, theirs and those every plan reads (the open ones,
        and this week's for the limits). Closed follow-ups pile up over the years: a
        pass after a few edits reads a few rows, not all of them."""
        from syncd import rules

        ids: set[str] = set()
        few = not d.full and len(d.people) <= _ON_TOP_BATCH
        for p in d.people if few else ():
            if not p.aliases:  # found by address: only the whole history tells whose
                few = False
                break
            ids |= p.aliases | p.origins
        if not few:
            return rules.History(self.ledger.followups())
        today = local_date(self.now(), self.config.timezone)
        return rules.History(self.ledger.followups_for(ids, rules.week_start(today)))

    def _store(self, d: Derivation, valid: bool, history: rules.History | None) -> None:
        from syncd import views

        history = self.history(d) if history is None else history
        today = local_date(self.now(), self.config.timezone)
        s = rule_settings(self.config)
        # Meetings held by everyone at once are shared objects: their local date is found
        # once. Those read back (set aside or stored) are not, and once let go, their ids
        # are reused.
        shared: dict[int, dt.date] | None = {} if d.aside is None and d.stored is None else None

        def rows() -> Iterator[PersonRows]:
            # people summarised as the plan read them: of their stored meetings, the
            # store needs nothing more (their interactions written are the changed ones)
            known = d.summaries
            for p in d.each(known):
                found = known.get(p.key)
                entry, story = views.finish(found if found is not None else views.summary(p, s, today, shared),
                                            history, s, today)
                yield PersonRows(p.key, json.dumps(entry, sort_keys=True), json.dumps(story, sort_keys=True),
                                 _interactions(p, d.uids if p.key in d.spliced else None))

        with self.ledger.transaction():
            self.ledger.replace_people(rows(), None if d.full else d.dropped, spliced=(d.spliced, d.uids or set()))
            self.ledger.put_derivation(d.index, d.bases, d.dropped, d.uids, d.stale, d.before)
            self.ledger.set_meta("derived", f"{d.key}|{d.day}|{self.now().isoformat()}" if valid else "")
            if d.rebuild is not None:
                self.ledger.set_meta("indexed", d.rebuild)
            if d.directory is not None:
                self.ledger.keep("directory", d.directory)


def _interactions(p: Person, uids: set[str] | None = None) -> Iterator[Interaction]:
    """A person's counted meetings as interaction rows (those of ``uids`` alone, if given)."""
    for m in p.meetings:
        if uids is not None and m.uid not in uids:
            continue
        yield Interaction(p.key, m.uid, m.recurrence_id, m.start, m.end, m.summary, m.account, m.calendar, m.others,
                          m.organised)


def _by_start(m: Meeting) -> tuple[dt.datetime, str]:
    """How a person's meetings are ordered (``infer.Directory.attach`` sorts so too)."""
    return m.start, m.uid


def _bases(people: Iterable[Person], cards: dict[str, str]) -> dict[str, str]:
    """What each derived person is made of: their records, or their one address."""
    return {p.key: cards[p.key] if p.in_address_book else _STRANGER + p.emails[0] for p in people}


def _meeting(row: tuple[Any, ...]) -> Meeting:
    """A stored interaction row (``Ledger.meetings_of``) as a meeting."""
    _, uid, rid, start, end, summary, account, calendar, others, organised = row
    return Meeting(start, summary, uid, rid, end, account, calendar, others, bool(organised))


def _upcoming(d: dict[str, Any]) -> Meeting:
    """A stored upcoming meeting (a story's) as a meeting."""
    return Meeting(parse_iso(d["start"]), d["summary"], d["uid"], d["recurrence_id"],  # type: ignore[arg-type]
                         parse_iso(d["end"]), d["account"], d["calendar"], d["others"], d["organised"])
