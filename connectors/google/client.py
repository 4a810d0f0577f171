"""Building the API services and executing requests with syncd's retry policy.

Each service is built from the discovery document bundled with
google-api-python-client (``static_discovery=True``: no discovery request). With
``api_root`` every endpoint is ``api_root + servicePath`` (SPEC §3), and the token
endpoint is the keyring JSON's ``token_uri``, so no request goes anywhere else.

googleapiclient's own retries stay off (``num_retries=0``); ``Client.execute`` retries
429, 403 ``rateLimitExceeded``/``userRateLimitExceeded``, 5xx and connection errors
with exponential backoff and full jitter, honouring ``Retry-After`` (bounded), and
then raises ``TransientError``. ``invalid_grant`` on refresh is an ``AuthError`` at once.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import google_auth_httplib2
import httplib2
from google.auth.exceptions import RefreshError, TransportError
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from syncd.errors import AccountError, AuthError, TransientError
from syncd_connectors.base import Context
from syncd_connectors.google.auth import credentials_from_json, credentials_json

log = logging.getLogger(__name__)

#: (API, version) -> servicePath of the bundled discovery document
SERVICE_PATHS = {"calendar": "calendar/v3/", "people": "", "tasks": ""}
VERSIONS = {"calendar": "v3", "people": "v1", "tasks": "v1"}
RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded"}


def error_reason(exc: HttpError) -> str:
    """The first ``reason`` of Google's error body (``errors[].reason`` or ``details[].reason``)."""
    try:
        err = json.loads(exc.content.decode("utf-8", "replace"))["error"]
    except (ValueError, KeyError, TypeError, AttributeError):
        return ""
    if not isinstance(err, dict):
        return ""
    for item in list(err.get("errors") or []) + list(err.get("details") or []):
        if isinstance(item, dict) and item.get("reason"):
            return str(item["reason"])
    return str(err.get("status") or "")


def status_of(exc: HttpError) -> int:
    return int(getattr(exc.resp, "status", 0) or 0)


class Client:
    """The account's authorized HTTP transport and its three services."""

    attempts = 5
    base_delay = 1.0
    max_delay = 60.0  # bound for backoff and Retry-After, seconds
    timeout = 30

    def __init__(self, ctx: Context, api_root: str | None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.ctx = ctx
        self.account = ctx.account
        self.api_root = api_root
        self.sleep = sleep
        secret = ctx.secret()
        self.credentials = credentials_from_json(self.account, secret)
        self._stored_token = json.loads(secret).get("token")
        self.http = google_auth_httplib2.AuthorizedHttp(
            self.credentials, http=httplib2.Http(timeout=self.timeout))
        self._services: dict[str, Any] = {}

    def service(self, api: str) -> Any:
        """The ``calendar``, ``people`` or ``tasks`` service (built once)."""
        if api not in self._services:
            options = {}
            if self.api_root:
                options["api_endpoint"] = self.api_root + SERVICE_PATHS[api]
            self._services[api] = build(
                api, VERSIONS[api], http=self.http, static_discovery=True,
                cache_discovery=False, client_options=options or None)
        return self._services[api]

    def execute(self, request: Any, what: str) -> Any:
        """Run one request with retries; ``what`` names it in messages (no secrets).

        Raises:
            AuthError: the grant was revoked, or the credentials refused.
            TransientError: rate limits, 5xx or network errors persisted.
            HttpError: other HTTP errors, for the caller to interpret.
        """
        for attempt in range(1, self.attempts + 1):
            try:
                result = request.execute(num_retries=0)
            except RefreshError as exc:
                raise self._refresh_error(exc) from exc
            except HttpError as exc:
                delay = self._retry_delay(exc, attempt)
                if delay is None:
                    if status_of(exc) == 401:
                        raise AuthError(self.account) from exc
                    raise
                if attempt == self.attempts:
                    raise TransientError(
                        f"account {self.account!r}: {what}: HTTP {status_of(exc)} "
                        f"after {attempt} attempts") from exc
                log.info("account %s: %s: HTTP %s, retrying in %.1fs", self.account, what,
                         status_of(exc), delay)
                self.sleep(delay)
                continue
            except (TimeoutError, OSError, httplib2.HttpLib2Error, TransportError) as exc:
                if attempt == self.attempts:
                    raise TransientError(f"account {self.account!r}: {what}: {exc}") from exc
                self.sleep(self._backoff(attempt))
                continue
            self._write_back()
            return result
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))

    def _retry_delay(self, exc: HttpError, attempt: int) -> float | None:
        status = status_of(exc)
        retryable = status == 429 or status >= 500 or (
            status == 403 and error_reason(exc) in RATE_REASONS)
        if not retryable:
            return None
        after = (exc.resp.get("retry-after") if exc.resp is not None else None) or ""
        if after.strip().isdigit():
            return min(float(after), self.max_delay)
        return self._backoff(attempt)

    def _refresh_error(self, exc: RefreshError) -> AccountError:
        text = str(exc)
        if "invalid_grant" in text or "invalid_client" in text or "unauthorized_client" in text:
            return AuthError(self.account, "the grant was revoked or expired")
        if getattr(exc, "retryable", False):
            return TransientError(f"account {self.account!r}: token refresh failed: {text}")
        return AuthError(self.account, f"token refresh failed ({text.split(':')[0]})")

    def _write_back(self) -> None:
        """Store the refreshed token once it changed (SPEC §3)."""
        if self.credentials.token is None:
            return
        if self._stored_token != self.credentials.token:
            self.ctx.store_secret(credentials_json(self.credentials))
            self._stored_token = self.credentials.token

    def pages(self, method: Callable[..., Any], what: str, **params: Any) -> Any:
        """Yield every page of a list method, following ``nextPageToken``."""
        token = None
        while True:
            page = self.execute(method(**params, **({"pageToken": token} if token else {})), what)
            yield page
            token = page.get("nextPageToken")
            if not token:
                return
