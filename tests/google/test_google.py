"""The google connector against the emulator, through the real client libraries."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import icalendar
import pytest
import vobject

from syncd.errors import AuthError, SecretUnavailable, SyncdError, TransientError
from syncd_connectors.base import ChangeBatch, ChangeStream, TaskSpec
from syncd_connectors.google import GoogleConnector, auth
from syncd_connectors.google.tasks import PENDING, event_id
from tests.google.emulator import GoogleEmulator

EMAIL = "alice@example.org"
SINCE = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def meeting(n: int, **extra: Any) -> dict[str, Any]:
    start = dt.datetime(2024, 1, 1, 9, tzinfo=dt.UTC) + dt.timedelta(hours=n)
    return {
        "summary": f"Meeting {n}",
        "start": {"dateTime": start.isoformat().replace("+00:00", "Z")},
        "end": {"dateTime": (start + dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z")},
        "organizer": {"email": EMAIL, "self": True},
        "attendees": [{"email": EMAIL, "self": True, "responseStatus": "accepted"},
                      {"email": f"p{n}@example.com", "displayName": f"Person {n}",
                       "responseStatus": "accepted"}],
        **extra,
    }


class Drained(list[ChangeBatch]):
    """The batches of one listing, and the cursor it returned."""

    cursor: str | None = None


def drain(conn: GoogleConnector, coll: Any, cursor: str | None = None,
          known: dict[str, str] | None = None) -> Drained:
    stream = ChangeStream(conn.changes(coll, cursor, known or {}, SINCE))
    out = Drained(stream)
    assert stream.ended
    out.cursor = stream.cursor
    return out


def vevents(text: str) -> list[Any]:
    return list(icalendar.Calendar.from_ical(text).walk("VEVENT"))


def task(n: int = 1, due: dt.date = dt.date(2026, 8, 4)) -> TaskSpec:
    return TaskSpec(uid=f"syncd-{n:04d}@syncd", rule="keep_in_touch", key=f"kit:bob:{n}",
                    summary=f"Catch up with Bob {n}", description="last met 3 Aug 2026", due=due)


# -- calendars ------------------------------------------------------------------------

def test_backfill_pages_and_cursor(google_emulator: GoogleEmulator, make_connector: Any) -> None:
    for n in range(5):
        google_emulator.add_event(EMAIL, meeting(n))
    conn = make_connector()
    import syncd_connectors.google.calendar as cal
    old, cal.PAGE_SIZE = cal.PAGE_SIZE, 2
    try:
        coll = conn.collections()[0]
        batches = drain(conn, coll)
    finally:
        cal.PAGE_SIZE = old
    assert coll.id == EMAIL and coll.name == "Alice"
    assert [len(b.upserts) for b in batches] == [2, 2, 1]
    assert batches.cursor  # the last page's nextSyncToken
    lists = [r for r in google_emulator.requests if r.path.endswith("/events")]
    assert lists[0].query["singleEvents"] == "false" and lists[0].query["showDeleted"] == "true"
    assert "timeMin" in lists[0].query and "syncToken" not in lists[0].query
    [ev] = vevents(batches[0].upserts[0].data)
    assert ev["summary"] == "Meeting 0" and ev["status"] == "CONFIRMED"
    assert ev.decoded("dtstart") == dt.datetime(2024, 1, 1, 9, tzinfo=dt.UTC)
    att = next(a for a in ev.get("attendee") if "p0@" in a)
    assert att.params["PARTSTAT"] == "ACCEPTED" and att.params["CN"] == "Person 0"
    assert str(ev["organizer"]) == "mailto:" + EMAIL
    assert ev.get("uid") == batches[0].upserts[0].href + "@google.com"
    assert EMAIL in conn.self_addresses()


def test_event_mapping(google_emulator: GoogleEmulator, make_connector: Any) -> None:
    google_emulator.add_event(EMAIL, {
        "summary": "All day", "start": {"date": "2024-05-01"}, "end": {"date": "2024-05-02"},
        "status": "tentative"})
    google_emulator.add_event(EMAIL, {
        "summary": "Weekly", "start": {"dateTime": "2024-03-04T10:00:00+01:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2024-03-04T11:00:00+01:00", "timeZone": "Europe/Berlin"},
        "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=10", "EXDATE;TZID=Europe/Berlin:20240311T100000"],
        "attendees": [{"email": "room@resource.calendar.google.com", "resource": True,
                       "responseStatus": "accepted"},
                      {"email": "Me@Other.org", "self": True, "responseStatus": "declined"},
                      {"email": "x@example.com", "responseStatus": "needsAction"},
                      {"email": "t@example.com", "responseStatus": "tentative"}]})
    conn = make_connector()
    coll = conn.collections()[0]
    [batch] = drain(conn, coll)
    day, weekly = (vevents(o.data)[0] for o in batch.upserts)
    assert day.decoded("dtstart") == dt.date(2024, 5, 1) and day["status"] == "TENTATIVE"
    assert day["dtstart"].params.get("VALUE") == "DATE" or "VALUE=DATE" in day.to_ical().decode()
    assert str(weekly.decoded("dtstart").tzinfo) == "Europe/Berlin"
    text = weekly.to_ical().decode()
    assert "RRULE:FREQ=WEEKLY;COUNT=10" in text and "EXDATE;TZID=Europe/Berlin:20240311T100000" in text
    params = {str(a).removeprefix("mailto:"): a.params for a in weekly.get("attendee")}
    assert params["room@resource.calendar.google.com"]["CUTYPE"] == "RESOURCE"
    assert params["Me@Other.org"]["PARTSTAT"] == "DECLINED"
    assert params["x@example.com"]["PARTSTAT"] == "NEEDS-ACTION"
    assert params["t@example.com"]["PARTSTAT"] == "TENTATIVE"
    assert "LAST-MODIFIED" in text
    assert conn.self_addresses() == {EMAIL, "me@other.org"}
    assert conn.ctx.state("self_emails") == ["me@other.org"]


def test_incremental_and_cancellations(google_emulator: GoogleEmulator, make_connector: Any) -> None:
    single = google_emulator.add_event(EMAIL, meeting(1))
    master = google_emulator.add_event(EMAIL, meeting(
        2, recurrence=["RRULE:FREQ=DAILY;COUNT=5"]))
    conn = make_connector()
    coll = conn.collections()[0]
    cursor = drain(conn, coll).cursor
    google_emulator.update_event(EMAIL, single["id"], summary="Renamed")
    google_emulator.cancel_instance(EMAIL, master["id"], {"dateTime": "2024-01-02T11:00:00Z"})
    out = drain(conn, coll, cursor)
    [batch] = out
    assert out.cursor and out.cursor != cursor and not batch.deletes
    by_href = {o.href: vevents(o.data)[0] for o in batch.upserts}
    assert by_href[single["id"]]["summary"] == "Renamed"
    override = by_href[master["id"] + "_20240102T110000Z"]
    assert override["status"] == "CANCELLED" and override["uid"] == master["iCalUID"]
    assert override.decoded("recurrence-id") == dt.datetime(2024, 1, 2, 11, tzinfo=dt.UTC)
    assert override.decoded("dtstart") == override.decoded("recurrence-id")
    assert google_emulator.requests[-2].query.get("syncToken") == cursor
    google_emulator.cancel_event(EMAIL, single["id"])
    [batch] = drain(conn, coll, out.cursor)
    assert batch.deletes == [single["id"]] and not batch.upserts


def test_410_full_relist(google_emulator: GoogleEmulator, make_connector: Any) -> None:
    google_emulator.add_event(EMAIL, meeting(1))
    b = google_emulator.add_event(EMAIL, meeting(2))
    c = google_emulator.add_event(EMAIL, meeting(3))
    conn = make_connector()
    coll = conn.collections()[0]
    first = drain(conn, coll)
    known = {o.href: o.etag for o in first[-1].upserts}
    google_emulator.update_event(EMAIL, b["id"], summary="changed")
    del google_emulator.calendars[EMAIL]["events"][c["id"]]  # gone for good: the re-list omits it
    google_emulator.expire_sync_tokens()
    out = drain(conn, coll, first.cursor, known)
    assert out.cursor and out.cursor != first.cursor
    # only what changed comes back; what the whole re-list no longer holds is named deleted
    assert [o.href for b in out for o in b.upserts] == [b["id"]]
    assert [h for b in out for h in b.deletes] == [c["id"]]
    events = [r for r in google_emulator.requests if r.path.endswith("/events")]
    assert events[-2].status == 410 and "timeMin" not in events[-1].query
    assert "syncToken" not in events[-1].query


def test_calendar_by_summary_and_unknown(google_emulator: GoogleEmulator, make_connector: Any) -> None:
    google_emulator.add_calendar("team@group.calendar.google.com", "Team")
    conn = make_connector(calendars=["Team", "primary"], contacts=False)
    assert [c.id for c in conn.collections()] == ["team@group.calendar.google.com", EMAIL]
    with pytest.raises(SyncdError, match="Nope"):
        make_connector(calendars=["Nope"]).collections()


def test_vanished_calendar_clears_cache(google_emulator: GoogleEmulator, make_connector: Any,
                                        ctx: Any) -> None:
    google_emulator.add_calendar("team@group.calendar.google.com", "Team")
    conn = make_connector(calendars=["Team"])
    coll = conn.collections()[0]
    del google_emulator.calendars["team@group.calendar.google.com"]
    with pytest.raises(SyncdError, match="HTTP 404"):
        drain(conn, coll)
    assert ctx.state("calendars") is None


# -- contacts -------------------------------------------------------------------------

def seed_people(emu: GoogleEmulator, n: int) -> list[dict[str, Any]]:
    emu.add_group("contactGroups/abc", "Friends")
    emu.add_group("contactGroups/def", "Family")
    return [emu.add_person({
        "names": [{"displayName": f"Bob Stone {i}", "givenName": "Bob", "familyName": f"Stone {i}"}],
        "nicknames": [{"value": f"Bobby{i}"}],
        "emailAddresses": [{"value": f"bob{i}@example.com"}, {"value": f"b{i}@work.com"}],
        "birthdays": [{"date": {"month": 2, "day": 29}}] if i % 2 else [{"date": {"year": 1980, "month": 7, "day": 1}}],
        "events": [{"type": "anniversary", "date": {"year": 2010, "month": 6, "day": 5}}],
        "memberships": [{"contactGroupMembership": {"contactGroupResourceName": "contactGroups/myContacts"}},
                        {"contactGroupMembership": {"contactGroupResourceName": "contactGroups/starred"}},
                        {"contactGroupMembership": {"contactGroupResourceName": "contactGroups/abc"}}],
    }) for i in range(n)]


def test_contacts_vcard_and_groups(google_emulator: GoogleEmulator, make_connector: Any) -> None:
    seed_people(google_emulator, 2)
    google_emulator.add_person({"emailAddresses": [{"value": "noname@example.com"}]})
    conn = make_connector()
    coll = conn.collections()[-1]
    assert (coll.id, coll.kind) == ("people/me/connections", "contacts")
    out = drain(conn, coll)
    [batch] = out
    assert out.cursor and len(batch.upserts) == 3
    card = vobject.readOne(batch.upserts[0].data)
    assert card.fn.value == "Bob Stone 0" and card.uid.value == batch.upserts[0].href
    assert card.n.value.family == "Stone 0" and card.nickname.value == "Bobby0"
    assert [e.value for e in card.email_list] == ["bob0@example.com", "b0@work.com"]
    assert card.bday.value == "1980-07-01" and card.anniversary.value == "2010-06-05"
    assert card.categories.value == ["Friends"]
    assert vobject.readOne(batch.upserts[1].data).bday.value == "--0229"
    assert vobject.readOne(batch.upserts[2].data).fn.value == "noname@example.com"
    req = next(r for r in google_emulator.requests if r.path.endswith("/connections"))
    assert req.query["personFields"] == "names,nicknames,emailAddresses,birthdays,events,memberships,metadata"
    assert req.query["requestSyncToken"] == "true" and req.query["pageSize"] == "1000"


def test_contacts_paging_sync_and_expiry(google_emulator: GoogleEmulator, make_connector: Any) -> None:
    people = seed_people(google_emulator, 1005)
    conn = make_connector(calendars=["primary"])
    coll = conn.collections()[-1]
    batches = drain(conn, coll)
    assert [len(b.upserts) for b in batches] == [1000, 5] and batches.cursor
    google_emulator.delete_person(people[3]["resourceName"])
    google_emulator.update_person(people[4]["resourceName"], names=[{"displayName": "New Name"}])
    incremental = drain(conn, coll, batches.cursor)
    [batch] = incremental
    assert batch.deletes == [people[3]["resourceName"]]
    assert [vobject.readOne(o.data).fn.value for o in batch.upserts] == ["New Name"]
    google_emulator.expire_sync_tokens()
    groups_before = google_emulator.count("GET", "contactGroups")
    conn = make_connector(calendars=["primary"])  # a new pass
    out = drain(conn, coll, incremental.cursor)
    assert out.cursor and sum(len(b.upserts) for b in out) == 1004
    assert [r.status for r in google_emulator.requests if r.path.endswith("/connections")][-3] == 400
    assert google_emulator.count("GET", "contactGroups") == groups_before + 1


# -- no-change pass, retries, auth -------------------------------------------------------

def test_no_change_pass_request_count(google_emulator: GoogleEmulator, make_connector: Any, ctx: Any) -> None:
    google_emulator.add_calendar("team@group.calendar.google.com", "Team")
    google_emulator.add_event(EMAIL, meeting(1))
    seed_people(google_emulator, 3)
    options = {"calendars": ["primary", "Team"]}

    def one_pass(cursors: dict[str, str | None]) -> None:
        conn = make_connector(**options)
        for coll in conn.collections():
            cursors[coll.id] = drain(conn, coll, cursors.get(coll.id)).cursor
        conn.list_tasks()

    cursors: dict[str, str | None] = {}
    one_pass(cursors)
    conn = make_connector(**options)
    conn.put_task(task(1))
    mark = len(google_emulator.api_requests())
    one_pass(cursors)
    extra = google_emulator.api_requests()[mark:]
    assert len(extra) == 4, [(r.method, r.path) for r in extra]  # 2 calendars + contacts + tasks
    assert not any("calendarList" in r.path or "contactGroups" in r.path for r in extra)


def test_500_and_429_are_retried(google_emulator: GoogleEmulator, make_connector: Any) -> None:
    google_emulator.add_event(EMAIL, meeting(1))
    conn = make_connector()
    google_emulator.fail(r"/events$", 500, times=2)
    google_emulator.fail(r"/calendarList", 429, times=1, headers={"Retry-After": "7"})
    google_emulator.fail(r"/calendarList", 403, times=1, reason="userRateLimitExceeded")
    coll = conn.collections()[0]
    [batch] = drain(conn, coll)
    assert len(batch.upserts) == 1
    assert conn.sleeps[0] == 7.0 and len(conn.sleeps) == 4
    assert google_emulator.count("GET", r"/events$") == 3


def test_connection_broken_off_mid_body_is_retried(google_emulator: GoogleEmulator,
                                                   make_connector: Any) -> None:
    google_emulator.add_event(EMAIL, meeting(1))
    conn = make_connector()
    coll = conn.collections()[0]
    google_emulator.fail(r"/events$", 200, times=1, cut=True)  # half the body, then the reset
    [batch] = drain(conn, coll)
    assert len(batch.upserts) == 1
    assert google_emulator.count("GET", r"/events$") == 2 and len(conn.sleeps) == 1


def test_long_retry_after_is_not_waited_for(google_emulator: GoogleEmulator, make_connector: Any) -> None:
    conn = make_connector()
    google_emulator.fail(r"/calendarList", 429, times=1, headers={"Retry-After": "3600"})
    with pytest.raises(TransientError, match="backs off"):
        conn.collections()
    assert conn.sleeps == [] and google_emulator.count("GET", "calendarList") == 1
    assert conn.collections()  # the next pass goes on


def test_persistent_5xx_is_transient(google_emulator: GoogleEmulator, make_connector: Any) -> None:
    conn = make_connector()
    google_emulator.fail(r"/calendarList", 503, times=99)
    with pytest.raises(TransientError):
        conn.collections()
    assert google_emulator.count("GET", "calendarList") == conn.client.attempts


def test_invalid_grant_no_retry(google_emulator: GoogleEmulator, make_connector: Any) -> None:
    google_emulator.revoke()
    conn = make_connector()
    with pytest.raises(AuthError, match="revoked or expired"):
        conn.collections()
    assert google_emulator.token_grants == ["refresh_token"]
    assert google_emulator.api_requests() == []


def test_refresh_written_back_and_honours_token_uri(google_emulator: GoogleEmulator, make_connector: Any,
                                                    secrets_store: Any, only_loopback: set[str]) -> None:
    conn = make_connector()
    conn.collections()
    stored = json.loads(secrets_store.data["work"])
    assert secrets_store.writes == 1 and stored["token"] in google_emulator.access_tokens
    assert stored["token_uri"] == google_emulator.token_uri and stored["refresh_token"]
    # A new connector reuses the stored, unexpired token: no refresh.
    make_connector(calendars=["primary"]).check()
    assert google_emulator.token_grants == ["refresh_token"] and secrets_store.writes == 1
    # An access token revoked server-side: 401 -> refresh -> retry, written back.
    google_emulator.expire_access_tokens()
    conn2 = make_connector()
    conn2.check()
    assert google_emulator.token_grants == ["refresh_token"] * 2 and secrets_store.writes == 2
    assert only_loopback <= {"127.0.0.1"}
    assert {r.host for r in google_emulator.requests} == {google_emulator.url[7:-1]}


def test_missing_secret_propagates(google_emulator: GoogleEmulator, ctx: Any,
                                   secrets_store: Any) -> None:
    del secrets_store.data["work"]
    with pytest.raises(SecretUnavailable):
        GoogleConnector("work", {"api_root": google_emulator.url}, ctx).collections()
    assert google_emulator.requests == []


# -- tasks ------------------------------------------------------------------------------

def test_tasks_insert_list_complete_delete(google_emulator: GoogleEmulator, make_connector: Any) -> None:
    conn = make_connector()
    assert conn.list_tasks() == {}
    # reading creates nothing (a dry run reads too); the first write creates the list
    assert google_emulator.tasklist_by_title("Follow-ups") is None
    conn.put_task(task(1))
    tl = google_emulator.tasklist_by_title("Follow-ups")
    assert tl is not None
    conn.put_task(task(1))  # no duplicate
    conn.put_task(task(2))
    items = google_emulator.all_tasks()
    assert len(items) == 2
    assert items[0]["title"] == "Catch up with Bob 1" and items[0]["due"] == "2026-08-04T00:00:00.000Z"
    assert items[0]["notes"].startswith("last met 3 Aug 2026\n\n")
    assert "X-SYNCD-RULE: keep_in_touch\nX-SYNCD-KEY: kit:bob:1\nX-SYNCD-UID: syncd-0001@syncd" in items[0]["notes"]
    assert set(conn.list_tasks()) == {task(1).uid, task(2).uid}
    done_at = dt.datetime(2026, 8, 5, 12, tzinfo=dt.UTC)
    google_emulator.complete_task(items[0]["id"], done_at, hidden=True)
    google_emulator.delete_task(items[1]["id"])
    before = len(google_emulator.api_requests())
    got = conn.list_tasks()
    assert len(google_emulator.api_requests()) == before + 1
    assert list(got) == [task(1).uid]
    assert got[task(1).uid].completed and got[task(1).uid].completed_at == done_at
    last = google_emulator.api_requests()[-1].query
    assert last["showDeleted"] == last["showHidden"] == last["showCompleted"] == "true"
    assert "updatedMin" in last
    conn.cancel_task(task(1).uid)
    assert conn.list_tasks() == {}
    assert google_emulator.all_tasks()[0]["deleted"]


def test_tasks_no_duplicate_after_crash(google_emulator: GoogleEmulator, make_connector: Any, ctx: Any) -> None:
    conn = make_connector()
    conn.list_tasks()
    snapshot = json.loads(json.dumps(ctx.state_dict))
    conn.put_task(task(7))
    assert len(google_emulator.all_tasks()) == 1
    # The crash: the intent was recorded and the insert happened; the cache was not saved.
    pending = {task(7).uid: dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")}
    ctx.state_dict.clear()
    ctx.state_dict.update(snapshot, **{PENDING: pending})
    again = make_connector()
    again.put_task(task(7))
    assert len(google_emulator.all_tasks()) == 1
    assert ctx.state(PENDING) == {} and task(7).uid in ctx.state("tasks")


def test_tasks_as_event(google_emulator: GoogleEmulator, make_connector: Any) -> None:
    conn = make_connector(tasks_as="event")
    conn.put_task(task(3))
    conn.put_task(task(3))  # 409: already there
    ev = google_emulator.calendars[EMAIL]["events"][event_id(task(3).uid)]
    assert ev["start"] == {"date": "2026-08-04"} and ev["end"] == {"date": "2026-08-05"}
    assert ev["extendedProperties"]["private"]["syncdUid"] == task(3).uid
    assert set(conn.list_tasks()) == {task(3).uid}
    conn.cancel_task(task(3).uid)
    assert ev["status"] == "cancelled" and conn.list_tasks() == {}


# -- setup ----------------------------------------------------------------------------

def test_authorize_paste_path(google_emulator: GoogleEmulator, tmp_path: Any, ctx: Any,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)
    secrets_file = tmp_path / "client.json"
    secrets_file.write_text(json.dumps(google_emulator.client_secrets()))
    shown: list[str] = []

    def paste(_prompt: str) -> str:
        url = next(line.strip() for text in shown for line in text.splitlines() if "oauth2/auth" in line)
        assert "code_challenge=" in url and "prompt=consent" in url and "access_type=offline" in url
        assert "calendar.readonly" in url and "auth%2Ftasks" in url
        return google_emulator.consent(url)

    creds = auth.run_flow(secrets_file, auth.scopes_for("todo", True), browser=False,
                          prompt=paste, out=shown.append)
    stored = json.loads(auth.credentials_json(creds))
    assert stored["refresh_token"] in google_emulator.refresh_tokens
    assert stored["token_uri"] == google_emulator.token_uri
    assert google_emulator.token_grants == ["authorization_code"]


def test_authorize_needs_client_secrets(google_emulator: GoogleEmulator, make_connector: Any) -> None:
    with pytest.raises(SyncdError, match="client_secrets"):
        make_connector().authorize()


def test_check_lines(google_emulator: GoogleEmulator, make_connector: Any) -> None:
    seed_people(google_emulator, 2)
    lines = make_connector().check()
    assert lines[0].startswith("calendar 'Alice'") and "contacts reachable (2 people)" in lines[1]
    assert "Follow-ups" in lines[2]


def test_scopes_least_privilege() -> None:
    assert auth.scopes_for("todo", True) == [auth.CALENDAR_READ, auth.CONTACTS_READ, auth.TASKS]
    assert auth.scopes_for("event", False) == [auth.CALENDAR_WRITE]
