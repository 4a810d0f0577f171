"""Who the user met, and when: SPEC §4 as a pure function.

Public API: ``infer(occurrences, contacts, me, settings, now) -> list[Person]``.
Input is plain data (occurrences from ``syncd.events``, contact records from
``syncd.vcard``), so the result depends on nothing but its arguments: input order
does not matter, and the same meeting seen in several calendars counts once.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from syncd.config import default
from syncd.identity import Assigner, Claim, Identity
from syncd.model import ContactRecord, Meeting, Milestone, Occurrence, PartialDate, Party, Person

if TYPE_CHECKING:
    from syncd.aside import Aside

__all__ = [
    "ContactRecord",
    "Directory",
    "Meeting",
    "Milestone",
    "Occurrence",
    "PartialDate",
    "Party",
    "Person",
    "Settings",
    "derive",
    "index_terms",
    "infer",
    "labels",
    "terms_by_uid",
    "words",
]

NOT_PEOPLE = frozenset({"ROOM", "RESOURCE", "GROUP"})


@dataclass(frozen=True)
class Settings:
    """The ``[inference]`` table."""

    max_attendees: int = default("inference.max_attendees")
    count_all_day: bool = default("inference.count_all_day")
    match_titles: bool = default("inference.match_titles")
    track_unknown: bool = default("inference.track_unknown")
    ignore: tuple[str, ...] = ()  # address globs that are never people


def dedupe(occurrences: Iterable[Occurrence]) -> list[Occurrence]:
    """One occurrence per (uid, recurrence_id): the last-modified copy, ties by order."""
    best: dict[tuple[str, str], Occurrence] = {}
    floor = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    for occ in occurrences:
        k = (occ.uid, occ.recurrence_id)
        cur = best.get(k)
        if cur is None or _rank(occ, floor) > _rank(cur, floor):
            best[k] = occ
    return sorted(best.values(), key=lambda o: (o.start, o.uid, o.recurrence_id))


def _rank(occ: Occurrence, floor: dt.datetime) -> tuple[dt.datetime, int, str]:
    # The summary breaks the last tie so that the choice never depends on input order.
    return (occ.last_modified or floor, -occ.order, occ.summary)


class _Union:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def join(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _first(values: Iterable[object]) -> object:
    return next((v for v in values if v), None)


def merge_contacts(records: Iterable[ContactRecord]) -> list[Person]:
    """Merge records that share an email, transitively; first record wins per field."""
    recs = sorted(records, key=lambda r: (r.order, r.name or "", r.emails))
    union = _Union(len(recs))
    owner: dict[str, int] = {}
    for i, rec in enumerate(recs):
        for email in rec.emails:
            if email in owner:
                union.join(owner[email], i)
            else:
                owner[email] = i
    groups: dict[int, list[ContactRecord]] = {}
    for i, rec in enumerate(recs):
        groups.setdefault(union.find(i), []).append(rec)
    people = []
    for members in groups.values():
        emails = sorted({e for r in members for e in r.emails})
        name = _first(r.name for r in members) or (emails[0] if emails else "")
        people.append(
            Person(
                key=emails[0] if emails else f"name:{str(name).casefold()}",
                name=str(name),
                emails=emails,
                groups=sorted({g for r in members for g in r.groups}),
                nicknames=sorted({n for r in members for n in r.nicknames}),
                in_address_book=True,
                birthday=_first(r.birthday for r in members),  # type: ignore[arg-type]
                anniversary=_first(r.anniversary for r in members),  # type: ignore[arg-type]
                refs=sorted({r.ref for r in members if r.ref}),
                milestones=_milestones(members),
            )
        )
    return people


def _milestones(records: Iterable[ContactRecord]) -> list[Milestone]:
    """One date per label (any case): the first record in config order wins."""
    seen: dict[str, Milestone] = {}
    for rec in records:
        for m in rec.milestones:
            seen.setdefault(m.label.casefold(), m)
    return sorted(seen.values(), key=lambda m: (m.label.casefold(), m.label))


class Ignore:
    """The ``ignore`` globs: shell-style, case-insensitive, tested once per address."""

    def __init__(self, globs: Iterable[str]) -> None:
        pattern = "|".join(fnmatch.translate(g.lower()) for g in globs)
        self._re = re.compile(pattern) if pattern else None
        self._seen: dict[str, bool] = {}  # the same few thousand addresses recur

    def __bool__(self) -> bool:
        return self._re is not None

    def __call__(self, email: str | None) -> bool:
        """True when ``email`` matches a glob."""
        if self._re is None or not email:
            return False
        hit = self._seen.get(email)
        if hit is None:
            hit = self._seen[email] = bool(self._re.match(email.lower()))
        return hit


def drop_ignored(records: Iterable[ContactRecord], ignored: Ignore) -> list[ContactRecord]:
    """Records without their ignored addresses; one whose every address is ignored goes."""
    out = []
    for rec in records:
        kept = tuple(e for e in rec.emails if not ignored(e))
        if rec.emails and not kept:
            continue
        out.append(rec if kept == rec.emails else replace(rec, emails=kept))
    return out


class _Titles:
    """Whole-word, case-insensitive name matching with the ambiguity rule."""

    def __init__(self, people: list[Person]) -> None:
        owners: dict[str, set[int]] = {}
        for i, p in enumerate(people):
            for label in labels(p):
                owners.setdefault(label, set()).add(i)
        self.people = people
        self.owners = owners  # label -> who holds it (one: it matches; more: ambiguous)
        # A name shared by two people is ambiguous and matches no one.
        self.by_token: dict[str, list[tuple[str, int]]] = {}
        for label, who in owners.items():
            if len(who) != 1:
                continue
            tokens = re.findall(r"\w+", label)
            if tokens:
                self.by_token.setdefault(tokens[0], []).append((label, next(iter(who))))
        # Compiled when a title first holds the label's first word: a pass that looks
        # at a few titles compiles a few of the address book's thousands of names.
        self._patterns: dict[str, re.Pattern[str]] = {}

    def _pattern(self, label: str) -> re.Pattern[str]:
        found = self._patterns.get(label)
        if found is None:
            found = self._patterns[label] = re.compile(r"(?<!\w)" + re.escape(label) + r"(?!\w)", re.I)
        return found

    def match(self, summary: str) -> set[int]:
        found: set[int] = set()
        for token in set(re.findall(r"\w+", summary.casefold())):
            for label, who in self.by_token.get(token, ()):
                pattern = self._pattern(label)
                if pattern.search(summary) or pattern.search(summary.casefold()):
                    found.add(who)
        return found


def labels(person: Person) -> set[str]:
    """The names a title may call ``person`` by (casefolded)."""
    return {label.strip().casefold() for label in {person.name, *person.nicknames}
            if label and label.strip() and "@" not in label}


def words(text: str) -> set[str]:
    """The words title matching looks at (casefolded)."""
    return set(re.findall(r"\w+", text.casefold()))


def index_terms(occ: Occurrence, me: frozenset[str], ignored: Ignore) -> tuple[set[str], set[str]]:
    """What finds ``occ`` again for a person (``syncd.derive``'s index): the addresses
    of the parties it may count for, and the words of its summary when it could count
    by title alone (nobody but the user and rooms)."""
    admitted = _counted_parties(occ, me, ignored)
    if admitted is None:  # declined: counts for nobody
        return set(), set()
    parties, anyone = admitted
    # Only the people it may count for: rooms, the user and who declined are no one's.
    addresses = {p.email for p in parties if p.email}
    return addresses, words(occ.summary) if not anyone and occ.summary else set()


def terms_by_uid(occurrences: Iterable[Occurrence], uids: Iterable[str], me: frozenset[str],
                 ignored: Ignore) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """uid -> the sorted ``index_terms`` of its occurrences (every one of ``uids`` has
    an entry, empty when its occurrences are gone)."""
    found: dict[str, tuple[set[str], set[str]]] = {u: (set(), set()) for u in uids}
    for occ in occurrences:
        addresses, titled = index_terms(occ, me, ignored)
        entry = found.setdefault(occ.uid, (set(), set()))
        entry[0].update(addresses)
        entry[1].update(titled)
    return {u: (tuple(sorted(a)), tuple(sorted(w))) for u, (a, w) in found.items()}


def _counted_parties(occ: Occurrence, me: frozenset[str],
                     ignored: Ignore | None = None) -> tuple[list[Party], bool] | None:
    """People rule 5 admits, and whether the event has anyone but the user (and rooms).

    None when the user declined (rule 4). Ignored addresses are treated as absent.
    """
    parties = ([occ.organizer] if occ.organizer else []) + list(occ.attendees)
    if ignored:
        parties = [p for p in parties if p.email in me or not ignored(p.email)]
    others: dict[str, Party] = {}
    anyone = False
    for p in parties:
        if p.email in me:
            if p.partstat == "DECLINED":
                return None
            continue
        if p.cutype in NOT_PEOPLE:
            continue
        anyone = True
        if p.partstat == "DECLINED" or not p.email:
            continue
        prev = others.get(p.email)
        if prev is None or (p.name and not prev.name):
            others[p.email] = p
    declined = {p.email for p in parties if p.email and p.email not in me and p.partstat == "DECLINED"}
    return [p for e, p in others.items() if e not in declined], anyone


def infer(
    occurrences: Iterable[Occurrence],
    contacts: Iterable[ContactRecord],
    me: Iterable[str],
    settings: Settings,
    now: dt.datetime,
    until: dt.datetime | None = None,
) -> list[Person]:
    """Everyone known and their counted meetings (SPEC §4), keyed by natural keys.

    ``derive`` with no remembered identity; see there.
    """
    return derive(occurrences, contacts, me, settings, now, until)[0]


def derive(
    occurrences: Iterable[Occurrence],
    contacts: Iterable[ContactRecord],
    me: Iterable[str],
    settings: Settings,
    now: dt.datetime,
    until: dt.datetime | None = None,
    identity: Identity | None = None,
) -> tuple[list[Person], Identity | None]:
    """Everyone known and their counted meetings (SPEC §4).

    Args:
        occurrences: every occurrence of every source calendar (duplicates allowed).
        contacts: every address-book record.
        me: the user's addresses (lower-case).
        settings: the ``[inference]`` table.
        now: meetings that started at or before ``now`` count; later ones are upcoming.
        until: upcoming meetings after this are ignored (the horizon).
        identity: who was who in earlier passes (``syncd.identity``); with it, people
            keep their ids while their records change, and addresses a record no
            longer lists still count for its person.

    Returns:
        People sorted by name then key (address-book people, and with
        ``track_unknown`` attendees with at least one counted meeting), and the
        identity to remember (None when none was given).
    """
    book = Directory(contacts, me, settings, identity)
    return book.attach(occurrences, now, until)


class Directory:
    """The address book of one pass: people made of contact records, with their ids
    (phase one of ``derive``); ``attach`` gives them their meetings (phase two).

    Between the two phases the incremental derivation (``syncd.derive``) asks who owns
    an address or a name, and then attaches the meetings of only some people: the
    address book is always read whole (it decides ids and who owns which address), the
    calendars only where something changed.
    """

    def __init__(self, contacts: Iterable[ContactRecord], me: Iterable[str], settings: Settings,
                 identity: Identity | None = None) -> None:
        self.me = frozenset(e.lower() for e in me)
        self.settings = settings
        self.ignored = ignored = Ignore(settings.ignore)
        self.people = people = merge_contacts(drop_ignored(contacts, ignored) if ignored else contacts)
        self.by_email: dict[str, Person] = {e: p for p in people for e in p.emails}
        self.assigner = Assigner(identity) if identity is not None else None
        self._claims: list[Claim] = []
        if self.assigner is not None:
            assigner = self.assigner
            self._claims = claims = [Claim(tuple(p.refs), tuple(p.emails), p.key) for p in people]
            ids = [assigner.by_records(c) for c in claims]
            for p, c, pid in zip(people, claims, ids, strict=True):
                p.key = pid or assigner.by_emails(c)
            for p, c in zip(people, claims, strict=True):
                p.origins = assigner.origins(c, p.key)
            by_key = {p.key: p for p in people}
            for email, pid in assigner.historical(set(self.by_email)).items():
                self.by_email[email] = by_key[pid]
        self.titles = _Titles(people) if settings.match_titles else None

    def freeze(self) -> dict[str, Any]:
        """What ``thaw`` rebuilds this directory from, as JSON-able data (before
        ``attach``; only with an identity). Reading an address book of thousands of
        cards costs more than a pass after a few changed meetings: while the cards and
        the identity stay as they are, a pass thaws the directory of the last one."""
        assert self.assigner is not None, "a directory without an identity is not kept"
        index = {id(p): i for i, p in enumerate(self.people)}
        claimed = {id(c): i for i, c in enumerate(self._claims)}

        def day(d: PartialDate | None) -> list[int | None] | None:
            return None if d is None else [d.month, d.day, d.year]

        people = [[p.key, p.name, p.emails, p.groups, p.nicknames, day(p.birthday), day(p.anniversary),
                   [[m.label, *(day(m.date) or [])] for m in p.milestones], p.refs, sorted(p.origins),
                   c.natural] for p, c in zip(self.people, self._claims, strict=True)]
        listed = {e for p in self.people for e in p.emails}
        return {"people": people, "takes": [claimed[id(c)] for c in self.assigner.claims],
                "historical": {e: index[id(p)] for e, p in self.by_email.items() if e not in listed}}

    @classmethod
    def thaw(cls, state: dict[str, Any], me: Iterable[str], settings: Settings, identity: Identity) -> Directory:
        """The directory ``freeze`` gave, for the identity it was made under."""
        def day(v: list[int | None] | None) -> PartialDate | None:
            return None if v is None else PartialDate(v[0], v[1], v[2])  # type: ignore[arg-type]

        book = cls.__new__(cls)
        book.me = frozenset(e.lower() for e in me)
        book.settings = settings
        book.ignored = Ignore(settings.ignore)
        book.people = people = []
        book._claims = claims = []
        for key, name, emails, groups, nicks, bday, anniv, ms, refs, origins, natural in state["people"]:
            people.append(Person(key=key, name=name, emails=emails, groups=groups, nicknames=nicks,
                                 in_address_book=True, birthday=day(bday), anniversary=day(anniv),
                                 milestones=[Milestone(m[0], day(m[1:])) for m in ms],  # type: ignore[arg-type]
                                 refs=refs, origins=frozenset(origins)))
            claims.append(Claim(tuple(refs), tuple(emails), natural))
        book.by_email = {e: p for p in people for e in p.emails}
        book.by_email.update((e, people[i]) for e, i in state["historical"].items())
        book.assigner = assigner = Assigner(identity)
        for i in state["takes"]:
            assigner.replay(claims[i], people[i].key)
        book.titles = _Titles(people) if settings.match_titles else None
        return book

    def holders(self, names: Iterable[str]) -> set[str]:
        """Keys of people called by any of ``names`` (casefolded labels)."""
        if self.titles is None:
            return set()
        return {self.people[i].key for n in names for i in self.titles.owners.get(n, ())}

    def called(self, found: Iterable[str]) -> set[str]:
        """Keys of people a title made of the words ``found`` could name."""
        if self.titles is None:
            return set()
        return {self.people[i].key for w in found for _, i in self.titles.by_token.get(w, ())}

    def title_words(self, keys: set[str]) -> set[str]:
        """The words a title must hold to name one of ``keys``."""
        if self.titles is None:
            return set()
        return {w for w, hits in self.titles.by_token.items() if any(self.people[i].key in keys for _, i in hits)}

    def owned(self) -> dict[str, set[str]]:
        """Key -> every address whose meetings count for that person (listed or historical)."""
        out: dict[str, set[str]] = {}
        for email, p in self.by_email.items():
            out.setdefault(p.key, set()).add(email)
        return out

    def attach(self, occurrences: Iterable[Occurrence], now: dt.datetime, until: dt.datetime | None = None,
               only: set[str] | None = None, strangers: set[str] | None = None, deduped: bool = False,
               held: Iterable[str] = (), aside: Aside | None = None) -> tuple[list[Person], Identity | None]:
        """Give people their counted meetings; see ``derive``.

        ``only``: attach meetings to these address-book people (by key) alone and
        return only them; ``strangers``: the unknown attendees to consider (by address).
        None: everyone. Either way, each returned person's meetings are exact as long
        as ``occurrences`` holds every meeting of theirs (all copies of it).
        ``deduped``: ``occurrences`` are ``dedupe``d already, a UID at a time in UID
        order (a stream that need not be held whole). ``held``: the ids of unknown
        attendees left out by ``strangers`` (they keep them: see ``Assigner.finish``).
        ``aside``: where the meetings that started go instead of ``Person.meetings``
        (a derivation from scratch, which would not fit in memory).
        """
        settings, me_set, ignored = self.settings, self.me, self.ignored
        people, by_email, titles = self.people, self.by_email, self.titles
        wanted = None if only is None else {id(p) for p in people if p.key in only}
        unknown: dict[str, Person] = {}
        unknown_cn: dict[str, tuple[dt.datetime, str]] = {}
        for occ in occurrences if deduped else dedupe(occurrences):
            if occ.cancelled or (occ.all_day and not settings.count_all_day):
                continue
            if until is not None and occ.start > until:
                continue
            admitted = _counted_parties(occ, me_set, ignored)
            if admitted is None:
                continue
            parties, anyone = admitted
            started = occ.start <= now
            org = occ.organizer
            # No organizer (a private event) or an ignored one (a scheduling bot): the user's own.
            organised = org is None or org.email in me_set or bool(ignored and ignored(org.email))
            meeting = Meeting(occ.start, occ.summary, occ.uid, occ.recurrence_id, occ.end, occ.account,
                              occ.calendar, len(parties) if anyone else 1, organised)
            targets: list[Person] = []
            if anyone:
                if len(parties) > settings.max_attendees:
                    continue
                for party in parties:
                    email = party.email or ""
                    person = by_email.get(email)
                    if person is None and settings.track_unknown and (strangers is None or email in strangers):
                        person = unknown.setdefault(email, Person(key=email, name=email, emails=[email]))
                        if started and party.name and (email not in unknown_cn or unknown_cn[email][0] <= occ.start):
                            unknown_cn[email] = (occ.start, party.name)
                    if person is not None:
                        targets.append(person)
            elif titles is not None and occ.summary:
                targets = [people[i] for i in sorted(titles.match(occ.summary))]
            # A person at one meeting under two of their addresses met once.
            found = [p for p in {id(t): t for t in targets}.values()
                     if wanted is None or not p.in_address_book or id(p) in wanted]
            if not started:
                for person in found:
                    person.upcoming.append(meeting)
            elif aside is not None:
                aside.add(meeting, found)
            else:
                for person in found:
                    person.meetings.append(meeting)
        for email, (_, cn) in unknown_cn.items():
            unknown[email].name = cn
        met = [unknown[e] for e in sorted(unknown)
               if unknown[e].meetings or (aside is not None and aside.has(unknown[e]))]
        remembered = None
        assigner = self.assigner
        if assigner is not None:
            for p in met:
                p.key = assigner.by_emails(Claim((), (p.emails[0],), p.key))
            remembered = assigner.finish(held)
            groups = remembered.groups()
            for p in people + met:
                p.aliases = frozenset(groups.get(p.key, ())) | {p.key}
        listed = (people if wanted is None else [p for p in people if id(p) in wanted]) + met
        for p in listed:
            p.meetings.sort(key=lambda m: (m.start, m.uid))
            p.upcoming.sort(key=lambda m: (m.start, m.uid))
        return sorted(listed, key=lambda p: (p.name.casefold(), p.key)), remembered
