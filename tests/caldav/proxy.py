"""A loopback HTTP proxy in front of a test server: counts requests, injects faults.

``CountingProxy(upstream)`` listens on 127.0.0.1 and forwards every request to
``upstream`` (``http://127.0.0.1:PORT``). ``requests`` records (method, path) of what
reached it. ``fault()`` queues faults for the next matching requests:

- ``status=500`` (or 412, 403, 429, ...): answer that status without forwarding;
- ``drop=True``: close the connection without answering;
- ``delay=1.5``: wait, then forward;
- ``cut=True``: forward, then send the headers (full ``Content-Length``) and half the
  body, and close the connection (a reset mid-body);
- ``keep=N``: forward, and pass on only the first N ``D:response`` elements of a 207
  answer (a well-formed but truncated answer, sync token kept); with ``marker=True``
  the answer also says so, as RFC 6578 §3.6 does (a 507 response for the collection);
- ``shuffle=True``: forward, with the ``D:response`` elements in reverse order.

A fault matches by ``method``, a ``path`` regex and a ``body`` regex (all optional).
"""

from __future__ import annotations

import http.client
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from lxml import etree

DAV = "{DAV:}"


def rewrite(data: bytes, path: str, fault: Fault) -> bytes:
    """A 207 body with its responses truncated (``keep``, ``marker``) or reversed."""
    try:
        root = etree.fromstring(data)
    except etree.XMLSyntaxError:
        return data
    responses = root.findall(f"{DAV}response")
    for r in responses:
        root.remove(r)
    if fault.shuffle:
        responses.reverse()
    if fault.keep is not None:
        responses = responses[: fault.keep]
    token = root.find(f"{DAV}sync-token")
    at = list(root).index(token) if token is not None else len(root)
    for i, r in enumerate(responses):
        root.insert(at + i, r)
    if fault.marker:
        r = etree.Element(f"{DAV}response")
        etree.SubElement(r, f"{DAV}href").text = path
        etree.SubElement(r, f"{DAV}status").text = "HTTP/1.1 507 Insufficient Storage"
        root.insert(at + len(responses), r)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))

METHODS = ("GET", "PUT", "DELETE", "POST", "HEAD", "OPTIONS", "PROPFIND", "PROPPATCH",
           "REPORT", "MKCOL", "MKCALENDAR", "MOVE", "COPY")


@dataclass
class Fault:
    """One queued fault."""

    times: int = 1
    method: str | None = None
    path: str | None = None  # regex searched in the path
    body: str | None = None  # regex searched in the request body
    status: int | None = None
    drop: bool = False
    delay: float = 0.0
    headers: dict[str, str] | None = None
    cut: bool = False
    keep: int | None = None
    marker: bool = False
    shuffle: bool = False

    def matches(self, method: str, path: str, body: bytes = b"") -> bool:
        return (
            (self.method is None or self.method == method)
            and (self.path is None or re.search(self.path, path) is not None)
            and (self.body is None or re.search(self.body.encode(), body) is not None)
        )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _any(self) -> None:
        proxy = self.server.proxy
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fault = proxy.take(self.command, self.path, body)
        with proxy.lock:
            proxy.requests.append((self.command, self.path))
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.drop:
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if fault is not None and fault.status is not None:
            payload = b"injected fault"
            self.send_response(fault.status)
            for k, v in (fault.headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        conn = http.client.HTTPConnection(proxy.host, proxy.port, timeout=60)
        # no Accept-Encoding: answers must stay plain XML for the faults that rewrite them
        drop = ("host", "connection", "accept-encoding")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in drop}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        if fault is not None and resp.status == 207 and (fault.keep is not None or fault.shuffle):
            data = rewrite(data, self.path, fault)
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() in ("transfer-encoding", "connection", "content-length"):
                continue
            if k.lower() == "location":
                v = v.replace(proxy.upstream, proxy.url.rstrip("/"))
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if fault is not None and fault.cut:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if self.command != "HEAD":
            self.wfile.write(data)


for _m in METHODS:
    setattr(_Handler, f"do_{_m}", _Handler._any)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: CountingProxy


class CountingProxy:
    """The proxy; use as a context manager or call ``close()``."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = f"{parts.scheme}://{parts.netloc}"
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.requests: list[tuple[str, str]] = []
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.proxy = self
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def fault(self, **kwargs: object) -> None:
        """Queue a ``Fault(**kwargs)``."""
        with self.lock:
            self.faults.append(Fault(**kwargs))  # type: ignore[arg-type]

    def take(self, method: str, path: str, body: bytes = b"") -> Fault | None:
        """The first queued fault matching this request (consumed once per use)."""
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path, body):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def reset(self) -> None:
        """Forget counted requests and queued faults."""
        with self.lock:
            self.requests.clear()
            self.faults.clear()

    def count(self, method: str | None = None) -> int:
        """How many requests (of ``method``) reached the proxy."""
        with self.lock:
            return sum(1 for m, _ in self.requests if method is None or m == method)

    def close(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> CountingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
