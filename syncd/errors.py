"""One exception root, and the exit codes the command line maps them to.

Every failure syncd knows about is a ``SyncdError``; ``syncd.cli`` shows its message
without a traceback and exits with its ``exit_code`` (sysexits, SPEC §2).
"""

from __future__ import annotations

from collections.abc import Sequence

EX_OK = 0
EX_FAILED = 1
EX_USAGE = 2
EX_UNAVAILABLE = 69
EX_TEMPFAIL = 75
EX_CONFIG = 78


class SyncdError(Exception):
    """Root of syncd's errors; its message is shown to the user as is."""

    exit_code = EX_FAILED


class ConfigError(SyncdError):
    """The config is wrong; nothing was done."""

    exit_code = EX_CONFIG

    def __init__(self, path: object, key: str, found: object, expected: str) -> None:
        self.path, self.key, self.found, self.expected = path, key, found, expected
        shown = "missing" if found is MISSING else repr(found)
        super().__init__(f"{path}: {key}: found {shown}, expected {expected}")


class _Missing:
    def __repr__(self) -> str:
        return "missing"


#: a config key that is absent (as opposed to present with some value)
MISSING = _Missing()


class UnavailableError(SyncdError):
    """A needed component is missing (no keyring backend, unknown connector)."""

    exit_code = EX_UNAVAILABLE


class TempFailError(SyncdError):
    """Nothing can be done for now; try again later."""

    exit_code = EX_TEMPFAIL


class LockedError(TempFailError):
    """Another syncd holds the ledger's lock."""


class SecretUnavailable(TempFailError):
    """The keyring is locked or holds no secret for the account."""


class AccountError(SyncdError):
    """One account failed; the others go on."""


class AuthError(AccountError):
    """The account's credentials were refused."""

    def __init__(self, account: str, detail: str = "credentials refused") -> None:
        super().__init__(f"account {account!r}: {detail}; run `syncd auth {account}`")


class TransientError(AccountError):
    """A retry later may succeed (timeouts, 5xx, connection refused)."""


class ParseError(SyncdError):
    """A calendar object or vCard could not be read; the object is skipped."""


class PreconditionFailed(AccountError):
    """A conditional write lost a race (HTTP 412, a file that appeared)."""


def message(exc: BaseException, account: str | None = None) -> str:
    """What a user reads about ``exc``: the account named once, no traceback."""
    text = str(exc) if isinstance(exc, SyncdError) else f"{type(exc).__name__}: {exc}"
    if account is not None and f"account {account!r}" not in text:
        text = f"account {account!r}: {text}"
    return text


def retry_may_help(exc: BaseException) -> bool:
    """Whether the same attempt later may succeed (server down, keyring locked)."""
    return isinstance(exc, (TransientError, TempFailError)) or (
        isinstance(exc, SyncdError) and not isinstance(exc, (AuthError, UnavailableError, ConfigError))
        and not isinstance(exc, ParseError)
    )


def pass_exit_code(failures: Sequence[BaseException], succeeded: int) -> int:
    """SPEC §2's exit code of a pass: ``failures`` of accounts and write-back, and how many
    accounts succeeded.

    0 all fine; 69 nothing worked because a component is missing (no keyring backend, a
    connector that cannot load); 75 nothing worked and a retry may help; 1 otherwise
    (some account failed while others worked, or a retry cannot fix it).
    """
    if not failures:
        return EX_OK
    if succeeded == 0:
        if any(isinstance(e, UnavailableError) for e in failures):
            return EX_UNAVAILABLE
        if all(retry_may_help(e) for e in failures):
            return EX_TEMPFAIL
    return EX_FAILED
class UsageError(SyncdError):
    """The command asked for something that cannot be (exit 2, as a bad command line)."""

    exit_code = EX_USAGE
