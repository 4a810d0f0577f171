"""Fixtures of the connector contract: the real servers of ``tests.servers``."""

from tests.servers import pytest_runtest_makereport, radicale, xandikos  # noqa: F401
