"""`syncd team` end to end on a real PostgreSQL, as a database owner that is not a superuser."""

from __future__ import annotations

import datetime as dt
import subprocess

import psycopg
import pytest

from syncd import team as team_mod
from syncd.team import TeamConfig
from tests.helpers import event, vcard
from tests.team import pg
from tests.team.conftest import TeamWorld


def _world_with(team: TeamWorld, name: str, only: str) -> None:
    """A member who knows Bob (as the other member does) and someone only they know."""
    w = team.member(name)
    w.add_contact("bob", vcard("Bob Stone", "bob@example.org", groups="Friends"))
    w.add_contact(only, vcard(f"{only.title()} Only", f"{only}@example.org", groups="Friends"))
    w.add_event("e1", event(f"{name}-e1", "20260610T100000", f"Coffee of {name}", ["bob@example.org"]))
    w.add_event("e2", event(f"{name}-e2", "20260612T100000", "Lunch", [f"{only}@example.org"]))


def test_two_members_with_overlapping_contacts_stay_isolated(team: TeamWorld) -> None:
    _world_with(team, "alice", "carla")
    _world_with(team, "bruno", "dora")
    team.run("sync", "alice")
    team.run("sync", "bruno")
    alice = {p["name"]: p for p in team.json("people", "alice")}
    bruno = {p["name"]: p for p in team.json("people", "bruno")}
    assert set(alice) == {"Bob Stone", "Carla Only"}
    assert set(bruno) == {"Bob Stone", "Dora Only"}
    assert alice["Bob Stone"]["last_met"] == bruno["Bob Stone"]["last_met"]  # same meeting time, own rows
    # each member's follow-ups went to its own sink and ledger
    assert {t["person"] for t in team.json("tasks", "alice")} == {"Bob Stone", "Carla Only"}
    assert all("Dora" not in text for text in team.worlds["alice"].task_files().values())
    assert len(team.worlds["bruno"].task_files()) == 2
    assert [m["name"] for m in team.json("members")] == ["alice", "bruno"]
    # `person` and `people --sort` as for a single user, on the member's own rows
    bob = team.json("person", "alice", "bob stone")
    assert [h["summary"] for h in bob["history"]] == ["Coffee of alice"]
    assert [f["rule"] for f in bob["followups"]] == ["first_meeting"]
    ranked = team.json("people", "bruno", "--sort", "strength")
    assert [p["strength"] for p in ranked] == sorted((p["strength"] for p in ranked), reverse=True)
    assert team.run("person", "alice", "dora", check=False).returncode == 2  # bruno's, not alice's


def test_a_members_pass_cannot_read_or_write_another_members_rows(team: TeamWorld) -> None:
    _world_with(team, "alice", "carla")
    _world_with(team, "bruno", "dora")
    team.run("sync", "bruno")
    cfg = TeamConfig(path=team.config, database=team.dsn, key_file=team.key, interval=dt.timedelta(minutes=15))
    with team_mod.Team(cfg) as db:
        other_schema, _ = db.names(db.member("bruno"))
        with db.pass_ledger("alice") as ledger:  # exactly what alice's pass queries through
            conn = ledger.conn
            for query in (f"SELECT * FROM {other_schema}.people", f"SELECT * FROM {other_schema}.team_secrets",
                          f"INSERT INTO {other_schema}.meta VALUES ('x', 'y')",
                          f"DELETE FROM {other_schema}.followups", "SELECT * FROM syncd_team.members",
                          "SELECT * FROM public.procrastinate_jobs"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(query)
            conn.execute(f"SET search_path TO {other_schema}")  # a schema it may not use is skipped
            with pytest.raises((psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedTable)):
                conn.execute("SELECT * FROM people")
    assert len(team.json("people", "bruno")) == 2


def test_init_is_idempotent_and_works_as_a_non_superuser(team: TeamWorld) -> None:
    assert team.sql("SELECT rolsuper FROM pg_roles WHERE rolname = current_user") == [(False,)]
    team.member("alice")
    out = team.run("init").stdout
    assert "1 members" in out
    assert [m["name"] for m in team.json("members")] == ["alice"]


def test_a_bad_member_config_names_member_file_key_value(team: TeamWorld) -> None:
    w = team.member("alice", add=False)
    w.config.write_text(w.config.read_text().replace('tasks_as = "todo"', 'tasks_as = "note"'))
    proc = team.run("add", "alice", "--config", str(w.config), check=False)
    assert proc.returncode == 78
    assert "member 'alice'" in proc.stderr and str(w.config) in proc.stderr
    assert "tasks_as" in proc.stderr and "'note'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert team.json("members") == []


def test_a_member_config_with_a_ledger_is_refused(team: TeamWorld) -> None:
    w = team.member("alice", add=False)
    w.config.write_text(w.config.read_text().replace("[syncd]", '[syncd]\nledger = "/tmp/x.sqlite3"'))
    proc = team.run("add", "alice", "--config", str(w.config), check=False)
    assert proc.returncode == 78
    assert "syncd.ledger" in proc.stderr and "member 'alice'" in proc.stderr


@pytest.mark.parametrize("name", ["Alice", "_x", "a" * 64, "al ice"])
def test_a_bad_member_name_is_refused(team: TeamWorld, name: str) -> None:
    w = team.member("ok", add=False)
    proc = team.run("add", name, "--config", str(w.config), check=False)
    assert proc.returncode == 78 and "member" in proc.stderr


def test_unknown_member_and_bad_team_config(team: TeamWorld) -> None:
    proc = team.run("people", "nobody", check=False)
    assert proc.returncode == 78 and "'nobody'" in proc.stderr
    team.config.write_text(team.config.read_text() + 'typo = "x"\n')
    proc = team.run("members", check=False)
    assert proc.returncode == 78 and "team.typo" in proc.stderr


def test_an_unprepared_database_says_run_init(team_db: str, tmp_path: pytest.TempPathFactory) -> None:
    world = TeamWorld(tmp_path, team_db)  # type: ignore[arg-type]
    proc = world.run("members", check=False)
    assert proc.returncode == 78 and "syncd team init" in proc.stderr


def test_auth_stores_the_secret_encrypted_and_never_shows_it(team: TeamWorld) -> None:
    team.member("alice")
    secret = "s3cret-pass-word"
    team.run("auth", "alice", "files", stdin=secret + "\n")
    rows = team.sql("SELECT n.nspname FROM pg_namespace n WHERE n.nspname LIKE 'member_%'")
    schema = rows[0][0]
    stored = team.sql(f"SELECT account, token FROM {schema}.team_secrets")
    assert [r[0] for r in stored] == ["files"]
    assert secret.encode() not in bytes(stored[0][1])
    from cryptography.fernet import Fernet

    assert Fernet(team.key.read_bytes()).decrypt(bytes(stored[0][1])).decode() == secret
    status = team.run("status", "--json").stdout + team.run("status").stdout + team.run("members").stdout
    assert secret not in status


def test_a_missing_or_bad_key_file_is_a_config_error(team: TeamWorld) -> None:
    team.member("alice")
    team.key.write_text("not a key")
    proc = team.run("auth", "alice", "files", stdin="pw\n", check=False)
    assert proc.returncode == 78 and "team.key_file" in proc.stderr and "Fernet" in proc.stderr
    assert "not a key" not in proc.stderr
    team.key.unlink()
    proc = team.run("sync", "alice", check=False)
    assert proc.returncode == 78 and "team.key_file" in proc.stderr


def test_status_reports_members_and_queue(team: TeamWorld) -> None:
    _world_with(team, "alice", "carla")
    team.member("bruno")
    team.run("sync", "alice")
    status = team.json("status")
    assert set(status) == {"members", "queue"}
    by = {m["name"]: m for m in status["members"]}
    assert by["alice"]["last_success"] == "2026-06-15T10:00:00Z" and by["alice"]["last_error"] is None
    assert by["bruno"]["last_success"] is None
    assert set(by["alice"]) == {"name", "last_success", "last_error", "next_run"}
    assert status["queue"] == {"waiting": 0, "oldest_waiting_s": None}


def test_remove_leaves_nothing_of_the_member_in_a_dump(team: TeamWorld, pg_admin: str) -> None:
    _world_with(team, "alice", "carla")
    _world_with(team, "bruno", "dora")
    team.run("auth", "alice", "files", stdin="pw\n")
    team.run("sync", "alice")
    team.run("sync", "bruno")
    team.sql("SELECT 1")
    team.run("remove", "alice")
    assert [m["name"] for m in team.json("members")] == ["bruno"]
    dump = subprocess.run([pg._bin("pg_dump"), "--no-owner", team.dsn], capture_output=True, text=True,
                          check=True).stdout
    assert "Dora Only" in dump  # the dump does hold the other member
    for trace in ("Carla Only", "alice", "Coffee of alice", "carla@example.org"):
        assert trace not in dump
    oid = team.sql("SELECT oid FROM pg_database WHERE datname = current_database()")[0][0]
    assert team.sql("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (f"syncd\\_{oid}\\_%",)) == [
        (f"syncd_{oid}_2",)]  # bruno's role only


def test_sync_dry_run_writes_nothing(team: TeamWorld) -> None:
    _world_with(team, "alice", "carla")
    before = team.sql("SELECT last_success FROM syncd_team.members")
    proc = team.run("sync", "alice", "--dry-run")
    assert "Follow-ups syncd would write: 2" in proc.stdout
    assert not team.worlds["alice"].tasks.exists() or not team.worlds["alice"].task_files()
    assert team.json("people", "alice") == [] and team.json("tasks", "alice") == []
    assert team.sql("SELECT last_success FROM syncd_team.members") == before
    team.run("sync", "alice")
    proc = team.run("sync", "alice", "--dry-run")
    assert "Follow-ups syncd would write: 0" in proc.stdout and "files: 0 changes, ok" in proc.stdout


def test_the_key_file_defaults_to_the_systemd_credential(team: TeamWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = team.root / "creds"
    creds.mkdir()
    (creds / "team-key").write_bytes(team.key.read_bytes())
    team.config.write_text(f'[team]\ndatabase = "{team.dsn}"\n')
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    cfg = team_mod.load_config(team.config)
    assert cfg.key_file == creds / "team-key" and cfg.interval == dt.timedelta(minutes=15)
    assert team_mod.read_key(cfg).decrypt(team_mod.read_key(
        TeamConfig(team.config, team.dsn, team.key, cfg.interval)).encrypt(b"x")) == b"x"
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(team_mod.ConfigError, match=r"team\.key_file"):
        team_mod.read_key(team_mod.load_config(team.config))
