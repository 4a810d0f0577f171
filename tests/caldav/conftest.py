"""Fixtures of the CalDAV connector tests: real servers (``tests.servers``)."""

from tests.servers import pytest_runtest_makereport, radicale, xandikos  # noqa: F401
