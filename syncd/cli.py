"""The ``syncd`` command (SPEC §2). One place maps errors to messages and exit codes."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from syncd import __version__, clock, config, errors, output, paths
from syncd import log as logsetup
from syncd.errors import EX_FAILED, EX_OK, EX_USAGE, SyncdError
from syncd.ledger import Ledger, disk_full, full_disk_error, iso

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


EPILOG = """exit codes: 0 all accounts fine; 1 an account failed (the others were synced); 2 bad
command line; 69 a component is missing (keyring backend, connector); 75 try again later
(ledger locked, keyring locked, every account unreachable); 78 bad config, nothing done.
Documentation: the docs/ folder of the source, `man syncd` where installed."""


def parser() -> argparse.ArgumentParser:
    """The command line (SPEC §2); completion and the man page are generated from it."""
    p = _Parser(prog="syncd", description="Keep in touch: follow-ups from your calendar and address book.",
                epilog=EPILOG)
    p.add_argument("--version", action="version", version=f"syncd {__version__}",
                   help="print the version and exit")
    p.add_argument("--config", type=Path, metavar="PATH",
                   help="config file (default: $SYNCD_CONFIG, then $CONFIGURATION_DIRECTORY/config.toml, "
                        "then ~/.config/syncd/config.toml)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log lines (-vv: libraries too)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success; warnings and errors only")
    p.add_argument("--backfill", action="store_true", help="import all history once, then write what is due")
    p.add_argument("--since", type=_date, metavar="YYYY-MM-DD",
                   help="with --backfill: first day to import (default: 5 years back)")
    p.add_argument("--dry-run", action="store_true", dest="dry_top",
                   help="read everything, write nothing (the ledger is left as it was)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    s = sub.add_parser("sync", help="one incremental pass over every account, then exit",
                       description="One incremental pass over every account, then exit (for timers and cron).")
    s.add_argument("--dry-run", action="store_true", help="read everything, write nothing anywhere")
    s.add_argument("--allow-empty", action="append", default=[], metavar="ACCOUNT",
                   help="believe, this once, that a collection of ACCOUNT that held objects is now empty "
                        "(else syncd refuses, to protect the history from an unmounted folder)")
    sub.add_parser("run", help="the daemon: a pass every interval until SIGTERM",
                   description="The daemon: an incremental pass every `interval`, until SIGTERM.")
    st = sub.add_parser("status", help="per account: last success, last error, cursors",
                        description="Per account: last success, last error, cursor age, counts; the ledger.")
    st.add_argument("--json", action="store_true", help="one JSON object (fields: docs/json.md)")
    pe = sub.add_parser("people", help="everyone known, with their history",
                        description="Everyone known, with their history; dates are local dates.")
    pe.add_argument("--json", action="store_true", help="a JSON array (fields: docs/json.md)")
    pe.add_argument("--overdue", action="store_true",
                    help="only those due today or earlier, the longest overdue first")
    pe.add_argument("--sort", choices=("name", "due", "strength", "last"), default=None,
                    help="name (the default; with --overdue: due); due (soonest first); strength (strongest "
                         "first); last (most recently met first)")
    pn = sub.add_parser("person", help="one person in full: history, cadence, strength, follow-ups",
                        description="One person in full (SPEC §8): the people fields, where the cadence "
                                    "comes from, strength in words, every interaction, upcoming meetings "
                                    "and every follow-up. Exit 2 when QUERY matches nobody or several.")
    pn.add_argument("query", metavar="QUERY", help="an email (exact, any case) or part of a name (any case)")
    pn.add_argument("--json", action="store_true", help="one JSON object (fields: docs/json.md)")
    t = sub.add_parser("tasks", help="follow-ups syncd wrote", description="Follow-ups syncd wrote and their state.")
    t.add_argument("--json", action="store_true", help="a JSON array (fields: docs/json.md)")
    t.add_argument("--all", action="store_true", help="also done, dismissed and resolved ones")
    a = sub.add_parser("auth", help="store an account's secret in the keyring",
                       description="Store an account's secret in the keyring: a password (prompted on a "
                                   "terminal, else read from standard input; checked against the server "
                                   "first) or, for Google, the OAuth installed-app flow.")
    a.add_argument("account", metavar="ACCOUNT", help="the name of an [accounts.NAME] table")
    sub.add_parser("check", help="validate the config and reach every account",
                   description="Validate the config, reach every account and say what is wrong, per "
                               "account: globs that match nothing, empty folders, unset $VARS, a tasks "
                               "folder that cannot be written.")
    i = sub.add_parser("init", help="write a first config from what is found here",
                       description="Write a first config from what is found: khal, khard and vdirsyncer "
                                   "configs, ~/.calendars/* and ~/.contacts/*, or a CalDAV server given as "
                                   "URL. Never overwrites a config.")
    i.add_argument("url", nargs="?", metavar="URL", help="a CalDAV/CardDAV server to set up instead")
    i.add_argument("--username", metavar="NAME", help="with URL: the login (the password is asked for)")
    i.add_argument("--example", action="store_true", help="print the documented example config and exit")
    c = sub.add_parser("completion", help="print a shell completion script",
                       description="Print a completion script, e.g. `syncd completion bash > "
                                   "~/.local/share/bash-completion/completions/syncd`.")
    c.add_argument("shell", choices=SHELLS, help="the shell")
    from syncd import teamcli  # imports nothing of PostgreSQL until a team command runs

    teamcli.add_parser(sub)
    return p


SHELLS = ("bash", "zsh", "fish")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``syncd`` command; returns the exit code."""
    p = parser()
    _complete(p)
    args = p.parse_args(argv)
    if args.backfill and args.command:
        p.error("--backfill is a command of its own; drop the other command")
    if args.since and not args.backfill:
        p.error("--since goes with --backfill")
    if not args.backfill and not args.command:
        p.print_help(sys.stderr)
        return EX_USAGE
    verbosity = -1 if args.quiet else args.verbose
    logsetup.setup(verbosity)
    command = "backfill" if args.backfill else args.command
    from syncd import stop

    try:
        if command == "run":
            from syncd import daemon

            return daemon.run(args.config, verbosity)
        # SIGTERM ends a one-shot command the daemon's way: at the next step, or after
        # the grace period with the running step rolled back; a rerun goes on from there.
        with stop.StopGuard() as args.stop:
            return COMMANDS[command](args)
    except stop.Interrupted:
        print("syncd: stopped by SIGTERM; every step that finished is saved and the one running was "
              "rolled back; run the same command again to finish", file=sys.stderr)
        return EX_OK
    except SyncdError as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("syncd: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`syncd people | head`): no "Exception ignored" noise at exit
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EX_OK
    except OSError as exc:  # a folder syncd cannot create, a disk it cannot write
        log.debug("%s failed", command, exc_info=True)
        print(f"syncd: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return EX_FAILED


def _complete(p: argparse.ArgumentParser) -> None:
    """Answer a shell's completion request (argcomplete; a no-op unless the shell asks)."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    import argcomplete

    argcomplete.autocomplete(p)


def cmd_completion(args: argparse.Namespace) -> int:
    """``syncd completion SHELL``: the script that makes SHELL complete syncd's arguments."""
    import argcomplete

    sys.stdout.write(argcomplete.shellcode(["syncd"], shell=args.shell))
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
        except (OSError, sqlite3.Error) as exc:
            if not disk_full(exc):
                raise
            raise full_disk_error(cfg.ledger, exc) from None
        finally:
            ledger.close()


def _between_steps(progress: Callable[..., None] | None,
                   args: argparse.Namespace) -> Callable[..., None]:
    """The engine's progress callback (called after each committed batch): a stop point too."""
    guard = getattr(args, "stop", None)

    def step(account: str, collection: str, n: int, total: int | None = None) -> None:
        if progress is not None:
            progress(account, collection, n, total)
        if guard is not None:
            guard.check()

    return step


class _Bar:
    """A progress bar on stderr (a terminal only): one line per collection, with a total
    where the connector knows one. Log lines go through its console, above the bar."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

        self.console = Console(stderr=True, highlight=False)
        self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TextColumn("objects"), console=self.console, transient=True)
        self.tasks: dict[tuple[str, str], Any] = {}

    def __call__(self, account: str, collection: str, n: int, total: int | None = None) -> None:
        key = (account, collection)
        if key not in self.tasks:
            self.tasks[key] = self.bar.add_task(f"{account}: {collection}", total=total)
        elif total is not None:
            self.bar.update(self.tasks[key], total=total)
        self.bar.advance(self.tasks[key], n)


@contextmanager
def _progress(show: bool) -> Iterator[Callable[..., None] | None]:
    """A progress callback for the engine while the block runs, or None off a terminal."""
    if not show or not sys.stderr.isatty():
        yield None
        return
    bar = _Bar()
    with bar.bar, logsetup.through(bar.console):
        yield bar


def _pass(args: argparse.Namespace, backfill: bool) -> int:
    from syncd import plugins
    from syncd.engine import Engine

    cfg = config.load(args.config)
    dry_run = bool(args.dry_top or getattr(args, "dry_run", False))
    allow_empty = list(getattr(args, "allow_empty", None) or [])
    names = [a.name for a in cfg.accounts]
    for name in allow_empty:
        if name not in names:
            raise errors.ConfigError(cfg.path, "accounts", name, "an account name for --allow-empty: "
                                     + ", ".join(names))
    since = None
    if backfill:
        day = args.since or (clock.now() - dt.timedelta(days=5 * 365)).date()
        since = dt.datetime.combine(day, dt.time(), cfg.timezone)
    if not dry_run:
        plugins.save_cache()
    with _writer(cfg, dry_run, "syncd --backfill" if backfill else "syncd sync") as ledger:
        # the report lists every follow-up; log lines say it again only when asked (-v)
        unlisted = logsetup.listed_elsewhere() if args.verbose == 0 else contextlib.nullcontext()
        with _progress(not args.quiet) as progress, unlisted:
            engine = Engine(cfg, ledger, dry_run=dry_run, progress=_between_steps(progress, args),
                            allow_empty=allow_empty, cache=paths.cache_dir())
            try:
                result = engine.run_pass(since=since)
            finally:
                engine.close()
        if not (args.quiet and result.ok):
            _report(cfg, engine.ledger, result, dry_run)
    return result.exit_code


_SHOWN = 20  # overdue people listed after a pass; `people --overdue` has them all


def _report(cfg: config.Config, ledger: Ledger, result: Any, dry_run: bool) -> None:
    rec = result.reconcile
    for acc in result.accounts:
        if acc.exc is None:
            print(f"{acc.account}: {acc.changed} changes, ok")
        else:
            print(f"{acc.account}: {acc.changed} changes, FAILED: {errors.message(acc.exc)}")
    if dry_run:
        print(f"Follow-ups syncd would write: {len(rec.written)}")
    else:
        print(f"Follow-ups written: {len(rec.written)}")
    for line in rec.written:
        print(f"  + {line}")
    for line in rec.resolved:
        print(f"  - {'would resolve' if dry_run else 'resolved'}: {line}")
    if rec.error:
        print(f"Write-back FAILED: {rec.error}")
    today = clock.local_date(clock.now(), cfg.timezone).isoformat()
    count, overdue = ledger.overdue(today, _SHOWN)
    print(f"Overdue: {count}")
    shown = sorted(overdue, key=lambda p: (p["due"], p["name"].casefold()))[:_SHOWN]
    for p in shown:
        last = output.local_day(p["last_met"], cfg.timezone) or "never"
        print(f"  {p['name']} (due {p['due']}, last met {last})")
    if count > _SHOWN:
        print(f"  ... and {count - _SHOWN} more: syncd people --overdue")


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
    from syncd import views

    cfg = _config(args)
    ledger = _reader(cfg)
    today = clock.local_date(clock.now(), cfg.timezone).isoformat() if args.overdue else None
    people = ledger.people(due_by=today) if ledger else []
    people.sort(key=lambda p: (p["name"].casefold(), p["emails"]))
    if args.overdue:
        people.sort(key=lambda p: p["due"])  # stable: ties stay in name order
    if args.sort is not None:
        people = views.sort_people(people, args.sort)
    if args.json:
        _emit_json(people)
        return EX_OK
    if not people:
        _say(args, "nobody yet; run `syncd --backfill`" if not args.overdue else "nobody is overdue")
        return EX_OK
    tz = cfg.timezone
    output.table(["name", "emails", "groups", "met", "last met", "next", "due", "strength"],
                 [[p["name"], ", ".join(p["emails"]), ", ".join(p["groups"]), str(p["interactions"]),
                   output.local_day(p["last_met"], tz), output.local_day(p["next_meeting"], tz), p["due"] or "",
                   str(p.get("strength", ""))]
                  for p in people])
    return EX_OK


def cmd_person(args: argparse.Namespace) -> int:
    """``syncd person QUERY``: exit 2 when QUERY matches nobody or several people."""
    from syncd import views

    cfg = _config(args)
    ledger = _reader(cfg)
    found = views.find([{**e, "key": k} for k, e in ledger.people_keys()] if ledger else [], args.query)
    if ledger is None or not found:
        print(f"syncd: nobody matches {args.query!r}; see `syncd people`", file=sys.stderr)
        return EX_USAGE
    if len(found) > 1:
        print(f"syncd: {args.query!r} matches {len(found)} people; say which:\n{views.candidates(found)}",
              file=sys.stderr)
        return EX_USAGE
    key = found[0].pop("key")
    story = ledger.story(key)
    ids = ledger.aliases(key)
    data = views.person_json(found[0], story, ledger.history(key), views.followups_of(ids, ledger.followups_of(ids)))
    if args.json:
        _emit_json(data)
        return EX_OK
    from rich.console import Console

    views.render_person(Console(highlight=False, width=None if sys.stdout.isatty() else 120), data, story)
    return EX_OK


def _say(args: argparse.Namespace, text: str) -> None:
    """A line for the reader of a terminal; nothing with ``-q`` or in a pipe's data."""
    if not args.quiet:
        print(text, file=sys.stdout if output.is_terminal() else sys.stderr)


def cmd_tasks(args: argparse.Namespace) -> int:
    """``syncd tasks``."""
    from syncd import views

    cfg = _config(args)
    ledger = _reader(cfg)
    # the open ones by the state's index: closed ones pile up over the years
    rows = ledger.followups(None if args.all else ("pending", "open")) if ledger else []
    items = [views.task_json(r) for r in rows]
    if args.json:
        _emit_json(items)
        return EX_OK
    if not items:
        _say(args, "no follow-ups")
        return EX_OK
    output.table(["due", "state", "rule", "person", "reason"],
                 [[str(i["due"]), str(i["state"]), str(i["rule"]), str(i["person"]), str(i["reason"])]
                  for i in items])
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
    _say(args, f"ledger {status['ledger']} ({size} bytes)")
    rows = []
    for a in accounts:
        err = f"{a['last_error']} ({a['last_error_at']})" if a["last_error"] else ""
        rows.append([str(a["name"]), str(a["type"]), str(a["last_success"] or "never"), err,
                     str(a["next_attempt"] or ""), str(a["collections"]), str(a["objects"])])
    output.table(["account", "type", "last success", "last error", "next attempt", "collections", "objects"],
                 rows)
    return EX_OK


def _connector(cfg: config.Config, name: str) -> Any:
    from syncd import plugins
    from syncd.context import AccountContext

    acc = cfg.account(name)
    return plugins.connector_class(acc.type)(name, acc.options, AccountContext(name, cfg.timezone))


def cmd_auth(args: argparse.Namespace) -> int:
    """``syncd auth ACCOUNT``: check, then store the account's secret."""
    from syncd import secrets

    cfg = config.load(args.config)
    names = [a.name for a in cfg.accounts]
    if args.account not in names:
        raise errors.ConfigError(cfg.path, "accounts", args.account, "an account name: " + ", ".join(names))
    acc = cfg.account(args.account)
    conn = _connector(cfg, args.account)
    try:
        kind = getattr(conn, "secret_kind", "password")
        if kind is None:
            raise errors.UsageError(f"account {acc.name!r} ({acc.type}) needs no secret; nothing to store")
        backend = secrets.check_backend()  # before anyone types a password that cannot be kept
        log.debug("keyring backend: %s", backend)
        if kind == "oauth":
            conn.authorize()
        else:
            password = secrets.read_password(f"Password for account {acc.name!r}: ")
            conn.verify_secret(password)  # a refused password is not stored
            secrets.put(acc.name, password)
    finally:
        conn.close()
    if not args.quiet:
        print(f"stored the secret of account {args.account!r} in the keyring")
    return EX_OK


def cmd_check(args: argparse.Namespace) -> int:
    """``syncd check``: every line says what is fine or what is wrong; exit 1 on any problem."""
    cfg = config.load(args.config)
    quiet = args.quiet
    if not quiet:
        print(f"config {cfg.path}: ok")
    bad = 0
    for acc in cfg.accounts:
        head = f"{acc.name} ({acc.type})"
        problems: list[str] = []
        lines: list[str] = []
        failure = None
        try:
            conn = _connector(cfg, acc.name)
            try:
                problems = conn.problems()
                lines = conn.check()
            finally:
                conn.close()
        except SyncdError as exc:
            failure = str(exc)
        if problems:
            print(f"{head}: {len(problems)} problem{'s' if len(problems) > 1 else ''}")
            for line in problems:
                print(f"  problem: {line}")
        elif failure:
            print(f"{head}: FAILED: {failure}")
        elif not quiet:
            print(f"{head}: ok")
        bad += bool(problems or failure)
        if not quiet:
            for line in lines:
                print(f"  {line}")
    return EX_FAILED if bad else EX_OK


def cmd_init(args: argparse.Namespace) -> int:
    """``syncd init [--example] [URL]``."""
    from syncd import init as setup

    if args.example:
        sys.stdout.write(setup.example())
        return EX_OK
    path = (args.config or config.default_path()).expanduser()
    text = setup.write_first_config(path, url=args.url, username=args.username)
    if not args.quiet:
        print(text, end="")
    return EX_OK


def cmd_team(args: argparse.Namespace) -> int:
    """``syncd team COMMAND`` (SPEC §9)."""
    from syncd import teamcli

    return teamcli.main(args)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "backfill": cmd_backfill,
    "sync": cmd_sync,
    "people": cmd_people,
    "person": cmd_person,
    "tasks": cmd_tasks,
    "status": cmd_status,
    "auth": cmd_auth,
    "check": cmd_check,
    "init": cmd_init,
    "completion": cmd_completion,
    "team": cmd_team,
}
