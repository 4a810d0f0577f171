"""Credentials from the keyring's authorized-user JSON, and the installed-app flow.

The keyring holds what ``google.oauth2.credentials.Credentials.to_json()`` writes.
``Credentials.from_authorized_user_info`` would replace its ``token_uri`` with Google's,
so the credentials are built here field by field: the token endpoint named in the
JSON is the one used (SPEC §3; tests point it at the emulator).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import urllib.parse
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.oauth2.credentials import Credentials

from syncd.errors import AuthError, SyncdError

SCOPE = "https://www.googleapis.com/auth/"
CALENDAR_READ = SCOPE + "calendar.readonly"
CALENDAR_WRITE = SCOPE + "calendar"
CONTACTS_READ = SCOPE + "contacts.readonly"
TASKS = SCOPE + "tasks"


def scopes_for(tasks_as: str, contacts: bool) -> list[str]:
    """Least privilege: read calendars and contacts, write tasks (or events)."""
    scopes = [CALENDAR_WRITE if tasks_as == "event" else CALENDAR_READ]
    if contacts:
        scopes.append(CONTACTS_READ)
    if tasks_as == "todo":
        scopes.append(TASKS)
    return scopes


def credentials_from_json(account: str, text: str) -> Credentials:
    """Build credentials from an authorized-user JSON, honouring its ``token_uri``.

    Raises:
        AuthError: the JSON is not an authorized-user record.
    """
    try:
        info = json.loads(text)
        expiry = None
        if info.get("expiry"):
            expiry = dt.datetime.strptime(info["expiry"].rstrip("Z").split(".")[0], "%Y-%m-%dT%H:%M:%S")
        scopes = info.get("scopes")
        if isinstance(scopes, str):
            scopes = scopes.split()
        return Credentials(
            token=info.get("token") if expiry else None,
            refresh_token=info["refresh_token"],
            token_uri=info["token_uri"],
            client_id=info["client_id"],
            client_secret=info["client_secret"],
            scopes=scopes,
            expiry=expiry,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise AuthError(account, "the stored secret is not a Google authorized-user JSON") from exc


def credentials_json(creds: Credentials) -> str:
    """The JSON to store (``Credentials.to_json``, which keeps ``token_uri``)."""
    return str(creds.to_json())


def _browser_available() -> bool:
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and sys.platform.startswith("linux"):
        return False
    try:
        webbrowser.get()
    except webbrowser.Error:
        return False
    return True


def _allow_loopback_http(token_uri: str) -> None:
    # oauthlib refuses plain-http token endpoints; a loopback one (an emulator, a
    # local proxy) never leaves the machine, so allow it for that case only.
    host = urllib.parse.urlsplit(token_uri).hostname or ""
    if host in ("127.0.0.1", "localhost", "::1"):
        os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"


def run_flow(
    client_secrets: Path | None,
    scopes: list[str],
    *,
    browser: bool | None = None,
    prompt: Callable[[str], str] = input,
    out: Callable[[str], None] = print,
) -> Credentials:
    """The OAuth installed-app flow (PKCE, consent, offline access).

    With a browser: a loopback redirect (``run_local_server``). Without one (a server
    over ssh): print the URL, read back the URL the browser was redirected to.

    Raises:
        SyncdError: ``client_secrets`` is not set or cannot be read.
    """
    from google_auth_oauthlib.flow import InstalledAppFlow

    if client_secrets is None:
        raise SyncdError("Google accounts need `client_secrets` (the OAuth client JSON) for `syncd auth`")
    try:
        flow = InstalledAppFlow.from_client_secrets_file(str(client_secrets), scopes=scopes)
    except (OSError, ValueError) as exc:
        raise SyncdError(f"client_secrets: cannot read {client_secrets}: {exc}") from exc
    _allow_loopback_http(flow.client_config.get("token_uri", ""))
    kwargs: dict[str, Any] = {"prompt": "consent", "access_type": "offline"}
    if browser if browser is not None else _browser_available():
        creds = flow.run_local_server(host="localhost", port=0, open_browser=True, **kwargs)
        return creds  # type: ignore[no-any-return]
    flow.redirect_uri = "http://localhost:1/"
    url, _state = flow.authorization_url(**kwargs)
    out(f"Open this URL in a browser and allow access:\n\n    {url}\n")
    out("The browser then fails to load a http://localhost page; copy that page's address.")
    answer = prompt("Paste the address here: ").strip()
    if not answer.startswith("http"):
        raise SyncdError("expected the full http://localhost/... address the browser was sent to")
    flow.fetch_token(authorization_response=answer.replace("http://", "https://", 1))
    return flow.credentials  # type: ignore[no-any-return]
