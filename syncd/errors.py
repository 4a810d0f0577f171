"""One exception root, and the exit codes the command line maps them to.

Every failure syncd knows about is a ``SyncdError``; ``syncd.cli`` shows its message
without a traceback and exits with its ``exit_code`` (sysexits, SPEC §2).
"""

from __future__ import annotations

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


class UsageError(SyncdError):
    """The command asked for something that cannot be (exit 2, as a bad command line)."""

    exit_code = EX_USAGE
