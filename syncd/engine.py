"""One pass: connectors -> ledger -> inference -> rules -> task sink.

Public API: ``Engine`` with ``sync_account``, ``reconcile``, ``run_pass``.

Crash safety comes from the order of writes: each batch of remote changes commits
with the occurrences it implies; a collection's cursor commits with its last batch; a
follow-up is recorded as ``pending`` before it is written and becomes ``open`` after
the sink accepted it (sinks create by stable UID, so finishing a pending write twice
cannot duplicate it). ``dry_run`` runs the same code on an in-memory copy of the
ledger with the sink's writes left out, so it shows exactly what a real pass would do.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from connectors.base import CONTACTS, EVENTS, Collection, Connector, RawObject, TaskSpec
from syncd import clock, errors, infer, plugins, rules
from syncd.config import Config
from syncd.context import AccountContext
from syncd.errors import ParseError, SyncdError
from syncd.infer import ContactRecord, Occurrence, PartialDate, Party, Person
from syncd.ledger import FollowupRow, Ledger, iso

log = logging.getLogger(__name__)

DEFAULT_SINCE = dt.timedelta(days=5 * 365)
#: recurring series are expanded this far past the horizon, so most passes need none
_SLACK = dt.timedelta(days=14)

Progress = Callable[[str, str, int], None]  # account, collection name, objects applied


@dataclass
class AccountResult:
    """The outcome of syncing one account; a failure keeps its exception (and type)."""

    account: str
    exc: BaseException | None = None
    changed: int = 0
    skipped: int = 0

    @property
    def ok(self) -> bool:
        """True when the account synced."""
        return self.exc is None

    @property
    def error(self) -> str | None:
        """The failure as the user reads it (the account named once)."""
        return None if self.exc is None else errors.message(self.exc, self.account)


@dataclass
class ReconcileResult:
    """The outcome of inference and write-back."""

    people: int = 0
    written: list[str] = field(default_factory=list)  # summaries
    resolved: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    dismissed: list[str] = field(default_factory=list)
    exc: BaseException | None = None
    account: str | None = None  # the sink's

    @property
    def error(self) -> str | None:
        """The write-back failure as the user reads it."""
        return None if self.exc is None else errors.message(self.exc, self.account)

    @property
    def summary(self) -> str:
        """One line for logs and systemd STATUS=."""
        text = (f"{self.people} people; {len(self.written)} follow-ups written, "
                f"{len(self.resolved)} resolved, {len(self.done)} done, {len(self.dismissed)} dismissed")
        return text + (f"; write-back failed: {self.error}" if self.error else "")


@dataclass
class PassResult:
    """A whole pass."""

    accounts: list[AccountResult]
    reconcile: ReconcileResult

    @property
    def ok(self) -> bool:
        """True when every account and the write-back succeeded."""
        return all(a.ok for a in self.accounts) and self.reconcile.exc is None

    @property
    def exit_code(self) -> int:
        """SPEC §2's exit code for this pass."""
        failures = [a.exc for a in self.accounts if a.exc is not None]
        if self.reconcile.exc is not None:
            failures.append(self.reconcile.exc)
        return errors.pass_exit_code(failures, sum(1 for a in self.accounts if a.ok))


@dataclass
class Inputs:
    """Everything inference reads (``infer.derive``'s arguments but the identity)."""

    occurrences: list[Occurrence]
    contacts: list[ContactRecord]
    me: set[str]
    settings: infer.Settings
    now: dt.datetime
    until: dt.datetime


@contextlib.contextmanager
def _captured(result: ReconcileResult, what: str) -> Iterator[None]:
    """Record a failure of the sink in ``result`` instead of raising: the pass goes on."""
    try:
        yield
    except SyncdError as exc:
        result.exc = exc
    except Exception as exc:  # a connector bug must not end the pass without a record
        log.debug("%s failed", what, exc_info=True)
        result.exc = exc


class _DryRunSink:
    """What a dry run hands the write-back: the sink's reads, and writes that go nowhere.

    So a dry run cannot write by construction, whatever a connector does; connectors'
    reads (``list_tasks``) create nothing (see ``connectors.base``).
    """

    def __init__(self, real: Connector) -> None:
        self._real = real

    def list_tasks(self) -> dict[str, Any]:
        return self._real.list_tasks()

    def put_task(self, task: TaskSpec) -> None:
        """Written nowhere."""

    def cancel_task(self, uid: str) -> None:
        """Cancelled nowhere."""


def _nowhere(account: str, secret: str) -> None:
    """A dry run keeps a refreshed token to itself."""


def _copy_to_memory(ledger: Ledger) -> Ledger:
    mem = sqlite3.connect(":memory:", isolation_level=None)
    ledger.conn.backup(mem)
    mem.row_factory = sqlite3.Row
    mem.execute("PRAGMA foreign_keys = ON")
    return Ledger(mem, ledger.path)


class Engine:
    """Runs passes of one config over one ledger."""

    def __init__(
        self,
        config: Config,
        ledger: Ledger,
        *,
        dry_run: bool = False,
        now: Callable[[], dt.datetime] = clock.now,
        progress: Progress | None = None,
        registry: dict[str, type] | None = None,
        secrets: tuple[Callable[[str], str], Callable[[str, str], None]] | None = None,
    ) -> None:
        self.config = config
        self.secrets = secrets  # (get, put) instead of the keyring's: a team member's vault
        self.ledger = _copy_to_memory(ledger) if dry_run else ledger
        self.dry_run = dry_run
        self.now = now
        self.progress = progress
        self.registry = registry
        self._connectors: dict[str, tuple[Connector, AccountContext]] = {}

    # -- connectors ------------------------------------------------------------
    def connector(self, name: str) -> tuple[Connector, AccountContext]:
        """The connector of account ``name`` and its context (built once)."""
        if name not in self._connectors:
            acc = self.config.account(name)
            cls = self.registry[acc.type] if self.registry else plugins.connector_class(acc.type)
            with self.ledger.transaction():
                self.ledger.ensure_account(name, acc.type)
            ctx = AccountContext(account=name, timezone=self.config.timezone,
                                 state_dict=self.ledger.connector_state(name))
            if self.secrets is not None:
                ctx.get_secret, ctx.put_secret = self.secrets
            if self.dry_run:
                ctx.put_secret = _nowhere
            self._connectors[name] = (cls(name, acc.options, ctx), ctx)
        return self._connectors[name]

    def close(self) -> None:
        """Close every connector."""
        for conn, _ in self._connectors.values():
            try:
                conn.close()
            except Exception:  # closing must not hide the pass's result
                log.debug("closing a connector failed", exc_info=True)
        self._connectors.clear()

    def _save_state(self, name: str, ctx: AccountContext) -> None:
        if ctx.dirty:
            self.ledger.set_connector_state(name, ctx.state_dict)
            ctx.dirty = False

    # -- window ----------------------------------------------------------------
    def window(self, since: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
        """The expansion window: from the earliest backfill start to past the horizon."""
        now = self.now()
        stored = self.ledger.meta("window_start")
        start = dt.datetime.fromisoformat(stored) if stored else now - DEFAULT_SINCE
        if since is not None and since < start:
            start = since
        return start, now + self.config.horizon + _SLACK

    # -- sync --------------------------------------------------------------------
    def sync_account(self, name: str, since: dt.datetime | None = None) -> AccountResult:
        """Bring the ledger up to date with one account; failures are recorded, not raised."""
        acc = self.config.account(name)
        result = AccountResult(account=name)
        try:
            conn, ctx = self.connector(name)
            start, end = self.window(since)
            if self.ledger.meta("window_start") != start.isoformat():
                with self.ledger.transaction():
                    self.ledger.set_meta("window_start", start.isoformat())
                    self._reexpand(self.ledger.conn.execute("SELECT collection, uid FROM series").fetchall(),
                                   start, end)
            self._sync_collections(conn, ctx, name, start, end, result)
            with self.ledger.transaction():
                before = self.ledger.self_addresses()
                self.ledger.set_self_addresses(name, conn.self_addresses())
                if result.changed or self.ledger.self_addresses() != before:
                    self._bump()
                self._save_state(name, ctx)
        except SyncdError as exc:
            result.exc = exc
        except Exception as exc:  # a connector bug must not take the other accounts down
            log.debug("account %s failed", name, exc_info=True)
            result.exc = exc
        if result.error:
            log.error("%s", result.error)
        self.ledger.record_result(name, acc.type, self.now(), result.error)
        return result

    def _sync_collections(self, conn: Connector, ctx: AccountContext, name: str,
                          start: dt.datetime, end: dt.datetime, result: AccountResult) -> None:
        wanted = [c for c in conn.collections() if (c.kind == EVENTS and conn.events) or (c.kind == CONTACTS and conn.contacts)]
        with self.ledger.transaction():
            rows = {c: self.ledger.collection(name, c.kind, c.id, c.name) for c in wanted}
            keep = {r.id for r in rows.values()}
            for old in self.ledger.collections(name):
                if old.id not in keep:
                    log.info("account %s: %s %s is no longer configured; forgetting it", name, old.kind, old.name)
                    self.ledger.drop_collection(old.id)
        for coll, row in rows.items():
            known = self.ledger.etags(row.id)
            mentioned: set[str] = set()
            for batch in conn.changes(coll, row.cursor, known, start):
                with self.ledger.transaction():
                    for obj in batch.upserts:
                        mentioned.add(obj.href)
                        if known.get(obj.href) == obj.etag:
                            continue
                        result.skipped += self._apply(name, coll, row.id, obj, start, end)
                        result.changed += 1
                    for href in batch.deletes:
                        if href in known or href in mentioned:
                            self._remove(name, row.id, href, start, end)
                            result.changed += 1
                    mentioned.update(batch.seen)
                    if batch.done:
                        if batch.full:
                            for href in set(known) - mentioned:
                                self._remove(name, row.id, href, start, end)
                                result.changed += 1
                        self.ledger.set_cursor(row.id, batch.cursor, self.now())
                    self._save_state(name, ctx)
                if self.progress and batch.upserts:
                    self.progress(name, coll.name, len(batch.upserts))

    def _apply(self, account: str, coll: Collection, cid: int, obj: RawObject,
               start: dt.datetime, end: dt.datetime) -> int:
        """Store one object and what it implies; returns 1 if (part of) it was skipped."""
        from syncd import events, vcard  # parsers load only when something changed

        skipped = 0
        if coll.kind == CONTACTS:
            records = []
            for item in vcard.parse(obj.data):
                if isinstance(item, ParseError):
                    log.warning("account %s: %s: skipped a contact: %s", account, obj.href, item)
                    skipped = 1
                else:
                    records.append(json.dumps(_record_json(item)))
            self.ledger.put_object(cid, obj.href, obj.etag, "", [])
            self.ledger.put_contacts(cid, obj.href, records)
            return skipped
        parsed = events.split(obj.data)
        for problem in parsed.problems:
            log.warning("account %s: %s: skipped an event: %s", account, obj.href, problem)
            skipped = 1
        old = self.ledger.object_uids(cid, obj.href)
        self.ledger.put_object(cid, obj.href, obj.etag, obj.data, sorted(parsed.by_uid))
        for uid in sorted(set(old) | set(parsed.by_uid)):
            skipped |= self._expand(account, cid, uid, start, end, {obj.href: parsed})
        return skipped

    def _remove(self, account: str, cid: int, href: str, start: dt.datetime, end: dt.datetime) -> None:
        uids = self.ledger.object_uids(cid, href)
        self.ledger.delete_object(cid, href)
        for uid in uids:
            self._expand(account, cid, uid, start, end, {})

    def _expand(self, account: str, cid: int, uid: str, start: dt.datetime, end: dt.datetime,
                cache: dict[str, Any]) -> int:
        from syncd import events

        comps: list[Any] = []
        tzs: list[Any] = []
        href = ""
        for href, data in self.ledger.objects_with_uid(cid, uid):
            parsed = cache.get(href) or events.split(data)
            comps.extend(parsed.by_uid.get(uid, []))
            tzs.extend(parsed.timezones)
        if not comps:
            self.ledger.drop_series(cid, uid)
            return 0
        try:
            occs, recurring = events.expand(uid, comps, tzs, start, end, self.config.timezone)
        except ParseError as exc:
            log.warning("account %s: %s: skipped event %s: %s", account, href, uid, exc)
            self.ledger.drop_series(cid, uid)
            return 1
        self.ledger.replace_series(cid, uid, [(o.recurrence_id, iso(o.start) or "", json.dumps(_occ_json(o))) for o in occs],
                                   recurring, end)
        return 0

    def _bump(self) -> None:
        """Note that the inference inputs changed (inside a transaction)."""
        self.ledger.set_meta("generation", str(int(self.ledger.meta("generation") or 0) + 1))

    def _unchanged_since_last(self, now: dt.datetime) -> bool:
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
        if (gen, day, fingerprint) != self._reconcile_key(now)[:3]:
            return False
        h = self.config.horizon
        return not self.ledger.starts_between([(then, now), (then + h, now + h)])

    def _reconcile_key(self, now: dt.datetime) -> tuple[str, str, str, str]:
        return (self.ledger.meta("generation") or "0", rules.local_date(now, self.config.timezone).isoformat(),
                self.config.fingerprint, now.isoformat())

    def _reexpand(self, series: list[tuple[int, str]], start: dt.datetime, end: dt.datetime) -> None:
        owner = {c.id: c.account for c in self.ledger.collections()}
        for cid, uid in series:
            self._expand(owner.get(cid, "?"), cid, uid, start, end, {})

    def refresh_window(self) -> None:
        """Expand recurring series further as time moves on (a transaction)."""
        start, end = self.window()
        stale = self.ledger.stale_series(end - _SLACK)
        if stale:
            with self.ledger.transaction():
                self._reexpand(stale, start, end)
                self._bump()

    # -- inference -------------------------------------------------------------
    def _orders(self) -> dict[int, int]:
        names = [a.name for a in self.config.accounts]
        rows = sorted(self.ledger.collections(),
                      key=lambda r: (names.index(r.account) if r.account in names else len(names), r.id))
        return {r.id: i for i, r in enumerate(rows)}

    def inputs(self) -> Inputs:
        """What inference reads from the ledger, as of now."""
        orders = self._orders()
        occs = [_occ_from(json.loads(data), orders.get(cid, 1 << 30))
                for cid, data in self.ledger.all_occurrences() if cid in orders]
        contacts = [_record_from(json.loads(data), (orders.get(cid, 1 << 30), href, idx), f"at:{cid}:{href}:{idx}")
                    for cid, href, idx, data in self.ledger.all_contacts() if cid in orders]
        me = set(self.config.me) | self.ledger.self_addresses()
        s = infer.Settings(self.config.max_attendees, self.config.count_all_day,
                           self.config.match_titles, self.config.track_unknown)
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

    def rule_settings(self) -> rules.RuleSettings:
        """The config's rule tables."""
        c = self.config
        return rules.RuleSettings(c.timezone, c.first_meeting, c.due_after, c.lookback, c.daily_limit,
                                  c.cadences, c.birthdays, c.days_before)

    # -- reconcile ---------------------------------------------------------------
    def reconcile(self) -> ReconcileResult:
        """Inference, rules and write-back to the ``write_to`` account."""
        self.refresh_window()
        result = ReconcileResult(account=self.config.write_to)
        now = self.now()
        sink_name = self.config.write_to
        sink: Connector | _DryRunSink | None = None
        with _captured(result, "reading back tasks"):
            if sink_name is not None:
                real, ctx = self.connector(sink_name)
                sink = _DryRunSink(real) if self.dry_run else real
                if self._read_back(sink, sink_name, result):
                    with self.ledger.transaction():
                        self._bump()
                with self.ledger.transaction():
                    self._save_state(sink_name, ctx)
        if result.error is None and self._unchanged_since_last(now):
            result.people = len(self.ledger.people())
            log.debug("nothing changed since the last pass; inference skipped")
            return result
        people = self.people()
        result.people = len(people)
        if sink is None or sink_name is None or result.error:
            self._finish(people, result, sink_name, now)
            return result
        with _captured(result, "write-back"):
            history = self.ledger.followups()
            todo = rules.plan(people, history, self.rule_settings(), self.now())
            self._write(sink, sink_name, todo, result)
            with self.ledger.transaction():
                self._save_state(sink_name, ctx)
        self._finish(people, result, sink_name, now)
        return result

    def _finish(self, people: list[Person], result: ReconcileResult, sink_name: str | None,
                now: dt.datetime) -> None:
        if result.error and sink_name is not None:
            log.error("write-back failed: %s", result.error)
            self.ledger.record_result(sink_name, self.config.account(sink_name).type, self.now(), result.error)
        self._snapshot(people)
        if result.error is None:
            with self.ledger.transaction():
                self.ledger.set_meta("reconciled", "|".join(self._reconcile_key(now)))

    def _read_back(self, sink: Connector | _DryRunSink, account: str, result: ReconcileResult) -> bool:
        """Record what the user did to open tasks; True if anything changed."""
        rows = [r for r in self.ledger.followups(("open", "pending")) if r.account == account]
        if not rows:
            return False
        remote = sink.list_tasks()
        changed = False
        now = self.now()
        with self.ledger.transaction():
            for row in rows:
                task = remote.get(row.uid)
                if row.state == "pending":
                    continue  # finished by _write
                if task is None or task.cancelled:
                    self.ledger.set_followup_state(row.uid, "dismissed", now)
                    result.dismissed.append(row.summary)
                    changed = True
                elif task.completed:
                    self.ledger.set_followup_state(row.uid, "done", task.completed_at or now)
                    result.done.append(row.summary)
                    changed = True
        return changed

    def _write(self, sink: Connector | _DryRunSink, account: str, todo: rules.Plan, result: ReconcileResult) -> None:
        today = rules.local_date(self.now(), self.config.timezone)
        for want in todo.new:
            row = FollowupRow(
                uid=want.uid, rule=want.rule, key=want.key, person=want.person, name=want.name,
                emails=list(want.emails), cycle=want.cycle, due=want.due, summary=want.summary,
                reason=want.reason, account=account, state="pending", written_on=today,
            )
            with self.ledger.transaction():
                self.ledger.put_followup(row)
        by_uid = {r.uid: r for r in self.ledger.followups(("pending",)) if r.account == account}
        for row in by_uid.values():
            sink.put_task(TaskSpec(row.uid, row.rule, row.key, row.summary, row.reason, row.due))
            with self.ledger.transaction():
                self.ledger.set_followup_state(row.uid, "open")
            result.written.append(f"{row.summary} (due {row.due.isoformat()})")
            log.info("wrote follow-up %r, due %s: %s", row.summary, row.due, row.reason)
        rows = {r.uid: r for r in self.ledger.followups(("open",))}
        for uid in todo.resolve:
            sink.cancel_task(uid)
            with self.ledger.transaction():
                self.ledger.set_followup_state(uid, "resolved", self.now())
            result.resolved.append(rows[uid].summary if uid in rows else uid)
            log.info("resolved follow-up %r", rows[uid].summary if uid in rows else uid)

    def _snapshot(self, people: list[Person]) -> None:
        history = self.ledger.followups()
        today = rules.local_date(self.now(), self.config.timezone)
        s = self.rule_settings()
        snap = {}
        for p in people:
            found = rules.cadence(p, s.cadences)
            due = rules.due_date(p, history, s, today)
            snap[p.key] = json.dumps(
                {
                    "name": p.name,
                    "emails": sorted(p.emails),
                    "groups": sorted(p.groups),
                    "in_address_book": p.in_address_book,
                    "interactions": len(p.meetings),
                    "first_met": iso(p.first_met.start) if p.first_met else None,
                    "last_met": iso(p.last_met.start) if p.last_met else None,
                    "next_meeting": iso(p.next_meeting.start) if p.next_meeting else None,
                    "cadence_days": found[1].days if found else None,
                    "due": due.isoformat() if due else None,
                },
                sort_keys=True,
            )
        with self.ledger.transaction():
            self.ledger.replace_people(snap)

    # -- whole pass --------------------------------------------------------------
    def run_pass(self, since: dt.datetime | None = None, accounts: Iterable[str] | None = None) -> PassResult:
        """Sync every account (or ``accounts``) then reconcile."""
        started = self.now()
        names = list(accounts) if accounts is not None else [a.name for a in self.config.accounts]
        results = [self.sync_account(n, since) for n in names]
        rec = self.reconcile()
        if not self.dry_run:
            self.ledger.log_run("backfill" if since else "sync", started, self.now(), rec.summary)
        return PassResult(results, rec)


# -- JSON forms of the inference inputs (the derived tables of the ledger) ------
def _party_json(p: Party | None) -> list[Any] | None:
    return None if p is None else [p.email, p.name, p.partstat, p.cutype]


@functools.lru_cache(maxsize=65536)
def _party(email: str | None, name: str | None, partstat: str, cutype: str) -> Party:
    # The same few thousand people attend tens of thousands of meetings: share them.
    return Party(email, name, partstat, cutype)


def _party_from(v: list[Any] | None) -> Party | None:
    return None if v is None else _party(v[0], v[1], v[2], v[3])


def _occ_json(o: Occurrence) -> dict[str, Any]:
    return {
        "uid": o.uid, "rid": o.recurrence_id, "start": iso(o.start), "all_day": o.all_day,
        "cancelled": o.cancelled, "summary": o.summary, "org": _party_json(o.organizer),
        "att": [_party_json(a) for a in o.attendees], "mod": iso(o.last_modified),
    }


def _occ_from(d: dict[str, Any], order: int) -> Occurrence:
    return Occurrence(
        uid=d["uid"], recurrence_id=d["rid"], start=dt.datetime.fromisoformat(d["start"].replace("Z", "+00:00")),
        all_day=d["all_day"], cancelled=d["cancelled"], summary=d["summary"],
        organizer=_party_from(d["org"]), attendees=tuple(p for p in map(_party_from, d["att"]) if p),
        last_modified=dt.datetime.fromisoformat(d["mod"].replace("Z", "+00:00")) if d["mod"] else None,
        order=order,
    )


def _date_json(p: PartialDate | None) -> list[int | None] | None:
    return None if p is None else [p.month, p.day, p.year]


def _record_json(r: ContactRecord) -> dict[str, Any]:
    return {"name": r.name, "emails": list(r.emails), "nick": list(r.nicknames), "groups": list(r.groups),
            "bday": _date_json(r.birthday), "anniv": _date_json(r.anniversary), "ref": r.ref}


def _record_from(d: dict[str, Any], order: tuple[Any, ...], where: str) -> ContactRecord:
    """A stored record; ``where`` names it when the card has no UID."""
    def date(v: list[Any] | None) -> PartialDate | None:
        return None if v is None else PartialDate(v[0], v[1], v[2])

    return ContactRecord(name=d["name"], emails=tuple(d["emails"]), nicknames=tuple(d["nick"]),
                         groups=tuple(d["groups"]), birthday=date(d["bday"]), anniversary=date(d["anniv"]),
                         order=order, ref=d.get("ref") or where)
