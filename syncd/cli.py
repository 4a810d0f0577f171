"""The ``syncd`` command (SPEC §2). One place maps errors to messages and exit codes."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from syncd import clock, config, errors, rules
from syncd import log as logsetup
from syncd.errors import EX_FAILED, EX_OK, EX_USAGE, SyncdError
from syncd.ledger import Ledger, iso

log = logging.getLogger(__name__)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"syncd: {message}", file=sys.stderr)
        raise SystemExit(EX_USAGE)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, found {text!r}") from None


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = _Parser(prog="syncd", description="Keep in touch: follow-ups from your calendar and address book.")
    p.add_argument("--config", type=Path, help="config file (default: $SYNCD_CONFIG, then the XDG config dir)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log lines (-vv: libraries too)")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    p.add_argument("--backfill", action="store_true", help="import all history once, then write what is due")
    p.add_argument("--since", type=_date, help="with --backfill: first day to import (default: 5 years back)")
    p.add_argument("--dry-run", action="store_true", dest="dry_top", help="read everything, write nothing")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    s = sub.add_parser("sync", help="one incremental pass over every account")
    s.add_argument("--dry-run", action="store_true")
    sub.add_parser("run", help="the daemon: a pass every interval until SIGTERM")
    st = sub.add_parser("status", help="per account: last success, last error, cursors")
    st.add_argument("--json", action="store_true")
    pe = sub.add_parser("people", help="everyone known, with their history")
    pe.add_argument("--json", action="store_true")
    pe.add_argument("--overdue", action="store_true", help="only those due today or earlier")
    t = sub.add_parser("tasks", help="follow-ups syncd wrote")
    t.add_argument("--json", action="store_true")
    t.add_argument("--all", action="store_true", help="also done, dismissed and resolved ones")
    a = sub.add_parser("auth", help="store an account's secret in the keyring")
    a.add_argument("account")
    sub.add_parser("check", help="validate the config and reach every account")
    from syncd import teamcli  # imports nothing of PostgreSQL until a team command runs

    teamcli.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``syncd`` command; returns the exit code."""
    args = parser().parse_args(argv)
    if args.backfill and args.command:
        parser().error("--backfill is a command of its own; drop the other command")
    if args.since and not args.backfill:
        parser().error("--since goes with --backfill")
    if not args.backfill and not args.command:
        parser().print_help(sys.stderr)
        return EX_USAGE
    verbosity = -1 if args.quiet else args.verbose
    logsetup.setup(verbosity)
    command = "backfill" if args.backfill else args.command
    try:
        if command == "run":
            from syncd import daemon

            return daemon.run(args.config, verbosity)
        return COMMANDS[command](args)
    except SyncdError as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("syncd: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EX_OK


# -- passes -------------------------------------------------------------------
@contextmanager
def _writer(cfg: config.Config, dry_run: bool, command: str) -> Iterator[Ledger]:
    """The ledger opened for a pass: locked, or for a dry run a throw-away copy."""
    if dry_run:
        ledger = Ledger.open(cfg.ledger) if cfg.ledger.exists() else Ledger.memory(cfg.ledger)
        try:
            yield ledger
        finally:
            ledger.close()
        return
    from syncd import lock

    with lock.hold(cfg.ledger, command):
        ledger = Ledger.open(cfg.ledger)
        try:
            yield ledger
        finally:
            ledger.close()


def _progress() -> tuple[Callable[[str, str, int], None] | None, Callable[[], None]]:
    if not sys.stderr.isatty():
        return None, lambda: None
    from rich.progress import Progress, SpinnerColumn, TextColumn

    bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed} objects"),
                   console=Console(stderr=True), transient=True)
    bar.start()
    tasks: dict[tuple[str, str], Any] = {}

    def advance(account: str, collection: str, n: int) -> None:
        key = (account, collection)
        if key not in tasks:
            tasks[key] = bar.add_task(f"{account}: {collection}", total=None)
        bar.advance(tasks[key], n)

    return advance, bar.stop


def _pass(args: argparse.Namespace, backfill: bool) -> int:
    from syncd.engine import Engine

    cfg = config.load(args.config)
    dry_run = bool(args.dry_top or getattr(args, "dry_run", False))
    since = None
    if backfill:
        day = args.since or (clock.now() - dt.timedelta(days=5 * 365)).date()
        since = dt.datetime.combine(day, dt.time(), cfg.timezone)
    with _writer(cfg, dry_run, "syncd --backfill" if backfill else "syncd sync") as ledger:
        progress, stop = _progress() if backfill else (None, lambda: None)
        engine = Engine(cfg, ledger, dry_run=dry_run, progress=progress)
        try:
            result = engine.run_pass(since=since)
        finally:
            stop()
            engine.close()
        _report(cfg, engine.ledger, result, dry_run)
    return result.exit_code


_SHOWN = 20  # overdue people listed after a pass; `people --overdue` has them all


def _report(cfg: config.Config, ledger: Ledger, result: Any, dry_run: bool) -> None:
    out = Console(highlight=False, soft_wrap=True)
    verb = "would write" if dry_run else "written"
    rec = result.reconcile
    for acc in result.accounts:
        if acc.exc is None:
            out.print(f"{acc.account}: {acc.changed} changes, ok")
        else:
            out.print(f"{acc.account}: {acc.changed} changes, FAILED: {errors.message(acc.exc)}")
    out.print(f"Follow-ups {verb}: {len(rec.written)}")
    for line in rec.written:
        out.print(f"  + {line}")
    for line in rec.resolved:
        out.print(f"  - resolved: {line}")
    today = rules.local_date(clock.now(), cfg.timezone).isoformat()
    overdue = [p for p in ledger.people() if p["due"] and p["due"] <= today]
    out.print(f"Overdue: {len(overdue)}")
    shown = sorted(overdue, key=lambda p: (p["due"], p["name"].casefold()))
    for p in shown[:_SHOWN]:
        out.print(f"  {p['name']} (due {p['due']}, last met {(p['last_met'] or 'never')[:10]})")
    if len(shown) > _SHOWN:
        out.print(f"  ... and {len(shown) - _SHOWN} more: syncd people --overdue")


def cmd_backfill(args: argparse.Namespace) -> int:
    """``syncd --backfill``."""
    return _pass(args, backfill=True)


def cmd_sync(args: argparse.Namespace) -> int:
    """``syncd sync``."""
    return _pass(args, backfill=False)


# -- read-only views --------------------------------------------------------------
#: a team member's (config, ledger) while `syncd team people|tasks MEMBER` shows it
member_view: ContextVar[tuple[config.Config, Ledger] | None] = ContextVar("member_view", default=None)


def _config(args: argparse.Namespace) -> config.Config:
    view = member_view.get()
    return view[0] if view else config.load(args.config)


def _reader(cfg: config.Config) -> Ledger | None:
    view = member_view.get()
    if view:
        return view[1]
    return Ledger.open(cfg.ledger, readonly=True) if cfg.ledger.exists() else None


def _emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


def cmd_people(args: argparse.Namespace) -> int:
    """``syncd people``."""
    cfg = _config(args)
    ledger = _reader(cfg)
    people = ledger.people() if ledger else []
    if args.overdue:
        today = rules.local_date(clock.now(), cfg.timezone).isoformat()
        people = [p for p in people if p["due"] and p["due"] <= today]
    people.sort(key=lambda p: (p["name"].casefold(), p["emails"]))
    if args.json:
        _emit_json(people)
        return EX_OK
    table = Table("name", "emails", "groups", "met", "last met", "next", "due", box=None)
    for p in people:
        table.add_row(p["name"], ", ".join(p["emails"]), ", ".join(p["groups"]), str(p["interactions"]),
                      (p["last_met"] or "")[:10], (p["next_meeting"] or "")[:10], p["due"] or "")
    Console(soft_wrap=True).print(table if people else "nobody yet; run `syncd --backfill`")
    return EX_OK


def cmd_tasks(args: argparse.Namespace) -> int:
    """``syncd tasks``."""
    cfg = _config(args)
    ledger = _reader(cfg)
    rows = ledger.followups() if ledger else []
    items = [
        {"rule": r.rule, "person": r.name, "emails": sorted(r.emails), "due": r.due.isoformat(),
         "state": "open" if r.state == "pending" else r.state, "account": r.account, "uid": r.uid,
         "reason": r.reason}
        for r in rows
    ]
    if not args.all:
        items = [i for i in items if i["state"] == "open"]
    if args.json:
        _emit_json(items)
        return EX_OK
    table = Table("due", "state", "rule", "person", "reason", box=None)
    for i in items:
        table.add_row(str(i["due"]), str(i["state"]), str(i["rule"]), str(i["person"]), str(i["reason"]))
    Console(soft_wrap=True).print(table if items else "no follow-ups")
    return EX_OK


def cmd_status(args: argparse.Namespace) -> int:
    """``syncd status``."""
    cfg = config.load(args.config)
    ledger = _reader(cfg)
    accounts = []
    for acc in cfg.accounts:
        st = ledger.account_status(acc.name) if ledger else None
        colls = ledger.collections(acc.name) if ledger else []
        synced = [c.synced_at for c in colls if c.synced_at]
        accounts.append({
            "name": acc.name, "type": acc.type,
            "last_success": iso(st.last_success) if st else None,
            "last_error": st.last_error if st else None,
            "last_error_at": iso(st.last_error_at) if st else None,
            "next_attempt": iso(st.next_attempt) if st else None,
            "collections": len(colls),
            "objects": ledger.object_count(acc.name) if ledger else 0,
            "cursor_age_seconds": int((clock.now() - min(synced)).total_seconds()) if synced else None,
        })
    size = sum(p.stat().st_size for p in cfg.ledger.parent.glob(cfg.ledger.name + "*")) if cfg.ledger.exists() else 0
    status = {"ledger": str(cfg.ledger), "ledger_bytes": size, "accounts": accounts}
    if args.json:
        _emit_json(status)
        return EX_OK
    out = Console(soft_wrap=True, highlight=False)
    out.print(f"ledger {status['ledger']} ({size} bytes)")
    table = Table("account", "type", "last success", "last error", "next attempt", "collections", "objects",
                  box=None)
    for a in accounts:
        err = f"{a['last_error']} ({a['last_error_at']})" if a["last_error"] else ""
        table.add_row(str(a["name"]), str(a["type"]), str(a["last_success"] or "never"), err,
                      str(a["next_attempt"] or ""), str(a["collections"]), str(a["objects"]))
    out.print(table)
    return EX_OK


def _connector(cfg: config.Config, name: str) -> Any:
    from syncd import plugins
    from syncd.context import AccountContext

    acc = cfg.account(name)
    return plugins.connector_class(acc.type)(name, acc.options, AccountContext(name, cfg.timezone))


def cmd_auth(args: argparse.Namespace) -> int:
    """``syncd auth ACCOUNT``."""
    cfg = config.load(args.config)
    names = [a.name for a in cfg.accounts]
    if args.account not in names:
        raise errors.ConfigError(cfg.path, "accounts", args.account, "an account name: " + ", ".join(names))
    _connector(cfg, args.account).authorize()
    print(f"stored the secret of account {args.account!r} in the keyring")
    return EX_OK


def cmd_check(args: argparse.Namespace) -> int:
    """``syncd check``."""
    cfg = config.load(args.config)
    print(f"config {cfg.path}: ok")
    bad = 0
    for acc in cfg.accounts:
        try:
            conn = _connector(cfg, acc.name)
            try:
                lines = conn.check()
            finally:
                conn.close()
            print(f"{acc.name} ({acc.type}): ok")
            for line in lines:
                print(f"  {line}")
        except SyncdError as exc:
            bad += 1
            print(f"{acc.name} ({acc.type}): FAILED: {exc}")
    return EX_FAILED if bad else EX_OK


def cmd_team(args: argparse.Namespace) -> int:
    """``syncd team COMMAND`` (SPEC §9)."""
    from syncd import teamcli

    return teamcli.main(args)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "backfill": cmd_backfill,
    "sync": cmd_sync,
    "people": cmd_people,
    "tasks": cmd_tasks,
    "status": cmd_status,
    "auth": cmd_auth,
    "check": cmd_check,
    "team": cmd_team,
}
