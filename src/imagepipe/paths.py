"""Where the project lives (one definition; every module imports it from here)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The host's CA bundle: builds mount it for pip (PyPI may sit behind a proxy only the host trusts).
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# What is built once per machine and shared by every checkout and state directory (cluster binaries, the
# interop tools, Better Auth's packages, wheelhouses), outside any clone; each entry is keyed by its inputs.
MACHINE_CACHE = Path(os.environ.get("IMAGEPIPE_CACHE", "/var/cache/imagepipe"))
