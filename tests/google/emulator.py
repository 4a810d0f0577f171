"""A small Google API emulator for tests: Calendar v3, People v1, Tasks v1 and OAuth.

It speaks the JSON of Google's documented REST APIs at the paths the bundled
discovery documents name (``calendar/v3/...``, ``v1/people/me/connections``,
``tasks/v1/...``) and an OAuth token endpoint (``oauth2/token``) plus an
authorization endpoint (``oauth2/auth``) for the installed-app flow. Errors use
Google's body ``{"error": {"code", "message", "errors": [{"reason"}], "status"}}``.

Test helpers: state mutators (``add_event``, ``update_event``, ``cancel_event``,
``add_person``, ``delete_person``, ``complete_task``, ``delete_task``...),
``expire_sync_tokens()``, ``revoke()``, ``expire_access_tokens()``, fault injection
(``fail(path, status, times=...)``) and a request log (``requests``).

Usage::

    with GoogleEmulator() as emu:
        emu.add_calendar("alice@example.org", "Alice", primary=True)
        secret = emu.authorized_user_json()
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import json
import re
import secrets
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CLIENT_ID = "syncd-test.apps.googleusercontent.com"
CLIENT_SECRET = "emulator-secret"


@dataclass
class Logged:
    """One request as the emulator saw it."""

    method: str
    path: str  # unquoted, without the query
    query: dict[str, str]
    host: str
    status: int = 0


@dataclass
class Fault:
    """Answer the next ``times`` requests whose path matches with ``status``."""

    pattern: re.Pattern[str]
    status: int
    times: int
    headers: dict[str, str] = field(default_factory=dict)
    reason: str = "backendError"
    body: dict[str, Any] | None = None
    cut: bool = False  # answer normally, but break the connection off mid-body


class ApiError(Exception):
    """An error answer; ``body`` is Google's error JSON."""

    def __init__(self, status: int, message: str, reason: str = "", body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body or {
            "error": {
                "code": status,
                "message": message,
                "errors": [{"domain": "global", "reason": reason or _STATUS[status][1],
                            "message": message}],
                "status": _STATUS[status][0],
            }
        }


_STATUS = {
    400: ("INVALID_ARGUMENT", "badRequest"),
    401: ("UNAUTHENTICATED", "authError"),
    403: ("PERMISSION_DENIED", "forbidden"),
    404: ("NOT_FOUND", "notFound"),
    409: ("ALREADY_EXISTS", "duplicate"),
    410: ("ABORTED", "deleted"),
    429: ("RESOURCE_EXHAUSTED", "rateLimitExceeded"),
    500: ("INTERNAL", "backendError"),
    502: ("UNAVAILABLE", "backendError"),
    503: ("UNAVAILABLE", "backendError"),
}


def rfc3339(when: dt.datetime) -> str:
    """``when`` as Google writes times: UTC with milliseconds and ``Z``."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def parse_time(value: str) -> dt.datetime:
    """An RFC 3339 time (``Z`` or an offset)."""
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _truthy(value: str | None, default: bool) -> bool:
    return default if value is None else value.lower() == "true"


def _event_end(event: dict[str, Any]) -> dt.datetime | None:
    end = event.get("end") or {}
    if "dateTime" in end:
        return parse_time(end["dateTime"])
    if "date" in end:
        return dt.datetime.fromisoformat(end["date"]).replace(tzinfo=dt.UTC)
    return None


class GoogleEmulator:
    """The emulator: start it, seed it, point ``api_root`` at ``url``."""

    def __init__(self, email: str = "alice@example.org") -> None:
        self.email = email
        self.lock = threading.RLock()
        self.seq = itertools.count(1)
        self.now_seq = 0
        self.calendars: dict[str, dict[str, Any]] = {}
        self.people: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.tasklists: dict[str, dict[str, Any]] = {}
        self.requests: list[Logged] = []
        self.faults: list[Fault] = []
        self.access_tokens: set[str] = set()
        self.refresh_tokens: set[str] = set()
        self.codes: dict[str, dict[str, str]] = {}
        self.token_grants: list[str] = []
        self.min_sync_seq = 0  # tokens issued before this are expired
        self.min_people_seq = 0
        self.clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
        self._server: ThreadingHTTPServer | None = None
        self._ids = itertools.count(1)
        self.add_group("contactGroups/myContacts", "myContacts", "SYSTEM_CONTACT_GROUP")
        self.add_group("contactGroups/starred", "starred", "SYSTEM_CONTACT_GROUP")

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> GoogleEmulator:
        """Listen on 127.0.0.1, a free port, in a daemon thread."""
        handler = type("Handler", (_Handler,), {"emu": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> GoogleEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The ``api_root`` (ends in ``/``)."""
        assert self._server, "emulator not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    @property
    def token_uri(self) -> str:
        return self.url + "oauth2/token"

    @property
    def auth_uri(self) -> str:
        return self.url + "oauth2/auth"

    # -- credentials -----------------------------------------------------------
    def issue_refresh_token(self) -> str:
        token = "1//rt-" + secrets.token_hex(8)
        self.refresh_tokens.add(token)
        return token

    def authorized_user_json(self, scopes: list[str] | None = None) -> str:
        """An authorized-user JSON for the keyring, as ``Credentials.to_json()`` writes it."""
        return json.dumps({
            "token": None,
            "refresh_token": self.issue_refresh_token(),
            "token_uri": self.token_uri,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "scopes": scopes or [
                "https://www.googleapis.com/auth/calendar.readonly",
                "https://www.googleapis.com/auth/contacts.readonly",
                "https://www.googleapis.com/auth/tasks",
            ],
        })

    def client_secrets(self) -> dict[str, Any]:
        """A client-secrets file body (``installed`` app) naming this emulator."""
        return {"installed": {
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "auth_uri": self.auth_uri, "token_uri": self.token_uri,
            "redirect_uris": ["http://localhost"],
        }}

    def revoke(self) -> None:
        """Revoke every refresh and access token (the next refresh: invalid_grant)."""
        with self.lock:
            self.refresh_tokens.clear()
            self.access_tokens.clear()

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.access_tokens.clear()

    def consent(self, auth_url: str) -> str:
        """Play the user consenting at ``auth_url``; return the redirected URL."""
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(auth_url).query))
        code = "code-" + secrets.token_hex(6)
        self.codes[code] = query
        redirect = query["redirect_uri"]
        sep = "&" if "?" in redirect else "?"
        return redirect + sep + urllib.parse.urlencode(
            {"state": query.get("state", ""), "code": code, "scope": query.get("scope", "")})

    # -- faults and log ----------------------------------------------------------
    def fail(self, path: str, status: int, times: int = 1, headers: dict[str, str] | None = None,
             reason: str = "", body: dict[str, Any] | None = None, cut: bool = False) -> None:
        """The next ``times`` requests whose path matches regex ``path`` answer ``status``.

        With ``cut``, they are answered normally but the connection breaks off after
        half the body (``status`` is ignored).
        """
        self.faults.append(Fault(re.compile(path), status, times, headers or {},
                                 reason or _STATUS.get(status, ("", "backendError"))[1], body, cut))

    def count(self, method: str | None = None, path: str = "") -> int:
        """How many logged requests match ``method`` and regex ``path``."""
        return sum(1 for r in self.requests
                   if (method is None or r.method == method) and re.search(path, r.path))

    def api_requests(self) -> list[Logged]:
        """Logged requests except the token endpoint's."""
        return [r for r in self.requests if not r.path.startswith("/oauth2/")]

    # -- calendar seeding ----------------------------------------------------------
    def _tick(self) -> int:
        self.now_seq = next(self.seq)
        return self.now_seq

    def add_calendar(self, cal_id: str, summary: str, primary: bool = False) -> None:
        with self.lock:
            self.calendars[cal_id] = {"id": cal_id, "summary": summary, "primary": primary,
                                      "events": {}}

    def _calendar(self, cal_id: str) -> dict[str, Any]:
        if cal_id == "primary":
            for cal in self.calendars.values():
                if cal["primary"]:
                    return cal
        if cal_id not in self.calendars:
            raise ApiError(404, "Not Found")
        return self.calendars[cal_id]

    def add_event(self, cal_id: str, event: dict[str, Any]) -> dict[str, Any]:
        """Store an event (Google's JSON); fills id, etag, iCalUID, updated, status."""
        with self.lock:
            cal = self._calendar(cal_id)
            ev = dict(event)
            ev.setdefault("id", f"ev{next(self._ids):06d}")
            ev.setdefault("status", "confirmed")
            if "recurringEventId" in ev:
                master = cal["events"].get(ev["recurringEventId"])
                ev.setdefault("iCalUID", master["iCalUID"] if master else ev["recurringEventId"] + "@google.com")
            ev.setdefault("iCalUID", ev["id"] + "@google.com")
            ev["kind"] = "calendar#event"
            self._stamp(ev)
            cal["events"][ev["id"]] = ev
            return ev

    def _stamp(self, obj: dict[str, Any]) -> None:
        seq = self._tick()
        obj["_seq"] = seq
        obj["etag"] = f'"{seq:012d}"'
        obj["updated"] = rfc3339(self.clock())

    def update_event(self, cal_id: str, event_id: str, **fields: Any) -> dict[str, Any]:
        with self.lock:
            ev = self._calendar(cal_id)["events"][event_id]
            ev.update(fields)
            self._stamp(ev)
            return ev

    def cancel_event(self, cal_id: str, event_id: str) -> None:
        """Delete an event (Google keeps it as ``status: cancelled``)."""
        self.update_event(cal_id, event_id, status="cancelled")

    def cancel_instance(self, cal_id: str, master_id: str, original_start: dict[str, str]) -> dict[str, Any]:
        """Cancel one occurrence of a recurring event (an exception with status cancelled)."""
        stamp = (original_start.get("dateTime") or original_start["date"])
        suffix = re.sub(r"[-:]", "", parse_time(stamp).astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
                        if "dateTime" in original_start else stamp.replace("-", ""))
        return self.add_event(cal_id, {
            "id": f"{master_id}_{suffix}", "status": "cancelled",
            "recurringEventId": master_id, "originalStartTime": original_start,
        })

    def expire_sync_tokens(self) -> None:
        """Every Calendar and People sync token issued so far is expired."""
        with self.lock:
            self.min_sync_seq = self.min_people_seq = self._tick()

    # -- people seeding ------------------------------------------------------------
    def add_group(self, resource: str, name: str, group_type: str = "USER_CONTACT_GROUP") -> None:
        self.groups[resource] = {"resourceName": resource, "etag": f"g{len(self.groups)}",
                                 "name": name, "formattedName": name, "groupType": group_type}

    def add_person(self, person: dict[str, Any]) -> dict[str, Any]:
        """Store a person (People JSON); fills resourceName, etag and metadata."""
        with self.lock:
            p = dict(person)
            p.setdefault("resourceName", f"people/c{next(self._ids):08d}")
            p.setdefault("metadata", {"sources": [{"type": "CONTACT", "id": p["resourceName"][8:]}]})
            self._stamp(p)
            self.people[p["resourceName"]] = p
            return p

    def update_person(self, resource: str, **fields: Any) -> None:
        with self.lock:
            self.people[resource].update(fields)
            self._stamp(self.people[resource])

    def delete_person(self, resource: str) -> None:
        with self.lock:
            p = self.people[resource]
            p["metadata"] = dict(p.get("metadata") or {}, deleted=True)
            self._stamp(p)

    # -- tasks seeding -------------------------------------------------------------
    def add_tasklist(self, title: str) -> dict[str, Any]:
        with self.lock:
            tl: dict[str, Any] = {"kind": "tasks#taskList", "id": f"tl{next(self._ids):04d}",
                                  "title": title, "tasks": {}}
            self._stamp(tl)
            self.tasklists[tl["id"]] = tl
            return tl

    def tasklist_by_title(self, title: str) -> dict[str, Any] | None:
        return next((t for t in self.tasklists.values() if t["title"] == title), None)

    def all_tasks(self, title: str = "Follow-ups") -> list[dict[str, Any]]:
        tl = self.tasklist_by_title(title)
        return list(tl["tasks"].values()) if tl else []

    def _task(self, task_id: str) -> dict[str, Any]:
        for tl in self.tasklists.values():
            if task_id in tl["tasks"]:
                return tl["tasks"][task_id]
        raise KeyError(task_id)

    def complete_task(self, task_id: str, when: dt.datetime | None = None, hidden: bool = False) -> None:
        with self.lock:
            task = self._task(task_id)
            task.update(status="completed", completed=rfc3339(when or self.clock()))
            if hidden:
                task["hidden"] = True
            self._stamp(task)

    def delete_task(self, task_id: str) -> None:
        with self.lock:
            task = self._task(task_id)
            task["deleted"] = True
            self._stamp(task)

    # -- HTTP dispatch -------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict[str, str], body: Any,
               headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        """Answer one request: (status, JSON body or None, extra headers)."""
        with self.lock:
            entry = Logged(method, path, query, headers.get("host", ""))
            self.requests.append(entry)
            cut = False
            for fault in self.faults:
                if fault.times > 0 and fault.pattern.search(path):
                    fault.times -= 1
                    if fault.cut:
                        cut = True
                        break
                    err = ApiError(fault.status, "injected fault", fault.reason, fault.body)
                    entry.status = fault.status
                    return fault.status, err.body, fault.headers
            try:
                status, out = self._route(method, path, query, body, headers)
            except ApiError as exc:
                status, out = exc.status, exc.body
            entry.status = status
            return status, out, {CUT: "1"} if cut else {}

    def _route(self, method: str, path: str, query: dict[str, str], body: Any,
               headers: dict[str, str]) -> tuple[int, Any]:
        if path == "/oauth2/token" and method == "POST":
            form = dict(body or {})
            basic = headers.get("authorization", "")
            if basic.startswith("Basic "):  # client authentication by HTTP Basic (RFC 6749 2.3.1)
                user, _, password = base64.b64decode(basic[6:]).decode().partition(":")
                form.setdefault("client_id", urllib.parse.unquote_plus(user))
                form.setdefault("client_secret", urllib.parse.unquote_plus(password))
            return self._token(form)
        if path == "/oauth2/auth":
            return 302, {"location": self.consent(self.url + "oauth2/auth?" + urllib.parse.urlencode(query))}
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.access_tokens:
            raise ApiError(401, "Request had invalid authentication credentials.", "authError")
        for pattern, verb, fn in _ROUTES:
            m = re.fullmatch(pattern, path)
            if m and verb == method:
                return fn(self, *m.groups(), query=query, body=body)
        raise ApiError(404, f"no route for {method} {path}")

    def _token(self, form: dict[str, str]) -> tuple[int, Any]:
        grant = form.get("grant_type", "")
        self.token_grants.append(grant)
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return 401, {"error": "invalid_client", "error_description": "The OAuth client was not found."}
        if grant == "refresh_token":
            if form.get("refresh_token") not in self.refresh_tokens:
                return 400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
            return 200, self._access_token()
        if grant == "authorization_code":
            req = self.codes.pop(form.get("code", ""), None)
            if req is None:
                return 400, {"error": "invalid_grant", "error_description": "Malformed auth code."}
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
            if req.get("code_challenge") and req["code_challenge"] != challenge:
                return 400, {"error": "invalid_grant", "error_description": "Invalid code verifier."}
            out = self._access_token()
            out["refresh_token"] = self.issue_refresh_token()
            out["scope"] = req.get("scope", "")
            return 200, out
        return 400, {"error": "unsupported_grant_type"}

    def _access_token(self) -> dict[str, Any]:
        token = "ya29.at-" + secrets.token_hex(8)
        self.access_tokens.add(token)
        return {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    # -- Calendar ------------------------------------------------------------------
    def _calendar_list(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        items = [{"kind": "calendar#calendarListEntry", "id": c["id"], "summary": c["summary"],
                  "accessRole": "owner", **({"primary": True} if c["primary"] else {})}
                 for c in self.calendars.values()]
        return 200, self._page(items, query, "calendar#calendarList", "items", 100, 250)

    @staticmethod
    def _page(items: list[Any], query: dict[str, str], kind: str, key: str, default: int,
              cap: int, size_key: str = "maxResults") -> dict[str, Any]:
        size = min(int(query.get(size_key) or default) or default, cap)
        start = int(query.get("pageToken") or 0)
        out: dict[str, Any] = {"kind": kind, key: items[start:start + size]}
        if start + size < len(items):
            out["nextPageToken"] = str(start + size)
        return out

    def _events_list(self, cal_id: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        cal = self._calendar(cal_id)
        token = query.get("syncToken")
        page = query.get("pageToken")
        if token and any(k in query for k in ("timeMin", "timeMax", "updatedMin", "iCalUID",
                                              "orderBy", "q", "privateExtendedProperty")):
            raise ApiError(400, "Sync token cannot be used with other filters", "invalid")
        since = 0
        if token:
            since = self._decode_sync(token)
            if since < self.min_sync_seq:
                raise ApiError(410, "Sync token is no longer valid, a full sync is required.",
                               "fullSyncRequired")
        snapshot = int(page.split(":")[1]) if page else self.now_seq
        show_deleted = _truthy(query.get("showDeleted"), False) or bool(token)
        events = sorted(cal["events"].values(), key=lambda e: (e["_seq"], e["id"]))
        selected = [e for e in events if since < e["_seq"] <= snapshot]
        if not show_deleted:
            selected = [e for e in selected if e["status"] != "cancelled"]
        if "timeMin" in query:
            bound = parse_time(query["timeMin"])
            selected = [e for e in selected if "recurrence" in e or e["status"] == "cancelled"
                        or (_event_end(e) or bound) > bound]
        if "updatedMin" in query:
            bound = parse_time(query["updatedMin"])
            selected = [e for e in selected if parse_time(e["updated"]) >= bound]
        if "privateExtendedProperty" in query:
            name, _, value = query["privateExtendedProperty"].partition("=")
            selected = [e for e in selected
                        if (e.get("extendedProperties") or {}).get("private", {}).get(name) == value]
        size = min(int(query.get("maxResults") or 250), 2500)
        start = int(page.split(":")[0]) if page else 0
        chunk = selected[start:start + size]
        out: dict[str, Any] = {"kind": "calendar#events", "summary": cal["summary"],
                               "items": [self._public_event(e) for e in chunk]}
        if start + size < len(selected):
            out["nextPageToken"] = f"{start + size}:{snapshot}"
        else:
            out["nextSyncToken"] = base64.urlsafe_b64encode(f"cal:{snapshot}".encode()).decode()
        return 200, out

    @staticmethod
    def _decode_sync(token: str) -> int:
        try:
            return int(base64.urlsafe_b64decode(token.encode()).decode().split(":")[1])
        except (ValueError, IndexError) as exc:
            raise ApiError(400, "Invalid sync token value.", "invalid") from exc

    @staticmethod
    def _public_event(ev: dict[str, Any]) -> dict[str, Any]:
        if ev["status"] == "cancelled":
            keep = ("kind", "etag", "id", "status", "updated", "recurringEventId", "originalStartTime")
            return {k: ev[k] for k in keep if k in ev}
        return {k: v for k, v in ev.items() if not k.startswith("_")}

    def _events_get(self, cal_id: str, event_id: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        ev = self._calendar(cal_id)["events"].get(event_id)
        if ev is None:
            raise ApiError(404, "Not Found")
        return 200, {k: v for k, v in ev.items() if not k.startswith("_")}

    def _events_insert(self, cal_id: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        cal = self._calendar(cal_id)
        if "id" in body:
            if not re.fullmatch(r"[a-v0-9]{5,1024}", body["id"]):
                raise ApiError(400, "Invalid resource id value.", "invalid")
            if body["id"] in cal["events"]:
                raise ApiError(409, "The requested identifier already exists.", "duplicate")
        ev = self.add_event(cal["id"], body)
        return 200, self._public_event(ev)

    def _events_patch(self, cal_id: str, event_id: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        cal = self._calendar(cal_id)
        if event_id not in cal["events"]:
            raise ApiError(404, "Not Found")
        return 200, self._public_event(self.update_event(cal["id"], event_id, **body))

    def _events_delete(self, cal_id: str, event_id: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        cal = self._calendar(cal_id)
        ev = cal["events"].get(event_id)
        if ev is None:
            raise ApiError(404, "Not Found")
        if ev["status"] == "cancelled":
            raise ApiError(410, "Resource has been deleted", "deleted")
        self.cancel_event(cal["id"], event_id)
        return 204, None

    # -- People --------------------------------------------------------------------
    def _connections(self, resource: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if resource != "me":
            raise ApiError(403, "Must be people/me", "forbidden")
        if not query.get("personFields"):
            raise ApiError(400, "personFields mask is required. Please specify one or more valid paths.")
        token = query.get("syncToken")
        since = 0
        if token:
            since = self._decode_sync(token)
            if since < self.min_people_seq:
                raise ApiError(400, "Sync token is expired. Clear local cache and retry call without the sync token.",
                               body={"error": {
                                   "code": 400, "status": "FAILED_PRECONDITION",
                                   "message": "Sync token is expired. Clear local cache and retry call without the sync token.",
                                   "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                                "reason": "EXPIRED_SYNC_TOKEN",
                                                "domain": "people.googleapis.com"}]}})
        page = query.get("pageToken")
        snapshot = int(page.split(":")[1]) if page else self.now_seq
        people = sorted(self.people.values(), key=lambda p: (p["_seq"], p["resourceName"]))
        selected = [p for p in people if since < p["_seq"] <= snapshot
                    and (token or not p["metadata"].get("deleted"))]
        fields = set(query["personFields"].split(","))
        size = min(int(query.get("pageSize") or 100) or 100, 1000)
        start = int(page.split(":")[0]) if page else 0
        out: dict[str, Any] = {
            "connections": [self._public_person(p, fields) for p in selected[start:start + size]],
            "totalPeople": len(selected), "totalItems": len(selected),
        }
        if start + size < len(selected):
            out["nextPageToken"] = f"{start + size}:{snapshot}"
        elif _truthy(query.get("requestSyncToken"), False):
            out["nextSyncToken"] = base64.urlsafe_b64encode(f"people:{snapshot}".encode()).decode()
        return 200, out

    @staticmethod
    def _public_person(p: dict[str, Any], fields: set[str]) -> dict[str, Any]:
        if p["metadata"].get("deleted"):
            return {"resourceName": p["resourceName"], "etag": p["etag"],
                    "metadata": {"deleted": True}}
        return {k: v for k, v in p.items()
                if k in fields or k in ("resourceName", "etag") or (k == "metadata" and "metadata" in fields)}

    def _contact_groups(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        groups = list(self.groups.values())
        out = self._page(groups, query, "", "contactGroups", 30, 1000, "pageSize")
        out.pop("kind")
        out["totalItems"] = len(groups)
        return 200, out

    # -- Tasks ---------------------------------------------------------------------
    @staticmethod
    def _public(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if not k.startswith("_") and k != "tasks"}

    def _tasklists_list(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        items = [self._public(t) for t in self.tasklists.values()]
        return 200, self._page(items, query, "tasks#taskLists", "items", 20, 1000)

    def _tasklists_insert(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        return 200, self._public(self.add_tasklist(body["title"]))

    def _tasklist(self, tl_id: str) -> dict[str, Any]:
        if tl_id not in self.tasklists:
            raise ApiError(404, "Task list not found.", "notFound")
        return self.tasklists[tl_id]

    def _tasks_list(self, tl_id: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        tl = self._tasklist(tl_id)
        tasks = sorted(tl["tasks"].values(), key=lambda t: (t["_seq"], t["id"]))
        if not _truthy(query.get("showDeleted"), False):
            tasks = [t for t in tasks if not t.get("deleted")]
        if not _truthy(query.get("showHidden"), False):
            tasks = [t for t in tasks if not t.get("hidden")]
        if not _truthy(query.get("showCompleted"), True):
            tasks = [t for t in tasks if t["status"] != "completed"]
        if "updatedMin" in query:
            bound = parse_time(query["updatedMin"])
            tasks = [t for t in tasks if parse_time(t["updated"]) >= bound]
        out = self._page([self._public(t) for t in tasks], query, "tasks#tasks", "items", 20, 100)
        return 200, out

    def _tasks_insert(self, tl_id: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        tl = self._tasklist(tl_id)
        task = {k: v for k, v in body.items() if k in ("title", "notes", "due", "status")}
        task.update(kind="tasks#task", id=f"t{next(self._ids):06d}")
        task.setdefault("status", "needsAction")
        self._stamp(task)
        tl["tasks"][task["id"]] = task
        return 200, self._public(task)

    def _tasks_one(self, tl_id: str, task_id: str) -> dict[str, Any]:
        task = self._tasklist(tl_id)["tasks"].get(task_id)
        if task is None or task.get("deleted"):
            raise ApiError(404, "Task not found.", "notFound")
        return task

    def _tasks_patch(self, tl_id: str, task_id: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        task = self._tasks_one(tl_id, task_id)
        task.update({k: v for k, v in body.items() if k in ("title", "notes", "due", "status", "completed")})
        self._stamp(task)
        return 200, self._public(task)

    def _tasks_delete(self, tl_id: str, task_id: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        task = self._tasks_one(tl_id, task_id)
        task["deleted"] = True
        self._stamp(task)
        return 204, None


_SEG = r"([^/]+)"
_ROUTES: list[tuple[str, str, Callable[..., tuple[int, Any]]]] = [
    (r"/calendar/v3/users/me/calendarList", "GET", GoogleEmulator._calendar_list),
    (rf"/calendar/v3/calendars/{_SEG}/events", "GET", GoogleEmulator._events_list),
    (rf"/calendar/v3/calendars/{_SEG}/events", "POST", GoogleEmulator._events_insert),
    (rf"/calendar/v3/calendars/{_SEG}/events/{_SEG}", "GET", GoogleEmulator._events_get),
    (rf"/calendar/v3/calendars/{_SEG}/events/{_SEG}", "PATCH", GoogleEmulator._events_patch),
    (rf"/calendar/v3/calendars/{_SEG}/events/{_SEG}", "DELETE", GoogleEmulator._events_delete),
    (rf"/v1/people/{_SEG}/connections", "GET", GoogleEmulator._connections),
    (r"/v1/contactGroups", "GET", GoogleEmulator._contact_groups),
    (r"/tasks/v1/users/@me/lists", "GET", GoogleEmulator._tasklists_list),
    (r"/tasks/v1/users/@me/lists", "POST", GoogleEmulator._tasklists_insert),
    (rf"/tasks/v1/lists/{_SEG}/tasks", "GET", GoogleEmulator._tasks_list),
    (rf"/tasks/v1/lists/{_SEG}/tasks", "POST", GoogleEmulator._tasks_insert),
    (rf"/tasks/v1/lists/{_SEG}/tasks/{_SEG}", "PATCH", GoogleEmulator._tasks_patch),
    (rf"/tasks/v1/lists/{_SEG}/tasks/{_SEG}", "DELETE", GoogleEmulator._tasks_delete),
]


CUT = "X-Emulator-Cut"  # internal: the handler breaks this answer off mid-body


class _Handler(BaseHTTPRequestHandler):
    emu: GoogleEmulator
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _serve(self) -> None:
        split = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
        length = int(self.headers.get("content-length") or 0)
        data = self.rfile.read(length) if length else b""
        body: Any = None
        if data:
            if "json" in self.headers.get("content-type", ""):
                body = json.loads(data)
            else:
                body = dict(urllib.parse.parse_qsl(data.decode()))
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, out, extra = self.emu.handle(self.command, urllib.parse.unquote(split.path),
                                             query, body, headers)
        if status == 302:
            self.send_response(302)
            self.send_header("Location", out["location"])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        payload = b"" if out is None else json.dumps(out).encode()
        cut = extra.pop(CUT, None) is not None
        self.send_response(status)
        for k, v in extra.items():
            self.send_header(k, v)
        if payload:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if cut:
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve
