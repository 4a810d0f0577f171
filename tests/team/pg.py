"""A private PostgreSQL cluster for the team tests, or the one ``SYNCD_TEST_DATABASE`` names.

The cluster is started with the machine's ``initdb``/``pg_ctl`` in a temporary folder,
listening on a free 127.0.0.1 port. initdb refuses to run as root, so under root (CI)
the cluster belongs to an unprivileged system user made for it. Each test gets a fresh
database owned by ``syncd``, a role that is not a superuser (SPEC §9: everything works
as such a database owner); it has CREATEROLE, which member isolation needs.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

OS_USER = "syncd-pgtest"
OWNER = "syncd"


def _bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True):
        return candidate
    raise RuntimeError(f"{name} not found: install PostgreSQL (Debian: apt-get install postgresql)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_owner(cmd: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


@contextlib.contextmanager
def cluster() -> Iterator[str]:
    """Start a throw-away cluster; yield a superuser DSN; stop it and delete it.

    Its folder is a fresh one under the temporary directory (not pytest's, which is
    private to root and so out of the cluster owner's reach).
    """
    base = Path(tempfile.mkdtemp(prefix="syncd-pg-"))
    user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(OS_USER)
        except KeyError:
            # two test processes may race to create it: whichever wins, it exists after
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OS_USER],
                           check=False, stderr=subprocess.DEVNULL)
            pwd.getpwnam(OS_USER)
        user = OS_USER
    data, sock = base / "data", base / "sock"
    sock.mkdir(exist_ok=True)
    if user:
        shutil.chown(base, user)
        shutil.chown(sock, user)
    subprocess.run(_as_owner([_bin("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                              "-E", "UTF8", "--no-locale", "--no-sync"], user),
                   check=True, stdout=subprocess.DEVNULL)
    port = _free_port()
    opts = (f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
    subprocess.run(_as_owner([_bin("pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "log"),
                              "-w", "-t", "60", "start"], user), check=True, stdout=subprocess.DEVNULL)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_owner([_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], user),
                       check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(base, ignore_errors=True)


def dsn_for(admin_dsn: str, database: str, user: str) -> str:
    """``admin_dsn`` with another database and user."""
    info = psycopg.conninfo.conninfo_to_dict(admin_dsn)
    return f"postgresql://{user}@{info['host']}:{info['port']}/{database}"


def ensure_owner(admin_dsn: str) -> None:
    """The non-superuser team role (CREATEROLE: members get roles of their own)."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (OWNER,)).fetchone():
            # test processes sharing one server may race here: the loser finds it made
            with contextlib.suppress(psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE NOSUPERUSER").format(sql.Identifier(OWNER)))


def new_database(admin_dsn: str) -> str:
    """A fresh database owned by the team role; its DSN as that role."""
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(OWNER)))
    return dsn_for(admin_dsn, name, OWNER)


def drop_database(admin_dsn: str, dsn: str) -> None:
    """Drop a test database, and the member roles left behind by it."""
    name = str(dsn.rsplit("/", 1)[1])
    for _ in range(50):
        try:
            with psycopg.connect(admin_dsn, autocommit=True) as conn:
                row = conn.execute("SELECT oid FROM pg_database WHERE datname = %s", (name,)).fetchone()
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                if row:
                    roles = conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s",
                                         (f"syncd\\_{row[0]}\\_%",)).fetchall()
                    for (role,) in roles:
                        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
            return
        except psycopg.errors.ObjectInUse:
            time.sleep(0.1)


def member_ledger(dsn: str) -> tuple[Any, Callable[[], None]]:
    """A fresh member-style ledger (its own role and schema) and a function that drops it."""
    from syncd import pgledger

    tag = uuid.uuid4().hex[:10]
    schema, role = f"member_{tag}", f"syncd_test_{tag}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(role)))
        conn.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(sql.Identifier(schema), sql.Identifier(role)))
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        conn.execute(pgledger.SQLITE_MASTER)  # type: ignore[arg-type]
    ledger = pgledger.open_member(dsn, schema, role, f"postgresql:{tag}")

    def drop() -> None:
        ledger.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))

    return ledger, drop
