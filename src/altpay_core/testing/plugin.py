"""The pytest plugin of altpay-core, loaded through the ``pytest11`` entry point.

It only defines fixtures and imports nothing heavy, so that it costs nothing
in test suites that do not use it.
"""

from __future__ import annotations
