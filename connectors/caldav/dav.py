"""WebDAV XML: request bodies and multistatus parsing (RFC 4918, 4791, 6352, 6578).

Hrefs are kept as the server spells their path (percent-encoding included), so that
what we send back is what the server knows; ``key()`` is the form used to match an
href between two answers (decoded path).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit
from xml.sax.saxutils import escape

from lxml import etree

D = "DAV:"
C = "urn:ietf:params:xml:ns:caldav"
CR = "urn:ietf:params:xml:ns:carddav"
CS = "http://calendarserver.org/ns/"

NSDECL = f'xmlns:D="{D}" xmlns:C="{C}" xmlns:CR="{CR}"'
HEAD = '<?xml version="1.0" encoding="utf-8"?>\n'

XML_HEADERS = {"Content-Type": "application/xml; charset=utf-8"}


def q(ns: str, name: str) -> str:
    """Clark notation ``{ns}name``."""
    return f"{{{ns}}}{name}"


def key(href: str) -> str:
    """The comparable form of an href: its decoded path."""
    p = path(href)
    return unquote(p) if "%" in p else p


def path(href: str) -> str:
    """The path part of an href (servers may answer with absolute URLs)."""
    if href.startswith("/") and "?" not in href and "#" not in href:
        return href
    return urlsplit(href).path or href


@dataclass
class Entry:
    """One ``D:response`` of a multistatus."""

    href: str
    status: int = 200  # of the response itself, or of its found props
    props: dict[str, etree._Element] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        """The text of a found property, or None."""
        el = self.props.get(name)
        if el is None:
            return None
        return el.text or ""

    def hrefs(self, name: str) -> list[str]:
        """The ``D:href`` children of a found property."""
        el = self.props.get(name)
        if el is None:
            return []
        return [(h.text or "").strip() for h in el.iter(q(D, "href")) if h.text]


@dataclass
class Multistatus:
    """A parsed 207 answer."""

    entries: list[Entry]
    sync_token: str | None = None


def _status(el: etree._Element | None) -> int | None:
    if el is None or not el.text:
        return None
    parts = el.text.split()
    try:
        return int(parts[1])
    except (IndexError, ValueError):
        return None


_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


def parse(content: bytes) -> Multistatus:
    """Parse a multistatus body.

    Raises:
        ValueError: the body is not a multistatus.
    """
    try:
        root = etree.fromstring(content, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"malformed XML: {exc}") from None
    if root.tag != q(D, "multistatus"):
        raise ValueError(f"expected DAV:multistatus, found {root.tag}")
    entries = []
    for resp in root.iterchildren(q(D, "response")):
        href_el = resp.find(q(D, "href"))
        if href_el is None or not href_el.text:
            continue
        entry = Entry(path(href_el.text.strip()))
        own = _status(resp.find(q(D, "status")))
        found_any = False
        for ps in resp.iterchildren(q(D, "propstat")):
            st = _status(ps.find(q(D, "status")))
            if st is not None and not 200 <= st < 300:
                continue
            prop = ps.find(q(D, "prop"))
            if prop is None:
                continue
            for child in prop:
                if isinstance(child.tag, str):
                    entry.props[child.tag] = child
                    found_any = True
        if own is not None:
            entry.status = own
        elif not found_any and resp.find(q(D, "propstat")) is not None:
            entry.status = 404
        entries.append(entry)
    token_el = root.find(q(D, "sync-token"))
    token = token_el.text.strip() if token_el is not None and token_el.text else None
    return Multistatus(entries, token)


def propfind(*props: str) -> str:
    """A PROPFIND body asking for ``props`` (``"D:getetag"``-style names)."""
    inner = "".join(f"<{p}/>" for p in props)
    return f"{HEAD}<D:propfind {NSDECL}><D:prop>{inner}</D:prop></D:propfind>"


def sync_collection(token: str | None, *props: str) -> str:
    """An RFC 6578 sync-collection REPORT body."""
    inner = "".join(f"<{p}/>" for p in props)
    tok = escape(token) if token else ""
    return (
        f"{HEAD}<D:sync-collection {NSDECL}><D:sync-token>{tok}</D:sync-token>"
        f"<D:sync-level>1</D:sync-level><D:prop>{inner}</D:prop></D:sync-collection>"
    )


def multiget(kind: str, hrefs: list[str]) -> str:
    """A calendar-multiget (``kind`` "C") or addressbook-multiget ("CR") body."""
    data = "C:calendar-data" if kind == "C" else "CR:address-data"
    root = "C:calendar-multiget" if kind == "C" else "CR:addressbook-multiget"
    refs = "".join(f"<D:href>{escape(h)}</D:href>" for h in hrefs)
    return f"{HEAD}<{root} {NSDECL}><D:prop><D:getetag/><{data}/></D:prop>{refs}</{root}>"


def mkcalendar(name: str, component: str) -> str:
    """An MKCALENDAR body: display name and the one supported component."""
    return (
        f"{HEAD}<C:mkcalendar {NSDECL}><D:set><D:prop>"
        f"<D:displayname>{escape(name)}</D:displayname>"
        f'<C:supported-calendar-component-set><C:comp name="{component}"/>'
        f"</C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>"
    )


def is_precondition(content: bytes, name: str) -> bool:
    """Whether an error body names the DAV precondition ``name``."""
    return name.encode() in content
