"""Every exit code the pipeline returns, named once. A failed stage exits with its own code, which lives
in the stage table (imagepipe.pipeline.stagetable) next to the stage."""

from __future__ import annotations

OK = 0
CHECKS_FAILED = 1  # a verification check (or parity, attest verify, the load test) found a problem
USAGE = 2  # bad command-line input or project layout; nothing was changed
INTERNAL = 70  # an unexpected exception (EX_SOFTWARE): a bug, reported in one line
SIGNAL_BASE = 128  # cancelled by a signal: 128 + its number, as shells report it (cancel.Interrupted)
