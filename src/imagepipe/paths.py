"""Where the project lives (one definition; every module imports it from here)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The host's CA bundle: builds mount it for pip (PyPI may sit behind a proxy only the host trusts).
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
