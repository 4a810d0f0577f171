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
  token, a Google ``syncToken``, a folder fingerprint). The core stores it only after
  every change of the batch that carried it is in the ledger.
- **uid**: syncd's stable id of a follow-up; the task's iCalendar ``UID``.

A connector plays one or more roles, told by its capability attributes:
``events`` (it reads calendars), ``contacts`` (it reads address books) and ``tasks``
(it receives follow-ups). Events reach the core as iCalendar text and contacts as
vCard text, whatever the service speaks natively, so that recurrence, time zones and
malformed-object handling live in one place (``syncd.events``, ``syncd.vcard``).

Connectors register under the entry-point group ``syncd.connectors``; the config's
``type`` names the entry point. The core never imports a connector by name.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from syncd.config import Option


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
    """Part of the changes of one collection since a cursor.

    ``upserts`` are new or changed objects; ``deletes`` are hrefs gone from the
    collection. ``cursor`` is set on the last batch only (``done``): the core saves it
    after that batch is committed. When ``full`` is true on the last batch, the
    listing was complete, and every known href the batches did not mention is gone
    (the core reconciles; this is how a 410/expired token is handled without a wipe).
    """

    upserts: list[RawObject] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    cursor: str | None = None
    done: bool = False
    full: bool = False
    seen: list[str] = field(default_factory=list)  # hrefs unchanged but present (full listings)
    #: how many objects all the batches of this listing will upsert, when the connector
    #: knows it up front (vdir: changed files); set on the first batch, drives a progress bar
    total: int | None = None


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


class Connector:
    """Base of every connector. Subclasses set the capabilities they offer.

    Args:
        name: the account name.
        options: the account's validated options (keys of ``options``).
        ctx: services of the core (secrets, persisted connector state).

    Errors: raise subclasses of ``syncd.errors.SyncdError``:
    ``AccountError`` for an account that cannot be reached (the pass records it and
    goes on with other accounts), ``AuthError`` for bad credentials, ``TransientError``
    for anything a later retry can fix.
    """

    #: config options of this connector type, besides ``type``
    options: ClassVar[dict[str, Option]] = {}
    events: ClassVar[bool] = False
    contacts: ClassVar[bool] = False
    tasks: ClassVar[bool] = False
    #: what ``syncd auth`` stores: "password" (prompted, checked with
    #: ``verify_secret``), "oauth" (``authorize`` runs its own flow), or None (no secret)
    secret_kind: ClassVar[str | None] = "password"

    def __init__(self, name: str, options: Mapping[str, Any], ctx: Context) -> None:
        self.name = name
        self.opts = dict(options)
        self.ctx = ctx

    # -- sources -------------------------------------------------------------
    def self_addresses(self) -> set[str]:
        """Email addresses the account knows to be the user's (lower-case)."""
        return set()

    def collections(self) -> list[Collection]:
        """The configured calendars and address books (``kind`` tells which)."""
        return []

    def changes(
        self,
        collection: Collection,
        cursor: str | None,
        known: Mapping[str, str],
        since: dt.datetime,
    ) -> Iterator[ChangeBatch]:
        """Changes of ``collection`` since ``cursor`` (None: everything).

        Args:
            collection: one of ``collections()``.
            cursor: the cursor stored after the last complete pass, or None.
            known: href -> etag of what the ledger holds for this collection; used to
                infer deletions when the service has no incremental sync.
            since: events ending before this need not be returned (backfill bound).

        Yields:
            Batches in order; the last one has ``done`` set and the new cursor.
        """
        raise NotImplementedError

    # -- task sink -----------------------------------------------------------
    def list_tasks(self) -> dict[str, RemoteTask]:
        """Every task syncd wrote that is still in the sink, by uid."""
        raise NotImplementedError

    def put_task(self, task: TaskSpec) -> None:
        """Create the task if no task with its uid exists (never duplicate it)."""
        raise NotImplementedError

    def cancel_task(self, uid: str) -> None:
        """Mark a task syncd wrote as cancelled (resolved); keep the user's edits."""
        raise NotImplementedError

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
            syncd.errors.SyncdError: when the account cannot be used.
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
            syncd.errors.AuthError: the service refused it.
            syncd.errors.SyncdError: the service could not be asked.
        """

    def close(self) -> None:
        """Release connections."""
