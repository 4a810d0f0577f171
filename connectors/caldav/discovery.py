"""Find the user's principal, homes, calendars and address books (RFC 4791 §6, 6352 §7, 6764).

From the base URL: ``current-user-principal`` on the URL itself, else on
``/.well-known/caldav`` and ``/.well-known/carddav``; then the principal's
``calendar-home-set``, ``addressbook-home-set`` and ``calendar-user-address-set``;
then one Depth 1 PROPFIND per home. The result is a plain JSON dict (cached by the
connector in its account state, so a no-change pass sends no discovery request).
"""

from __future__ import annotations

from typing import Any

from syncd.errors import AccountError
from syncd_connectors.caldav import dav
from syncd_connectors.caldav.http import Http

PRINCIPAL_PROPS = ("C:calendar-home-set", "CR:addressbook-home-set", "C:calendar-user-address-set")
HOME_PROPS = (
    "D:resourcetype",
    "D:displayname",
    "C:supported-calendar-component-set",
    "D:supported-report-set",
)


def _propfind(http: Http, href: str, depth: str, *props: str) -> dav.Multistatus | None:
    resp = http.request(
        "PROPFIND", href, dav.propfind(*props), {**dav.XML_HEADERS, "Depth": depth}
    )
    if resp.status != 207:
        return None
    try:
        return dav.parse(resp.content)
    except ValueError:
        return None


def _principal(http: Http, href: str) -> str | None:
    ms = _propfind(http, href, "0", "D:current-user-principal")
    if ms is None:
        return None
    for entry in ms.entries:
        found = entry.hrefs(dav.q(dav.D, "current-user-principal"))
        if found:
            return dav.path(http.url(found[0]))
    return None


def _homes(http: Http, principal: str) -> dict[str, Any]:
    ms = _propfind(http, principal, "0", *PRINCIPAL_PROPS)
    out: dict[str, Any] = {"calendar_home": None, "addressbook_home": None, "addresses": []}
    if ms is None:
        return out
    for entry in ms.entries:
        cal = entry.hrefs(dav.q(dav.C, "calendar-home-set"))
        book = entry.hrefs(dav.q(dav.CR, "addressbook-home-set"))
        out["calendar_home"] = out["calendar_home"] or (dav.path(http.url(cal[0])) if cal else None)
        out["addressbook_home"] = out["addressbook_home"] or (
            dav.path(http.url(book[0])) if book else None
        )
        for addr in entry.hrefs(dav.q(dav.C, "calendar-user-address-set")):
            low = addr.strip().lower()
            if low.startswith("mailto:"):
                out["addresses"].append(low.removeprefix("mailto:"))
    return out


def _sync_support(entry: dav.Entry) -> bool:
    el = entry.props.get(dav.q(dav.D, "supported-report-set"))
    return el is not None and next(el.iter(dav.q(dav.D, "sync-collection")), None) is not None


def _components(entry: dav.Entry) -> list[str]:
    el = entry.props.get(dav.q(dav.C, "supported-calendar-component-set"))
    if el is None:  # RFC 4791 §5.2.3: absent means any component
        return ["VEVENT", "VTODO", "VJOURNAL"]
    return sorted({str(c.get("name", "")).upper() for c in el.iter(dav.q(dav.C, "comp"))})


def _collections(http: Http, home: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    ms = _propfind(http, home, "1", *HOME_PROPS)
    cals: list[dict[str, Any]] = []
    books: list[dict[str, Any]] = []
    if ms is None:
        return cals, books
    for entry in ms.entries:
        rtype = entry.props.get(dav.q(dav.D, "resourcetype"))
        if rtype is None or entry.status != 200:
            continue
        href = entry.href if entry.href.endswith("/") else entry.href + "/"
        name = (entry.text(dav.q(dav.D, "displayname")) or "").strip()
        name = name or dav.key(href).rstrip("/").rsplit("/", 1)[-1]
        info = {"href": href, "name": name, "sync": _sync_support(entry)}
        if rtype.find(dav.q(dav.C, "calendar")) is not None:
            cals.append({**info, "components": _components(entry)})
        elif rtype.find(dav.q(dav.CR, "addressbook")) is not None:
            books.append(info)
    return cals, books


def discover(http: Http) -> dict[str, Any]:
    """Everything the connector needs to know about the account's server layout.

    Raises:
        AccountError: no principal or no calendar home can be found.
    """
    principal = (
        _principal(http, http.base)
        or _principal(http, "/.well-known/caldav")
        or _principal(http, "/.well-known/carddav")
    )
    if principal is None:
        raise AccountError(
            f"account {http.account!r}: no current-user-principal at {http.base} "
            "or /.well-known/caldav; is the URL a CalDAV server?"
        )
    homes = _homes(http, principal)
    if homes["addressbook_home"] is None:
        other = _principal(http, "/.well-known/carddav")
        if other and other != principal:
            homes["addressbook_home"] = _homes(http, other)["addressbook_home"]
    if homes["calendar_home"] is None:
        raise AccountError(f"account {http.account!r}: principal {principal} has no calendar-home-set")
    cals, books = _collections(http, homes["calendar_home"])
    book_home = homes["addressbook_home"]
    if book_home is not None and book_home != homes["calendar_home"]:
        _, books = _collections(http, book_home)
    return {
        "principal": principal,
        "calendar_home": homes["calendar_home"],
        "addressbook_home": book_home,
        "addresses": sorted(set(homes["addresses"])),
        "calendars": cals,
        "addressbooks": books,
    }
