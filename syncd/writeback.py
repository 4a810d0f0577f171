"""Plan -> task sink: write the follow-ups the rules decided, read back what the user did.

Public API: ``WriteBack`` (``read_back``, ``write``), ``ReconcileResult``,
``DryRunSink`` and ``captured``.

A follow-up is recorded as ``pending`` before it is written and becomes ``open`` after
the sink accepted it; sinks create by stable UID, so finishing a pending write twice
cannot duplicate it. A dry run hands this stage a ``DryRunSink``: it cannot write.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from syncd import errors
from syncd.config import Config
from syncd.errors import SyncdError
from syncd.ledger import FollowupRow, Ledger
from syncd_connectors.base import Connector, TaskSpec

if TYPE_CHECKING:
    from syncd import rules

log = logging.getLogger(__name__)


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


@contextlib.contextmanager
def captured(result: ReconcileResult, what: str) -> Iterator[None]:
    """Record a failure of the sink in ``result`` instead of raising: the pass goes on."""
    try:
        yield
    except SyncdError as exc:
        result.exc = exc
    except Exception as exc:  # a connector bug must not end the pass without a record
        log.debug("%s failed", what, exc_info=True)
        result.exc = exc


class DryRunSink:
    """What a dry run hands the write-back: the sink's reads, and writes that go nowhere.

    So a dry run cannot write by construction, whatever a connector does; connectors'
    reads (``list_tasks``) create nothing (see ``syncd_connectors.base``).
    """

    def __init__(self, real: Connector) -> None:
        self._real = real

    def list_tasks(self) -> dict[str, Any]:
        return self._real.list_tasks()

    def put_task(self, task: TaskSpec) -> None:
        """Written nowhere."""

    def cancel_task(self, uid: str) -> None:
        """Cancelled nowhere."""


Sink = Connector | DryRunSink


class WriteBack:
    """Moves follow-ups between the ledger and the ``write_to`` account."""

    def __init__(self, config: Config, ledger: Ledger, now: Callable[[], dt.datetime], dry_run: bool = False) -> None:
        self.config = config
        self.ledger = ledger
        self.now = now
        self.dry_run = dry_run  # only for the words of the log; the sink itself cannot write

    def read_back(self, sink: Sink, account: str, result: ReconcileResult) -> bool:
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
                    continue  # finished by write
                if task is not None and task.due is not None and task.due != (row.user_due or row.due):
                    # the user moved it: shown as they see it (the rules keep syncd's own due)
                    self.ledger.set_followup_user_due(row.uid, None if task.due == row.due else task.due)
                if task is None or task.cancelled or task.completed:
                    self.ledger.mark_stale([row.person])  # their due, and their plan, may move
                if task is None or task.cancelled:
                    self.ledger.set_followup_state(row.uid, "dismissed", now)
                    result.dismissed.append(row.summary)
                    changed = True
                elif task.completed:
                    self.ledger.set_followup_state(row.uid, "done", task.completed_at or now)
                    result.done.append(row.summary)
                    changed = True
        return changed

    def write(self, sink: Sink, account: str, todo: rules.Plan, result: ReconcileResult) -> None:
        """Write the plan: new follow-ups (pending first, so a crash cannot lose or
        duplicate one) and the resolved ones."""
        from syncd import rules  # the write-back runs when a pass planned something

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
            log.info("%s follow-up %r, due %s: %s", "would write" if self.dry_run else "wrote",
                     row.summary, row.due, row.reason, extra={"listed": True})
        rows = {r.uid: r for r in self.ledger.followups(("open",))}
        for uid in todo.resolve:
            sink.cancel_task(uid)
            with self.ledger.transaction():
                self.ledger.set_followup_state(uid, "resolved", self.now())
            result.resolved.append(rows[uid].summary if uid in rows else uid)
            log.info("%s follow-up %r", "would resolve" if self.dry_run else "resolved",
                     rows[uid].summary if uid in rows else uid, extra={"listed": True})
