"""A ``type = "google"`` account through the real ``syncd`` command, against the emulator.

Each test drives ``python -m syncd`` as a subprocess with ``SYNCD_NOW`` fixing syncd's
clock; the account's authorized-user JSON lives in a real keyring backend
(``keyrings.alt.file.PlaintextKeyring`` under a temporary ``XDG_DATA_HOME``). The
emulator stamps ``updated`` with the real clock, which only the tasks sink's
``updatedMin`` polling looks at, and that uses the real clock too.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.google.emulator import CLIENT_SECRET, GoogleEmulator
from tests.helpers import KeyringCli, event

ME = "alice@example.org"  # the emulator's primary calendar
NOW = "2026-06-15T10:00:00Z"  # 12:00 in Berlin
FRIENDS = "contactGroups/friends"
EXPIRED_PEOPLE_TOKEN = {"error": {
    "code": 400, "status": "FAILED_PRECONDITION", "message": "Sync token is expired.",
    "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "EXPIRED_SYNC_TOKEN",
                 "domain": "people.googleapis.com"}]}}


def z(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def meeting(start: str, *guests: str, summary: str = "Meeting", minutes: int = 60,
            **extra: Any) -> dict[str, Any]:
    """A Google event (UTC ``start``) organized by the user, everyone accepted."""
    begin = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
    return {
        "summary": summary,
        "start": {"dateTime": z(begin)},
        "end": {"dateTime": z(begin + dt.timedelta(minutes=minutes))},
        "organizer": {"email": ME, "self": True},
        "attendees": [{"email": ME, "self": True, "responseStatus": "accepted"}]
        + [{"email": g, "responseStatus": "accepted"} for g in guests],
        **extra,
    }


class GWorld(KeyringCli):
    """A config with the Google account ``work`` (and optionally a vdir account)."""

    def __init__(self, root: Path, emu: GoogleEmulator, vdir: bool = False) -> None:
        self.root, self.emu = root, emu
        self.data = root / "data"
        self.ledger = root / "state" / "ledger.sqlite3"
        self.cal = root / "calendars" / "local"
        self.config = root / "config.toml"
        self.outputs: list[str] = []
        extra = ""
        if vdir:
            self.cal.mkdir(parents=True)
            extra = f'\n[accounts.files]\ntype = "vdir"\ncalendars = ["{root / "calendars"}/*"]\n'
        self.config.write_text(f"""
[syncd]
me = ["{ME}"]
timezone = "Europe/Berlin"
write_to = "work"
ledger = "{self.ledger}"

[accounts.work]
type = "google"
calendars = ["primary"]
contacts = true
tasks = "Follow-ups"
api_root = "{emu.url}"
{extra}
[rules.keep_in_touch]
groups = {{ Friends = "30d" }}
""")
        emu.add_group(FRIENDS, "Friends")
        self.keyring().set_password("syncd", "work", emu.authorized_user_json())

    def secret(self) -> dict[str, Any]:
        value = self.keyring().get_password("syncd", "work")
        assert value
        return dict(json.loads(value))

    def live_tasks(self) -> list[dict[str, Any]]:
        return [t for t in self.emu.all_tasks() if not t.get("deleted")]

    def contact(self, name: str, email: str, friends: bool = True) -> dict[str, Any]:
        groups = [{"contactGroupMembership": {"contactGroupResourceName": "contactGroups/myContacts"}}]
        if friends:
            groups.append({"contactGroupMembership": {"contactGroupResourceName": FRIENDS}})
        return self.emu.add_person({"names": [{"displayName": name}], "emailAddresses": [{"value": email}],
                                    "memberships": groups})

    def meet(self, start: str, *guests: str, **extra: Any) -> dict[str, Any]:
        return self.emu.add_event(ME, meeting(start, *guests, **extra))



@pytest.fixture
def world(tmp_path: Path, google_emulator: GoogleEmulator) -> Iterator[GWorld]:
    yield GWorld(tmp_path, google_emulator)


def _bob_due(world: GWorld) -> dict[str, Any]:
    """Bob Stone, a Friend, met 60 days before NOW; backfilled."""
    world.contact("Bob Stone", "bob@example.com")
    world.meet("2026-04-16T10:00:00Z", "bob@example.com", summary="Lunch at Mesa")
    world.run("--backfill")
    [task] = world.live_tasks()
    return task


# -- 1. backfill -------------------------------------------------------------------------

def test_backfill_catch_up_written_once_to_google_tasks(world: GWorld) -> None:
    _bob_due(world)
    bob = world.people()["Bob Stone"]
    assert (bob["interactions"], bob["cadence_days"], bob["due"]) == (1, 30, "2026-05-16")
    assert bob["groups"] == ["Friends"] and bob["in_address_book"] and bob["emails"] == ["bob@example.com"]
    assert bob["last_met"] == "2026-04-16T10:00:00Z"
    [t] = json.loads(world.run("tasks", "--json").stdout)
    assert (t["rule"], t["state"], t["account"], t["due"]) == ("keep_in_touch", "open", "work", "2026-06-15")
    assert t["reason"] == "last met 16 Apr 2026 (Lunch at Mesa); Friends every 30 days"
    [g] = world.emu.all_tasks("Follow-ups")
    assert g["title"].startswith("Catch up with Bob Stone") and g["status"] == "needsAction"
    assert g["notes"].startswith(t["reason"]) and f"X-SYNCD-UID: {t['uid']}" in g["notes"]
    assert g["due"] == "2026-06-15T00:00:00.000Z"
    world.run("sync", now="2026-06-16T10:00:00Z")  # a new local day: the rules run again
    assert len(world.emu.all_tasks()) == 1 and len(world.tasks_json()) == 1


# -- 2. SPEC §4 as Google events ---------------------------------------------------------

def test_inference_rules_on_google_events(world: GWorld) -> None:
    emu = world.emu
    for name in ("Dana Decline", "Erin Room", "Fay Weekly", "Gus Crowd"):
        world.contact(name, name.split()[0].lower() + "@example.com", friends=False)
    declined = meeting("2026-05-10T09:00:00Z", "dana@example.com")
    declined["attendees"][0]["responseStatus"] = "declined"
    emu.add_event(ME, declined)
    with_room = meeting("2026-05-11T09:00:00Z", "erin@example.com")
    with_room["attendees"].append({"email": "room@resource.calendar.google.com", "displayName": "Room 1",
                                   "resource": True, "responseStatus": "accepted"})
    emu.add_event(ME, with_room)
    weekly = world.meet("2026-05-04T10:00:00Z", "fay@example.com", summary="1:1",
                        recurrence=["RRULE:FREQ=WEEKLY;COUNT=4"])
    emu.cancel_instance(ME, weekly["id"], {"dateTime": "2026-05-11T10:00:00Z"})
    crowd = [f"c{i}@example.net" for i in range(10)]
    world.meet("2026-05-12T09:00:00Z", "gus@example.com", *crowd, summary="All hands")
    hana = meeting("2026-06-14T09:00:00Z")
    hana["attendees"].append({"email": "hana@startup.example", "displayName": "Hana Ito",
                              "responseStatus": "accepted"})
    emu.add_event(ME, hana)
    world.run("--backfill")
    people = world.people()
    assert people["Dana Decline"]["interactions"] == 0
    assert people["Erin Room"]["interactions"] == 1
    assert not any("room@resource" in e for p in people.values() for e in p["emails"])
    assert "Room 1" not in people
    fay = people["Fay Weekly"]
    assert fay["interactions"] == 3 and fay["last_met"] == "2026-05-25T10:00:00Z"
    assert people["Gus Crowd"]["interactions"] == 0
    assert not any(e.endswith("@example.net") for p in people.values() for e in p["emails"])
    assert ME not in {e for p in people.values() for e in p["emails"]}
    assert people["Hana Ito"]["in_address_book"] is False and people["Hana Ito"]["interactions"] == 1
    [t] = world.tasks_json()
    assert (t["rule"], t["person"], t["due"]) == ("first_meeting", "Hana Ito", "2026-06-15")
    assert [g["title"] for g in world.live_tasks()] == ["Follow up with Hana Ito"]


# -- 3. one meeting through Google and a vdir calendar -------------------------------------

def test_same_meeting_in_google_and_vdir_counts_once(tmp_path: Path, google_emulator: GoogleEmulator) -> None:
    world = GWorld(tmp_path, google_emulator, vdir=True)
    world.contact("Bob Stone", "bob@example.com")
    world.meet("2026-06-10T10:00:00Z", "bob@example.com", summary="Lunch", iCalUID="shared-1@example.org")
    (world.cal / "shared.ics").write_text(
        event("shared-1@example.org", "20260610T100000Z", "Lunch", ["bob@example.com"]), newline="")
    (world.cal / "other.ics").write_text(
        event("other-1@example.org", "20260611T100000Z", "Coffee", ["bob@example.com"]), newline="")
    out = world.run("--backfill")
    assert "work: " in out.stdout and "files: 2 changes, ok" in out.stdout
    bob = world.people()["Bob Stone"]
    assert bob["interactions"] == 2 and bob["last_met"] == "2026-06-11T10:00:00Z"


# -- 4. lifecycle through Google Tasks -----------------------------------------------------

def test_completed_in_google_tasks_is_done_and_moves_due(world: GWorld) -> None:
    task = _bob_due(world)
    world.emu.complete_task(task["id"], dt.datetime(2026, 6, 16, 8, tzinfo=dt.UTC))
    later = "2026-06-16T12:00:00Z"
    world.run("sync", now=later)
    [t] = world.tasks_json(now=later)
    assert t["state"] == "done"
    assert world.people(now=later)["Bob Stone"]["due"] == "2026-07-16"
    world.run("sync", now="2026-06-17T12:00:00Z")
    assert len(world.emu.all_tasks()) == 1 and len(world.tasks_json()) == 1


def test_deleted_in_google_tasks_is_dismissed_and_not_recreated(world: GWorld) -> None:
    task = _bob_due(world)
    world.emu.delete_task(task["id"])
    world.run("sync", now="2026-06-16T10:00:00Z")
    world.run("sync", now="2026-06-17T10:00:00Z")
    assert [t["state"] for t in world.tasks_json()] == ["dismissed"]
    assert world.live_tasks() == [] and len(world.emu.all_tasks()) == 1


def test_met_again_resolves_and_deletes_the_google_task(world: GWorld) -> None:
    _bob_due(world)
    world.meet("2026-06-16T10:00:00Z", "bob@example.com", summary="Lunch again")
    later = "2026-06-17T10:00:00Z"
    out = world.run("sync", now=later)
    assert "resolved" in out.stdout
    [t] = world.tasks_json(now=later)
    assert t["state"] == "resolved"
    assert world.live_tasks() == [] and world.emu.all_tasks()[0]["deleted"] is True
    assert world.people(now=later)["Bob Stone"]["due"] == "2026-07-16"


# -- 5. faults -------------------------------------------------------------------------------

def test_5xx_and_429_are_retried_by_the_command(world: GWorld) -> None:
    _bob_due(world)
    emu = world.emu
    emu.fail(r"/events$", 500, times=1)
    world.meet("2026-06-14T10:00:00Z", "ana@example.com", summary="Intro")
    world.run("sync")
    assert [r.status for r in emu.requests if r.path.endswith("/events")][-2:] == [500, 200]
    assert world.people()["ana@example.com"]["interactions"] == 1
    emu.fail(r"/connections$", 429, times=1, headers={"Retry-After": "1"})
    started = time.monotonic()
    out = world.run("sync")
    assert time.monotonic() - started >= 1.0
    assert [r.status for r in emu.requests if r.path.endswith("/connections")][-2:] == [429, 200]
    assert "work: 0 changes, ok" in out.stdout


def test_expired_sync_tokens_relist_without_loss_or_duplicates(world: GWorld) -> None:
    emu = world.emu
    cy = world.contact("Cy Old", "cy@example.com", friends=False)
    gone = world.meet("2026-05-01T10:00:00Z", "cy@example.com")
    world.meet("2026-05-02T10:00:00Z", "cy@example.com")
    _bob_due(world)
    people, [task] = world.people(), world.tasks_json()
    assert people["Cy Old"]["interactions"] == 2
    # Calendar 410 and People EXPIRED_SYNC_TOKEN at once; a change hidden behind each
    emu.expire_sync_tokens()
    emu.cancel_event(ME, gone["id"])
    world.run("sync")
    statuses = [r.status for r in emu.requests if r.path.endswith("/events")]
    assert statuses[-2:] == [410, 200]
    assert [r.status for r in emu.requests if r.path.endswith("/connections")][-2:] == [400, 200]
    now = world.people()
    assert now["Cy Old"]["interactions"] == 1
    assert {k: v for k, v in now.items() if k != "Cy Old"} == {k: v for k, v in people.items() if k != "Cy Old"}
    assert len(emu.all_tasks()) == 1
    # People alone answers EXPIRED_SYNC_TOKEN; the contact deleted meanwhile goes away
    emu.fail(r"/connections$", 400, times=1, body=EXPIRED_PEOPLE_TOKEN)
    emu.delete_person(cy["resourceName"])
    world.run("sync", now="2026-06-16T10:00:00Z")
    calls = [r for r in emu.requests if r.path.endswith("/connections")]
    assert [r.status for r in calls[-2:]] == [400, 200] and "syncToken" not in calls[-1].query
    after = world.people(now="2026-06-16T10:00:00Z")
    assert after["Bob Stone"] == people["Bob Stone"]
    cy_now = next(p for p in after.values() if p["emails"] == ["cy@example.com"])
    assert cy_now["in_address_book"] is False and cy_now["interactions"] == 1
    assert world.tasks_json() == [task] and len(emu.all_tasks()) == 1


def test_token_written_back_revoked_grant_and_no_secret_leaks(world: GWorld) -> None:
    emu = world.emu
    initial = world.secret()
    assert initial["token"] is None
    _bob_due(world)
    first = world.secret()
    assert first["token"] in emu.access_tokens and first["token_uri"] == emu.token_uri
    assert first["refresh_token"] == initial["refresh_token"]
    emu.expire_access_tokens()
    world.run("-vv", "sync")  # library log lines too
    second = world.secret()
    assert second["token"] != first["token"] and second["token"] in emu.access_tokens
    tokens = {first["token"], second["token"]} | set(emu.access_tokens)
    emu.revoke()
    proc = world.run("sync", check=False)
    assert proc.returncode == 1  # refused credentials: a retry cannot fix it, so not 75
    assert "syncd auth work" in proc.stderr and "Traceback" not in proc.stdout + proc.stderr
    acc = world.status()["accounts"][0]
    assert "syncd auth work" in acc["last_error"] and acc["last_error_at"] == NOW
    world.run("check", check=False)
    secrets = {initial["refresh_token"], CLIENT_SECRET, *tokens}
    ledger = world.ledger_bytes()
    for secret in secrets:
        assert secret.encode() not in ledger
        for text in world.outputs:
            assert secret not in text


# -- 6. no-change pass ----------------------------------------------------------------------

def test_no_change_pass_sends_one_request_per_collection(world: GWorld) -> None:
    _bob_due(world)
    tasklist = world.emu.tasklist_by_title("Follow-ups")
    assert tasklist is not None
    for now in (NOW, "2026-06-16T10:00:00Z"):  # the same day, and a new day (the rules run again)
        mark, grants = len(world.emu.api_requests()), len(world.emu.token_grants)
        world.run("sync", now=now)
        extra = [(r.method, r.path) for r in world.emu.api_requests()[mark:]]
        assert sorted(extra) == [("GET", f"/calendar/v3/calendars/{ME}/events"),
                                 ("GET", f"/tasks/v1/lists/{tasklist['id']}/tasks"),
                                 ("GET", "/v1/people/me/connections")], extra
        assert len(world.emu.token_grants) == grants  # the stored token was still good


# -- 7. check ---------------------------------------------------------------------------------

def test_check_prints_the_calendars(world: GWorld) -> None:
    world.contact("Bob Stone", "bob@example.com")
    out = world.run("check")
    assert "work (google): ok" in out.stdout
    assert f"calendar 'Alice' ({ME})" in out.stdout and "contacts reachable (1 people)" in out.stdout
    assert "task list 'Follow-ups'" in out.stdout


def test_dry_run_writes_nothing_anywhere(world: GWorld) -> None:
    world.contact("Bob Stone", "bob@example.com")
    world.meet("2026-04-16T10:00:00Z", "bob@example.com", summary="Lunch at Mesa")
    out = world.run("--backfill", "--dry-run").stdout
    assert "Catch up with Bob Stone" in out
    writes = [r for r in world.emu.api_requests() if r.method not in ("GET",)]
    assert writes == [] and world.emu.tasklist_by_title("Follow-ups") is None
    assert not world.ledger.exists()
    world.run("--backfill")
    [task] = world.live_tasks()
    world.emu.delete_task(task["id"])  # the user deletes it: a dry run says so, and keeps it to itself
    before, seen = world.ledger_bytes(), len(world.emu.requests)
    world.run("sync", "--dry-run", now="2026-06-16T10:00:00Z")
    assert [r for r in world.emu.requests[seen:] if r.method != "GET" and not r.path.startswith("/oauth2/")] == []
    assert world.ledger_bytes() == before
    assert [t["state"] for t in world.tasks_json()] == ["open"]
