"""``syncd team COMMAND`` (SPEC §9): the command line of a team deployment.

This module only builds the parser at import time; PostgreSQL, Procrastinate and the
encryption are imported when a team command runs, so a single user never loads them.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from syncd.errors import EX_OK, UnavailableError

_EXTRA = "syncd team needs the team extra: pip install 'syncd[team]'"


def add_parser(sub: Any) -> None:
    """Add ``team`` and its commands to the ``syncd`` parser's subcommands."""
    t = sub.add_parser("team", help="run syncd for many members (PostgreSQL, workers)")
    ts = t.add_subparsers(dest="team_command", metavar="COMMAND", required=True, parser_class=type(t))
    ts.add_parser("init", help="create or upgrade the team database's schema (idempotent)")
    a = ts.add_parser("add", help="add a member, or replace its config")
    a.add_argument("member", metavar="MEMBER", help="the member's name")
    a.add_argument("--config", dest="member_config", required=True, metavar="FILE",
                   help="the member's single-user config (without ledger)")
    au = ts.add_parser("auth", help="store a member account's secret, encrypted with the team key")
    au.add_argument("member", metavar="MEMBER", help="the member's name")
    au.add_argument("account", metavar="ACCOUNT", help="the name of an [accounts.NAME] table of the member")
    r = ts.add_parser("remove", help="delete every row of a member")
    r.add_argument("member", metavar="MEMBER", help="the member's name")
    m = ts.add_parser("members", help="the members and their accounts")
    m.add_argument("--json", action="store_true", help="JSON output (fields: docs/json.md)")
    w = ts.add_parser("worker", help="take passes until SIGTERM")
    w.add_argument("--concurrency", type=_positive, default=1, help="passes run at once (default 1)")
    w.add_argument("--heartbeat", type=_positive_float, default=10.0, metavar="SECONDS",
                   help="how often the worker says it is alive; one silent 3 times as long is "
                   "presumed dead and its passes are taken over (default 10)")
    w.add_argument("--tick", default="* * * * *", metavar="CRON",
                   help="when members that are due are queued (default: every minute)")
    st = ts.add_parser("status", help="every member's last pass, and the queue")
    st.add_argument("--json", action="store_true", help="JSON output (fields: docs/json.md)")
    sy = ts.add_parser("sync", help="one pass of a member now, in this process")
    sy.add_argument("member", metavar="MEMBER", help="the member's name")
    sy.add_argument("--dry-run", action="store_true", help="read everything, write nothing")
    sy.add_argument("--allow-empty", action="append", default=[], metavar="ACCOUNT",
                    help="as `syncd sync --allow-empty`")
    pe = ts.add_parser("people", help="a member's people (as `syncd people`)")
    pe.add_argument("member", metavar="MEMBER", help="the member's name")
    pe.add_argument("--json", action="store_true", help="JSON output (fields: docs/json.md)")
    pe.add_argument("--overdue", action="store_true", help="only those due today or earlier")
    pe.add_argument("--sort", choices=("name", "due", "strength", "last"), default=None,
                    help="as `syncd people --sort`")
    ta = ts.add_parser("tasks", help="a member's follow-ups (as `syncd tasks`)")
    ta.add_argument("member", metavar="MEMBER", help="the member's name")
    ta.add_argument("--json", action="store_true", help="JSON output (fields: docs/json.md)")
    ta.add_argument("--all", action="store_true", help="also done, dismissed and resolved ones")
    pn = ts.add_parser("person", help="one person of a member (as `syncd person`)")
    pn.add_argument("member", metavar="MEMBER", help="the member's name")
    pn.add_argument("query", metavar="QUERY", help="an email (exact, any case) or part of a name (any case)")
    pn.add_argument("--json", action="store_true", help="JSON output (fields: docs/json.md)")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, found {text!r}")
    return int(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, found {text!r}")
    return value


def main(args: argparse.Namespace) -> int:
    """Run ``syncd team <command>``; returns the exit code."""
    try:
        from syncd import team
    except ImportError:
        raise UnavailableError(_EXTRA) from None
    cfg = team.load_config(args.config)
    command = args.team_command
    if command == "worker":
        return _worker(cfg, args)
    with team.Team(cfg) as db:
        return int(globals()[f"_{command}"](db, args))


def _emit(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


def _init(db: Any, args: argparse.Namespace) -> int:
    for line in db.init():
        print(line)
    return EX_OK


def _add(db: Any, args: argparse.Namespace) -> int:
    from pathlib import Path

    member, new = db.add(args.member, Path(args.member_config))
    print(f"{'added' if new else 'updated'} member {member.name!r}")
    return EX_OK


def _auth(db: Any, args: argparse.Namespace) -> int:
    from syncd import errors, plugins, team
    from syncd.context import AccountContext

    fernet = team.read_key(db.config)
    member = db.member(args.member)
    cfg = db.member_config(member)
    names = [a.name for a in cfg.accounts]
    if args.account not in names:
        raise errors.ConfigError(member.config_path, "accounts", args.account,
                                 f"an account of member {member.name!r}: " + ", ".join(names))
    ledger = db.ledger(member.name)
    try:
        vault = team.Vault(member.name, ledger, fernet)
        acc = cfg.account(args.account)
        ctx = AccountContext(args.account, cfg.timezone, get_secret=vault.get, put_secret=vault.put)
        plugins.connector_class(acc.type)(args.account, acc.options, ctx).authorize()
    finally:
        ledger.close()
    print(f"stored the secret of account {args.account!r} of member {member.name!r}, encrypted")
    return EX_OK


def _remove(db: Any, args: argparse.Namespace) -> int:
    db.remove(args.member)
    print(f"removed member {args.member!r} and all their data")
    return EX_OK


def _members(db: Any, args: argparse.Namespace) -> int:
    items = []
    for m in db.members():
        try:
            accounts = [a.name for a in db.member_config(m).accounts]
        except Exception:  # a config that no longer loads still lists its member
            accounts = []
        items.append({"name": m.name, "accounts": accounts})
    if args.json:
        _emit(items)
    else:
        for i in items:
            print(f"{i['name']}: {', '.join(i['accounts']) or '(no accounts)'}")
    return EX_OK


def _status(db: Any, args: argparse.Namespace) -> int:
    from syncd.ledger import iso

    members = [{"name": m.name, "last_success": iso(m.last_success), "last_error": m.last_error,
                "next_run": iso(m.next_run)} for m in db.members()]
    status = {"members": members, "queue": db.queue()}
    if args.json:
        _emit(status)
        return EX_OK
    q = status["queue"]
    print(f"queue: {q['waiting']} waiting" + (f", oldest {q['oldest_waiting_s']} s" if q["waiting"] else ""))
    for m in members:
        err = f"; last error: {m['last_error']}" if m["last_error"] else ""
        print(f"{m['name']}: last success {m['last_success'] or 'never'}, next {m['next_run'] or 'at the next tick'}{err}")
    return EX_OK


def _sync(db: Any, args: argparse.Namespace) -> int:
    from syncd import cli, team

    fernet = team.read_key(db.config)
    member = db.member(args.member)

    def report(cfg: Any, ledger: Any, result: Any) -> None:
        cli._report(cfg, ledger, result, args.dry_run)

    result = db.run_pass(member.name, fernet, dry_run=args.dry_run, allow_empty=args.allow_empty, report=report)
    return int(result.exit_code)


def _view(db: Any, args: argparse.Namespace, command: str) -> int:
    from syncd import cli

    member = db.member(args.member)
    cfg = db.member_config(member)
    ledger = db.ledger(member.name)
    token = cli.member_view.set((cfg, ledger))
    try:
        return int(cli.COMMANDS[command](args))
    finally:
        cli.member_view.reset(token)
        ledger.close()


def _people(db: Any, args: argparse.Namespace) -> int:
    return _view(db, args, "people")


def _tasks(db: Any, args: argparse.Namespace) -> int:
    return _view(db, args, "tasks")


def _person(db: Any, args: argparse.Namespace) -> int:
    from syncd import cli

    if "person" not in cli.COMMANDS:
        raise UnavailableError("`syncd person` is not in this version of syncd")
    return _view(db, args, "person")


def _worker(cfg: Any, args: argparse.Namespace) -> int:
    from syncd import team, teamjobs

    fernet = team.read_key(cfg)
    with team.Team(cfg) as db:
        db.members()  # a database not prepared by `team init` is a config error, said now
    teamjobs.run_worker(cfg, fernet, args.concurrency, heartbeat=args.heartbeat, tick_cron=args.tick)
    return EX_OK
