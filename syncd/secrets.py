"""Account secrets: $CREDENTIALS_DIRECTORY/<account> first, then the keyring.

Keyring entries: service ``syncd``, username = account name (SPEC §3). Secrets are
never logged and never put into exception messages.
"""

from __future__ import annotations

import sys
from typing import TextIO

from syncd import paths
from syncd.errors import SecretUnavailable, UnavailableError, UsageError

SERVICE = "syncd"


def _keyring():  # type: ignore[no-untyped-def]
    try:
        import keyring
        import keyring.errors
    except ImportError as exc:  # pragma: no cover - keyring is a dependency
        raise UnavailableError("the keyring package is not installed") from exc
    return keyring


def get(account: str) -> str:
    """The secret of ``account``.

    Raises:
        SecretUnavailable: none stored, or the keyring is locked (retry later).
        UnavailableError: no keyring backend is available.
    """
    creds = paths.credentials_dir()
    if creds and (creds / account).is_file():
        return (creds / account).read_text(encoding="utf-8").strip()
    kr = _keyring()
    try:
        value = kr.get_password(SERVICE, account)
    except kr.errors.NoKeyringError as exc:
        raise UnavailableError(
            "no keyring backend is available; install one or set "
            "PYTHON_KEYRING_BACKEND (see README)"
        ) from exc
    except kr.errors.KeyringError as exc:
        raise SecretUnavailable(f"the keyring is not available now ({type(exc).__name__})") from exc
    if value is None:
        raise SecretUnavailable(
            f"no secret stored for account {account!r}; run `syncd auth {account}`"
        )
    return value


def put(account: str, value: str) -> None:
    """Store ``value`` as the secret of ``account``."""
    kr = _keyring()
    try:
        kr.set_password(SERVICE, account, value)
    except kr.errors.NoKeyringError as exc:
        raise UnavailableError("no keyring backend is available") from exc
    except kr.errors.KeyringError as exc:
        raise SecretUnavailable(f"the keyring refused the secret ({type(exc).__name__})") from exc


#: backends that accept a secret and keep nothing (``fail``) or lose it (``null``)
_NO_STORE = ("keyring.backends.fail", "keyring.backends.null")


def check_backend() -> str:
    """The name of the keyring backend that would store a secret.

    ``syncd auth`` calls this before it prompts, so nobody types a password that
    cannot be kept.

    Raises:
        UnavailableError: no usable backend (none installed, or the null backend).
    """
    kr = _keyring()
    backend = kr.get_keyring()
    module = type(backend).__module__
    if module.startswith(_NO_STORE):
        raise UnavailableError(
            f"no keyring backend can store the secret (found {type(backend).__module__}."
            f"{type(backend).__name__}); install one (e.g. keyrings.alt) and set "
            "PYTHON_KEYRING_BACKEND, see docs/service.md"
        )
    return f"{module}.{type(backend).__name__}"


def read_password(prompt: str, stdin: TextIO | None = None) -> str:
    """A password: prompted without echo on a terminal, else the first line of stdin.

    Raises:
        UsageError: stdin held no password.
    """
    stdin = stdin or sys.stdin
    if stdin.isatty():
        import getpass

        try:
            value = getpass.getpass(prompt)
        except EOFError:
            value = ""
    else:
        value = stdin.readline().rstrip("\r\n")
    if not value:
        raise UsageError("no password given (on a terminal type it; otherwise pipe it on standard input)")
    return value
