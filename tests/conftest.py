"""Test-suite settings: Hypothesis profiles chosen by HYPOTHESIS_PROFILE, and
the PostgreSQL test server's connection string."""

from __future__ import annotations

import os

import pytest
from hypothesis import Verbosity, settings

# "dev" keeps the local loop quick; "ci" looks harder; "debug" explains.
# Each builds on Hypothesis' own defaults: under a CI environment variable
# Hypothesis loads its built-in "ci" profile first (which suppresses the
# too_slow health check), and ours must not inherit that.
_BASE = settings.get_profile("default")
settings.register_profile("dev", _BASE, max_examples=50, deadline=None)
settings.register_profile("ci", _BASE, max_examples=120, deadline=None, print_blob=True)
settings.register_profile(
    "debug", _BASE, max_examples=20, deadline=None, verbosity=Verbosity.verbose
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


DSN_VARIABLE = "ALTPAY_TEST_POSTGRES_DSN"


@pytest.fixture(scope="module")
def postgres_dsn() -> str:
    """The test server's connection string; skips without one, but fails in CI."""
    dsn = os.environ.get(DSN_VARIABLE, "").strip()
    if dsn:
        return dsn
    how = 'start one with: eval "$(bash scripts/postgres-test-server start)"'
    if os.environ.get("CI"):
        pytest.fail(
            f"{DSN_VARIABLE} is not set, and in CI the PostgreSQL tests must run, "
            f"never skip ({how})",
            pytrace=False,
        )
    pytest.skip(f"no PostgreSQL server: set {DSN_VARIABLE} ({how})")
