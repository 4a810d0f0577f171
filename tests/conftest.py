"""Test-wide setup: the test-only connectors.

The in-memory connector is a test double, not something to offer users, so the
installed package does not register it. Tests register it the way any plugin
registers: an entry point, here in a distribution that exists only on the tests'
``sys.path`` (``tests/plugins/syncd_test_connectors-0.dist-info``).
"""

from __future__ import annotations

import sys
from pathlib import Path

_PLUGINS = str(Path(__file__).resolve().parent / "plugins")
if _PLUGINS not in sys.path:
    sys.path.append(_PLUGINS)
