"""Issue 11 items 2 and 3 against a real Radicale: ``syncd init URL`` lists what the
server offers, calendars can be named by path, ``syncd auth`` checks a password
against the server before it stores it and reads it from a pipe."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.caldav.test_cli import NOW, DavWorld, _assert_no_secret, _bob, _make

pytestmark = pytest.mark.servers


@pytest.fixture
def rworld(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DavWorld]:
    yield from _make(request, tmp_path, "radicale")


def _syncd(world: DavWorld, *args: str, stdin: str | None = None,
           config: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "syncd", "--config", config or str(world.config), *args],
                          capture_output=True, text=True, env=world.env(NOW), input=stdin, timeout=120)
    world.outputs += [proc.stdout, proc.stderr]
    return proc


def test_auth_checks_the_password_with_the_server_before_storing(rworld: DavWorld) -> None:
    w = rworld
    assert w.password
    w.keyring().delete_password("syncd", "home")
    wrong = _syncd(w, "auth", "home", stdin="not-the-password\n")
    assert wrong.returncode == 1 and "credentials refused" in wrong.stderr
    assert "Traceback" not in wrong.stderr + wrong.stdout
    assert w.keyring().get_password("syncd", "home") is None  # a refused password is not kept
    right = _syncd(w, "auth", "home", stdin=w.password + "\n")
    assert right.returncode == 0, right.stderr
    assert "stored the secret of account 'home'" in right.stdout
    assert w.keyring().get_password("syncd", "home") == w.password
    _bob(w)  # the stored password works
    _assert_no_secret(w)


def test_init_with_a_url_lists_calendars_by_name_and_path(rworld: DavWorld) -> None:
    w = rworld
    assert w.password and w.user
    w.keyring().delete_password("syncd", "home")
    new = w.root / "new" / "config.toml"
    proc = _syncd(w, "init", w.server.url, "--username", w.user, stdin=w.password + "\n", config=str(new))
    assert proc.returncode == 0, proc.stderr
    text = new.read_text()
    # the server took the password, so init kept it: check needs no other step
    assert "The password is in the keyring" in text
    assert w.keyring().get_password("syncd", "home") == w.password
    assert f'"{w.cal_name}",  # {w.cal}' in text  # display name, then path
    assert f'"{w.book_name}",  # {w.book}' in text
    cfg = tomllib.loads(text)
    assert cfg["accounts"]["home"]["url"] == w.server.url
    assert cfg["accounts"]["home"]["username"] == w.user
    check = _syncd(w, "check", config=str(new))
    assert check.returncode == 0, check.stdout + check.stderr
    assert w.cal_name in check.stdout
    _assert_no_secret(w)
    assert w.password not in text


def test_calendars_can_be_named_by_path(rworld: DavWorld) -> None:
    w = rworld
    w.config.write_text(w.config.read_text()
                        .replace(f'calendars = ["{w.cal_name}"]', f'calendars = ["{w.cal}"]')
                        .replace(f'addressbooks = ["{w.book_name}"]', f'addressbooks = ["{w.book.strip("/")}"]'))
    check = _syncd(w, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"calendars (1): {w.cal_name}" in check.stdout
    assert f"address books (1): {w.book_name}" in check.stdout
    _bob(w)


def test_check_names_a_tasks_calendar_that_takes_no_tasks(rworld: DavWorld) -> None:
    w = rworld
    events_only = f"Events only {w.tag}"
    w.seed.mkcalendar(events_only, components=("VEVENT",))
    w.config.write_text(w.config.read_text().replace(f'tasks = "{w.tasks_name}"', f'tasks = "{events_only}"'))
    check = _syncd(w, "check")
    assert check.returncode == 1, check.stdout
    assert f"problem: tasks: calendar '{events_only}' does not accept VTODO (it takes VEVENT)" in check.stdout
