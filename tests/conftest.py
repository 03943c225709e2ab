"""Test-suite settings: Hypothesis profiles chosen by HYPOTHESIS_PROFILE."""

from __future__ import annotations

import os

from hypothesis import Verbosity, settings

# "dev" keeps the local loop quick; "ci" looks harder; "debug" explains.
# Each builds on Hypothesis' own defaults: under a CI environment variable
# Hypothesis loads its built-in "ci" profile first (which suppresses the
# too_slow health check), and ours must not inherit that.
_BASE = settings.get_profile("default")
settings.register_profile("dev", _BASE, max_examples=50, deadline=None)
settings.register_profile("ci", _BASE, max_examples=200, deadline=None, print_blob=True)
settings.register_profile(
    "debug", _BASE, max_examples=20, deadline=None, verbosity=Verbosity.verbose
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
