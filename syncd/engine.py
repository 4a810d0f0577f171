"""One pass, stage by stage: connectors -> ledger (``ingest``) -> people (``derive``)
-> follow-ups (``rules``) -> task sink (``writeback``).

Public API: ``Engine`` with ``sync_account``, ``reconcile``, ``run_pass``.

Crash safety comes from each stage's order of writes (see each module). ``dry_run``
runs the same code on an in-memory copy of the ledger, handing the write-back a sink
that cannot write, so it shows exactly what a real pass would do and writes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from syncd import clock, errors
from syncd.accounts import Accounts
from syncd.config import Config
from syncd.derive import Derive
from syncd.ingest import DEFAULT_SINCE, AccountResult, Ingest, Progress, bump
from syncd.ledger import Ledger
from syncd.writeback import DryRunSink, ReconcileResult, Sink, WriteBack, captured

if TYPE_CHECKING:  # inference and the rules load when a pass has something to derive
    from syncd import rules
    from syncd.derive import Derivation, Inputs
    from syncd.model import Person

__all__ = ["DEFAULT_SINCE", "AccountResult", "Engine", "PassResult", "ReconcileResult"]

log = logging.getLogger(__name__)


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
        registry: Mapping[str, type] | None = None,
        allow_empty: Iterable[str] = (),
        secrets: tuple[Callable[[str], str], Callable[[str, str], None]] | None = None,
        cache: Path | None = None,
    ) -> None:
        self.config = config
        self.ledger = _copy_to_memory(ledger) if dry_run else ledger
        self.dry_run = dry_run
        self.now = now
        # secrets: (get, put) instead of the keyring's, e.g. a team member's vault
        # cache: where connectors may keep what they can rebuild (``paths.cache_dir()``
        # for the command and the daemon; None: nowhere)
        self.accounts = Accounts(config, self.ledger, dry_run, registry, secrets, cache)
        self.ingest = Ingest(config, self.ledger, self.accounts, now, progress, allow_empty)
        self.derive = Derive(config, self.ledger, now)
        self.writeback = WriteBack(config, self.ledger, now, dry_run)

    def sync_account(self, name: str, since: dt.datetime | None = None) -> AccountResult:
        """Bring the ledger up to date with one account; failures are recorded, not raised."""
        return self.ingest.sync_account(name, since)

    def inputs(self) -> Inputs:
        """What inference reads from the ledger, as of now."""
        return self.derive.inputs()

    def people(self) -> list[Person]:
        """Inference over everything in the ledger, as of now, with remembered identities."""
        return self.derive.people()

    def close(self) -> None:
        """Close every connector."""
        self.accounts.close()

    def reconcile(self) -> ReconcileResult:
        """Inference, rules and write-back to the ``write_to`` account."""
        self.ingest.refresh_window()
        result = ReconcileResult(account=self.config.write_to)
        now = self.now()
        sink_name = self.config.write_to
        sink: Sink | None = None
        with captured(result, "reading back tasks"):
            if sink_name is not None:
                real, ctx = self.accounts.get(sink_name)
                sink = DryRunSink(real) if self.dry_run else real
                if self.writeback.read_back(sink, sink_name, result):
                    with self.ledger.transaction():
                        bump(self.ledger)
                with self.ledger.transaction():
                    self.accounts.save_state(sink_name, ctx)
        if result.error is None and self.derive.unchanged_since_last(now):
            result.people = self.ledger.people_count()
            log.debug("nothing changed since the last pass; inference skipped")
            return result
        derived = self.derive.changed()
        if sink is None or sink_name is None or result.error:
            self._finish(derived, result, sink_name, now)
            return result
        from syncd import rules
        from syncd.derive import rule_settings

        history = None
        with captured(result, "write-back"):
            history = self.derive.history(derived)
            todo = rules.plan(derived.each(), history, rule_settings(self.config), self.now(), derived.kept)
            self.writeback.write(sink, sink_name, todo, result)
            with self.ledger.transaction():
                self.accounts.save_state(sink_name, ctx)
        self._finish(derived, result, sink_name, now, history)
        return result

    def _finish(self, derived: Derivation, result: ReconcileResult, sink_name: str | None,
                now: dt.datetime, history: rules.History | None = None) -> None:
        if result.error and sink_name is not None:
            log.error("write-back failed: %s", result.error)
            self.ledger.record_result(sink_name, self.config.account(sink_name).type, self.now(), result.error)
        self.derive.store(derived, valid=result.error is None, history=None if result.error else history)
        result.people = self.ledger.people_count()
        if result.error is None:
            with self.ledger.transaction():
                self.ledger.set_meta("reconciled", "|".join(self.derive.reconcile_key(now)))

    def run_pass(self, since: dt.datetime | None = None, accounts: Iterable[str] | None = None) -> PassResult:
        """Sync every account (or ``accounts``) then reconcile."""
        started = self.now()
        names = list(accounts) if accounts is not None else [a.name for a in self.config.accounts]
        results = [self.ingest.sync_account(n, since) for n in names]
        rec = self.reconcile()
        if not self.dry_run:
            self.ledger.log_run("backfill" if since else "sync", started, self.now(), rec.summary)
        return PassResult(results, rec)
