"""HTTP for the CalDAV connector: one session, timeouts, retries, error mapping.

Why not ``caldav.DAVClient.request()``: it raises ``AuthorizationError`` on every 403,
and 403 is how servers reject a sync token (``DAV:valid-sync-token``, RFC 6578 §3.2);
it negotiates auth with an extra unauthenticated round trip; and it parses every body
eagerly. We use the same HTTP library (niquests, a dependency of ``caldav``) with
preemptive Basic auth, so auth and TLS are still handled in exactly one place: here.

Policy (SPEC §6): every request has a timeout; 429/503 honour ``Retry-After`` (at most
``MAX_RETRY_AFTER`` seconds); 5xx, timeouts and connection errors are retried with
exponential backoff, then raise ``TransientError`` naming the account and the URL; 401
raises ``AuthError``. Other statuses are returned to the caller. The password never
reaches a log line or an exception message.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import niquests

from syncd.errors import AccountError, AuthError, TransientError

log = logging.getLogger("syncd_connectors.caldav")

MAX_RETRY_AFTER = 60.0
CONNECT_TIMEOUT = 10.0
RETRY_STATUSES = frozenset({500, 502, 503, 504, 429})


@dataclass(frozen=True)
class Response:
    """What a caller needs of an HTTP answer."""

    status: int
    headers: Mapping[str, str]
    content: bytes
    url: str

    @property
    def text(self) -> str:
        """The body as UTF-8 text (CalDAV/CardDAV bodies are UTF-8)."""
        return self.content.decode("utf-8", errors="replace")


def public_url(url: str) -> str:
    """``url`` without any user:password part, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Http:
    """A session bound to one account's base URL and credentials.

    Args:
        account: the account name (for messages).
        base: the account's base URL; relative hrefs are resolved against it.
        username: None for no auth.
        password: used only when ``username`` is set.
        verify: TLS verification: True, False or a CA bundle path.
        timeout: seconds to wait for an answer (a cold server may take long to list a
            big collection); connecting is bounded by ``CONNECT_TIMEOUT``.
    """

    def __init__(
        self,
        account: str,
        base: str,
        username: str | None,
        password: str | None,
        verify: bool | str = True,
        timeout: float = 30.0,
    ) -> None:
        self.account = account
        self.base = base if base.endswith("/") else base + "/"
        self.timeout = timeout
        self.attempts = 4
        self.backoff = 0.5  # seconds; doubled per attempt
        self.requests = 0  # sent, including retries (diagnostics, tests)
        self.session = niquests.Session()
        self.session.verify = verify
        self.session.headers["User-Agent"] = "syncd"
        if username is not None:
            self.session.auth = (username, password or "")

    def url(self, href: str) -> str:
        """``href`` resolved against the base URL."""
        return urljoin(self.base, href)

    def request(
        self,
        method: str,
        href: str,
        body: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send one request, retrying what a retry can fix.

        Raises:
            AuthError: 401.
            TransientError: 5xx/429 or network failures that outlast the retries.
        """
        url = self.url(href)
        data = body.encode("utf-8") if isinstance(body, str) else body
        problem = ""
        for attempt in range(self.attempts):
            wait = self.backoff * (2**attempt)
            try:
                self.requests += 1
                r = self.session.request(
                    method, url, data=data, headers=dict(headers or {}),
                    timeout=(min(CONNECT_TIMEOUT, self.timeout), self.timeout),
                )
                content = r.content or b""
            except (niquests.exceptions.Timeout, niquests.exceptions.ConnectionError) as exc:
                problem = f"{type(exc).__name__}"
                log.debug("account %s: %s %s: %s", self.account, method, public_url(url), problem)
            except niquests.exceptions.RequestException as exc:
                raise AccountError(
                    f"account {self.account!r}: {method} {public_url(url)}: {type(exc).__name__}"
                ) from None
            else:
                status = int(r.status_code or 0)
                if status == 401:
                    raise AuthError(self.account)
                if status not in RETRY_STATUSES:
                    return Response(status, dict(r.headers), content, str(r.url or url))
                problem = f"HTTP {status}"
                after = _retry_after(r.headers.get("Retry-After"))
                if after is not None and status in (429, 503):
                    wait = min(after, MAX_RETRY_AFTER)
            if attempt + 1 < self.attempts:
                log.info(
                    "account %s: %s %s: %s; retrying in %.1fs",
                    self.account, method, public_url(url), problem, wait,
                )
                time.sleep(wait)
        raise TransientError(
            f"account {self.account!r}: {method} {public_url(url)}: {problem} "
            f"(after {self.attempts} attempts)"
        )

    def fail(self, method: str, href: str, resp: Response, what: str = "") -> AccountError:
        """The error for an unexpected status (returned, for the caller to raise)."""
        extra = f": {what}" if what else ""
        return AccountError(
            f"account {self.account!r}: {method} {public_url(self.url(href))}: "
            f"HTTP {resp.status}{extra}"
        )

    def close(self) -> None:
        """Release pooled connections."""
        self.session.close()
