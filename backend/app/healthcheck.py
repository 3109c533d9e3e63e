"""The image's HEALTHCHECK: exit 0 only when GET /health answers 200 with {"status": "healthy"} in time.

Standard library only and no import of the app, so the check is cheap and tests the server, not Python.
"""

import json
import os
import sys
import urllib.request

URL = os.environ.get("HEALTHCHECK_URL", "http://127.0.0.1:8000/health")
TIMEOUT = float(os.environ.get("HEALTHCHECK_TIMEOUT", "2"))


def main() -> int:
    try:
        with urllib.request.urlopen(URL, timeout=TIMEOUT) as response:  # noqa: S310 - fixed local URL
            body = json.loads(response.read(1024))
            status = response.status
    except Exception as e:  # any failure (HTTP error, timeout, refused, bad JSON) means unhealthy
        print(f"unhealthy: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    if status != 200 or body != {"status": "healthy"}:
        print(f"unhealthy: HTTP {status} {body!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
