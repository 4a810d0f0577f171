"""Fixtures of the team tests: a real PostgreSQL (see ``tests.team.pg``)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from syncd import cli
from tests.helpers import World
from tests.team import pg

NOW = "2026-06-15T10:00:00Z"


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[str]:
    """A superuser DSN: ``SYNCD_TEST_DATABASE``, or a private cluster for this session."""
    given = os.environ.get("SYNCD_TEST_DATABASE")
    if given:
        pg.ensure_owner(given)
        yield given
        return
    with pg.cluster() as dsn:
        pg.ensure_owner(dsn)
        yield dsn


@pytest.fixture
def team_db(pg_admin: str) -> Iterator[str]:
    """A fresh database owned by a role that is not a superuser; its DSN."""
    dsn = pg.new_database(pg_admin)
    yield dsn
    pg.drop_database(pg_admin, dsn)


class TeamWorld:
    """A team config (database, key file) and member worlds (vdir accounts), driven through
    ``syncd --config team.toml team ...``."""

    def __init__(self, root: Path, dsn: str) -> None:
        from cryptography.fernet import Fernet

        self.root, self.dsn = root, dsn
        self.key = root / "team-key"
        self.key.write_bytes(Fernet.generate_key())
        self.config = root / "team.toml"
        self.config.write_text(f'[team]\ndatabase = "{dsn}"\nkey_file = "{self.key}"\ninterval = "15m"\n')
        self.worlds: dict[str, World] = {}

    def member(self, name: str, add: bool = True) -> World:
        """A member's vdir world (its config has no ledger key); added to the team."""
        world = World(self.root / name)
        world.config.write_text("\n".join(line for line in world.config.read_text().splitlines()
                                          if not line.startswith("ledger")) + "\n")
        self.worlds[name] = world
        if add:
            self.run("add", name, "--config", str(world.config))
        return world

    def env(self) -> dict[str, str]:
        """The environment of a run (the fixed clock of ``tests.helpers``)."""
        env = World.env(self, NOW)  # type: ignore[arg-type]
        env.pop("CREDENTIALS_DIRECTORY", None)
        return env

    def run(self, *args: str, check: bool = True, stdin: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``syncd --config team.toml team ARGS``: in this process (the CLI's own ``main``,
        a fraction of a second), or as a subprocess when it reads a password from stdin."""
        argv = ["--config", str(self.config), "team", *args]
        if stdin is None:
            out, err = io.StringIO(), io.StringIO()
            saved = dict(os.environ)
            loggers = [logging.getLogger(n) for n in ("", "syncd", "syncd_connectors")]
            state = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
            os.environ.clear()
            os.environ.update(self.env())
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    code = cli.main(argv)
            finally:
                os.environ.clear()
                os.environ.update(saved)
                for lg, handlers, level, propagate in state:  # the CLI set up logging for itself
                    lg.handlers[:] = handlers
                    lg.setLevel(level)
                    lg.propagate = propagate
            proc = subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())
        else:
            # a new session has no terminal: the password comes from stdin even when the
            # tests run in one
            proc = subprocess.run([sys.executable, "-m", "syncd", *argv], capture_output=True, text=True,
                                  env=self.env(), input=stdin, timeout=timeout, start_new_session=True)
        if check and proc.returncode != 0:
            raise AssertionError(f"syncd team {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def json(self, *args: str) -> Any:
        """The parsed stdout of a ``--json`` command."""
        return json.loads(self.run(*args, "--json").stdout)

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of a query as the team's database owner."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(query, params or None)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []


@pytest.fixture
def team(team_db: str, tmp_path: Path) -> TeamWorld:
    """An initialised team database with its config and key; no members yet."""
    world = TeamWorld(tmp_path, team_db)
    world.run("init")
    return world
