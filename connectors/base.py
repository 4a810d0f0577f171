"""The contract between syncd's core and its connectors.

Terminology:

- **account**: one ``[accounts.NAME]`` table of the config; one connector instance.
- **collection**: a calendar or an address book inside an account. Its ``id`` is
  stable for the account (a CalDAV href, a Google calendar id, a folder path).
- **href**: the name of one object inside a collection (a CalDAV href, a file name,
  a Google event id). Unique inside its collection.
- **etag**: an opaque version of an object; a changed object has a changed etag.
  Connectors without server etags derive one (mtime+size, Google ``etag``).
- **cursor**: an opaque incremental-sync state for one collection (an RFC 6578 sync
  token, a Google ``syncToken``). ``changes()`` returns it; the core stores it only
  after every batch of that listing is in the ledger.
- **uid**: syncd's stable id of a follow-up; the task's iCalendar ``UID``.

A connector plays one or more roles, each a class to derive from: ``EventSource``
(it reads calendars), ``ContactSource`` (it reads address books) and ``TaskSink`` (it
receives follow-ups). A role's methods are abstract: a class that claims a role and
misses one cannot be instantiated (and the core refuses to load it). The roles set
the capability attributes the core reads (``events``, ``contacts``, ``tasks``).
Events reach the core as iCalendar text and contacts as vCard text, whatever the
service speaks natively, so that recurrence, time zones and malformed-object handling
live in one place (``syncd.events``, ``syncd.vcard``).

A listing (``changes()``) is a generator: it yields ``ChangeBatch`` objects (objects
new or changed, hrefs deleted) and *returns* the new cursor. The core sees the end of
the listing itself and stores the cursor only then, after every batch is committed; a
listing that raises leaves the old cursor in place. Deletions are always named: a
connector that lists a whole collection (a folder scan, an expired sync token) names
the hrefs of ``known`` it no longer found (``absent()``); one that cannot tell must not
guess (SPEC §6: a partial answer is never the truth).

Connectors register under the entry-point group ``syncd.connectors``; the config's
``type`` names the entry point. The core never imports a connector by name. Everything
a connector needs from syncd is importable from this module (see docs/connectors.md).
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from syncd.config import Invalid, Option, choice
from syncd.errors import (
    AccountError,
    AuthError,
    PreconditionFailed,
    SecretUnavailable,
    SyncdError,
    TransientError,
)

__all__ = [
    "CONTACTS",
    "EVENTS",
    "AccountError",
    "AuthError",
    "ChangeBatch",
    "ChangeStream",
    "Changes",
    "Collection",
    "Connector",
    "ContactSource",
    "Context",
    "EventSource",
    "Invalid",
    "Option",
    "PreconditionFailed",
    "RawObject",
    "RemoteTask",
    "SecretUnavailable",
    "Source",
    "SyncdError",
    "TaskSink",
    "TaskSpec",
    "TransientError",
    "absent",
    "cancelled_task_ical",
    "choice",
    "missing_methods",
    "now",
    "read_task_ical",
    "task_ical",
]

EVENTS = "events"
CONTACTS = "contacts"


@dataclass(frozen=True)
class Collection:
    """A calendar or an address book of an account."""

    id: str
    name: str
    kind: str  # EVENTS or CONTACTS


@dataclass(frozen=True)
class RawObject:
    """One calendar object (a VCALENDAR with the components of one UID) or one vCard."""

    href: str
    etag: str
    data: str


@dataclass
class ChangeBatch:
    """Part of the changes of one collection since a cursor; the core commits it whole.

    ``upserts`` are new or changed objects (an unchanged one may come again: the core
    skips an etag it holds); ``deletes`` are hrefs gone from the collection, each named
    by the connector (the core never infers a deletion from an href's absence).
    """

    upserts: list[RawObject] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    #: how many objects all the batches of this listing will upsert, when the connector
    #: knows it up front (vdir: changed files); set on the first batch, drives a progress bar
    total: int | None = None


#: what ``changes()`` returns: a generator of batches whose return value is the new
#: cursor (None: the connector keeps none, and the next listing starts from None)
Changes = Generator[ChangeBatch, None, "str | None"]


class ChangeStream(Iterator[ChangeBatch]):
    """The batches of one ``changes()`` listing; ``cursor`` once it ended.

    How the core (and a test) reads a listing: iterate, then read ``cursor`` and
    ``ended``. A listing that raised has ``ended`` false, and its cursor is never used.
    """

    def __init__(self, changes: Iterable[ChangeBatch]) -> None:
        self._it = iter(changes)
        self.cursor: str | None = None
        self.ended = False

    def __iter__(self) -> ChangeStream:
        return self

    def __next__(self) -> ChangeBatch:
        try:
            return next(self._it)
        except StopIteration as stop:
            self.cursor, self.ended = stop.value, True
            raise


def absent(known: Iterable[str], listed: Iterable[str]) -> list[str]:
    """The hrefs of ``known`` a *complete* listing did not find: its deletions, sorted.

    Only for a listing that is the whole collection by the service's own word (a
    folder scan, a full re-list after an expired sync token).
    """
    return sorted(set(known).difference(listed))


@dataclass(frozen=True)
class TaskSpec:
    """A follow-up as syncd wants it to exist in the task sink."""

    uid: str
    rule: str  # first_meeting | keep_in_touch | birthday | anniversary
    key: str  # X-SYNCD-KEY: rule + person + cycle
    summary: str
    description: str  # the reason, one sentence
    due: dt.date


@dataclass(frozen=True)
class RemoteTask:
    """What a sink holds of a task syncd wrote."""

    uid: str
    completed: bool = False
    completed_at: dt.datetime | None = None  # COMPLETED, UTC; None if unknown
    cancelled: bool = False
    due: dt.date | None = None  # as the sink holds it now: the user may have moved it


class Context(Protocol):
    """What the core hands a connector."""

    account: str
    timezone: dt.tzinfo
    #: a folder of this account's own where the connector may keep what it can always
    #: rebuild (created by the connector when it first writes there); None: keep
    #: nothing (a dry run, a test's engine)
    cache: Path | None

    def secret(self) -> str:
        """The account's secret (keyring or $CREDENTIALS_DIRECTORY).

        Raises:
            syncd.errors.SecretUnavailable: no secret stored, or the keyring is locked.
        """
        ...

    def store_secret(self, value: str) -> None:
        """Write back a refreshed secret (Google tokens)."""
        ...

    def state(self, key: str) -> Any:
        """A JSON value the connector stored earlier for this account, or None."""
        ...

    def set_state(self, key: str, value: Any) -> None:
        """Store a JSON value for this account (committed with the pass)."""
        ...


#: capability attribute -> the role that sets it (filled once the roles exist)
_ROLES: tuple[tuple[str, type], ...] = ()


class Connector:
    """Base of every connector: what the core asks of any account. Derive from one or
    more roles (``EventSource``, ``ContactSource``, ``TaskSink``), not from this alone.

    Args:
        name: the account name.
        options: the account's validated options (keys of ``options``).
        ctx: services of the core (secrets, persisted connector state).

    Errors: raise subclasses of ``SyncdError`` (re-exported here):
    ``AccountError`` for an account that cannot be reached (the pass records it and
    goes on with other accounts), ``AuthError`` for bad credentials, ``TransientError``
    for anything a later retry can fix, ``PreconditionFailed`` for a write that lost a
    race (retried next pass).
    """

    #: config options of this connector type, besides ``type``
    options: ClassVar[dict[str, Option]] = {}
    #: the roles, set by deriving from ``EventSource``, ``ContactSource``, ``TaskSink``
    events: ClassVar[bool] = False
    contacts: ClassVar[bool] = False
    tasks: ClassVar[bool] = False
    #: what ``syncd auth`` stores: "password" (prompted, checked with
    #: ``verify_secret``), "oauth" (``authorize`` runs its own flow), or None (no secret)
    secret_kind: ClassVar[str | None] = "password"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for flag, role in _ROLES:
            if getattr(cls, flag) and not issubclass(cls, role):
                raise TypeError(
                    f"{cls.__module__}.{cls.__qualname__} sets {flag} = True without deriving from "
                    f"syncd_connectors.base.{role.__name__}: derive from the role instead (it sets "
                    f"{flag} and makes its methods required: {', '.join(sorted(_methods(role)))})")

    def __init__(self, name: str, options: Mapping[str, Any], ctx: Context) -> None:
        self.name = name
        self.opts = dict(options)
        self.ctx = ctx

    # -- sources (defaults of a connector that reads nothing; see ``Source``) ---
    def self_addresses(self) -> set[str]:
        """Email addresses the account knows to be the user's (lower-case)."""
        return set()

    def collections(self) -> list[Collection]:
        """The configured calendars and address books (``kind`` tells which)."""
        return []

    def changes(self, collection: Collection, cursor: str | None, known: Mapping[str, str],
                since: dt.datetime) -> Changes:
        """See ``Source.changes``; a connector that is no source has no collections."""
        raise TypeError(f"{type(self).__name__} is no event or contact source")

    # -- task sink (see ``TaskSink``) ------------------------------------------
    def list_tasks(self) -> dict[str, RemoteTask]:
        """See ``TaskSink.list_tasks``."""
        raise TypeError(f"{type(self).__name__} is no task sink")

    def put_task(self, task: TaskSpec) -> None:
        """See ``TaskSink.put_task``."""
        raise TypeError(f"{type(self).__name__} is no task sink")

    def cancel_task(self, uid: str) -> None:
        """See ``TaskSink.cancel_task``."""
        raise TypeError(f"{type(self).__name__} is no task sink")

    # -- setup ---------------------------------------------------------------
    def authorize(self) -> None:
        """Interactively obtain the account's secret and store it (``syncd auth``).

        The default prompts for a password without echo.
        """
        import getpass

        self.ctx.store_secret(getpass.getpass(f"Password for account {self.name!r}: "))

    # -- diagnostics ---------------------------------------------------------
    def check(self) -> list[str]:
        """Reach the account; return lines describing what it offers.

        Raises:
            SyncdError: when the account cannot be used.
        """
        return [f"{len(self.collections())} collections"]

    def problems(self) -> list[str]:
        """Setup mistakes that leave the account reachable but useless (``syncd check``).

        Each is one line naming the key and the value, e.g. a glob that matches
        nothing. The default finds none.
        """
        return []

    def verify_secret(self, secret: str) -> None:
        """Check a secret against the service before ``syncd auth`` stores it.

        Raises:
            AuthError: the service refused it.
            SyncdError: the service could not be asked.
        """

    def close(self) -> None:
        """Release connections."""


class Source(Connector, abc.ABC):
    """What event and contact sources share: collections and their listings."""

    @abc.abstractmethod
    def collections(self) -> list[Collection]:
        """The configured calendars and address books (``kind`` tells which)."""

    @abc.abstractmethod
    def changes(self, collection: Collection, cursor: str | None, known: Mapping[str, str],
                since: dt.datetime) -> Changes:
        """Changes of ``collection`` since ``cursor`` (None: everything), in batches.

        A generator: yield ``ChangeBatch`` objects, then ``return`` the new cursor (with
        ``yield from`` a helper, write ``return (yield from helper())`` so its cursor
        reaches the core). Nothing says which batch is the last: the core sees the end.
        Empty batches may be left out; a listing with no change yields none.

        Every deletion is named in ``deletes``: a service with incremental sync names
        what it deleted; a listing of the whole collection names ``absent(known, listed)``.

        Args:
            collection: one of ``collections()``.
            cursor: what the last listing of this collection that ended returned, or None.
            known: href -> etag of what the ledger holds for this collection: to skip
                unchanged objects and to name what a whole listing no longer holds.
            since: events ending before this need not be returned (backfill bound).

        Raises:
            SyncdError: the listing cannot go on; batches already yielded stay
                committed, the cursor stays the old one.
        """


class EventSource(Source, abc.ABC):
    """Reads calendars: ``collections()`` with ``kind == EVENTS`` and their events as
    iCalendar text (one VCALENDAR per object, holding the components of one UID)."""

    events: ClassVar[bool] = True


class ContactSource(Source, abc.ABC):
    """Reads address books: ``collections()`` with ``kind == CONTACTS`` and their
    contacts as vCard text."""

    contacts: ClassVar[bool] = True


class TaskSink(Connector, abc.ABC):
    """Receives follow-ups. ``list_tasks`` is a read and must create nothing (a dry
    run reads too); ``put_task`` and ``cancel_task`` are idempotent."""

    tasks: ClassVar[bool] = True

    @abc.abstractmethod
    def list_tasks(self) -> dict[str, RemoteTask]:
        """Every task syncd wrote that is still in the sink, by uid (a missing list,
        folder or calendar holds none and is not created here)."""

    @abc.abstractmethod
    def put_task(self, task: TaskSpec) -> None:
        """Create the task if no task with its uid exists (never duplicate it)."""

    @abc.abstractmethod
    def cancel_task(self, uid: str) -> None:
        """Mark a task syncd wrote as cancelled (resolved), keeping the user's edits
        (a sink without a cancelled state, as Google Tasks, deletes it); a task that
        is gone or not syncd's is left alone."""


_ROLES = (("events", EventSource), ("contacts", ContactSource), ("tasks", TaskSink))


def _methods(role: type) -> set[str]:
    return {n for n in dir(role) if getattr(getattr(role, n), "__isabstractmethod__", False)}


def missing_methods(cls: type) -> list[str]:
    """The abstract methods ``cls`` leaves undefined (empty for a usable connector)."""
    return sorted(getattr(cls, "__abstractmethods__", ()))


# -- helpers for sinks that store iCalendar (vdir, CalDAV and the like) ------------

def now() -> dt.datetime:
    """The current time, aware UTC (``SYNCD_NOW`` fixes it in tests and demos)."""
    from syncd import clock

    return clock.now()


def task_ical(task: TaskSpec, as_event: bool = False) -> str:
    """The iCalendar text of a new follow-up: a VTODO, or an all-day VEVENT with an
    alarm; it carries ``X-SYNCD-KEY``, which is how ``read_task_ical`` knows it."""
    from syncd import taskical  # imports this module: loaded on use

    return taskical.render(task, now(), as_event)


def read_task_ical(data: str) -> RemoteTask | None:
    """The follow-up an iCalendar object holds, or None when syncd did not write it."""
    from syncd import taskical

    return taskical.read(data)


def cancelled_task_ical(data: str) -> str | None:
    """``data`` with the follow-up set to STATUS:CANCELLED and everything else (the
    user's edits) kept; None when it is not syncd's or already cancelled."""
    from syncd import taskical

    return taskical.cancelled(data, now())
