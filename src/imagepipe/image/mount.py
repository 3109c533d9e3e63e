"""An image's file tree, mounted read-only through a buildah working container for as long as it is needed
(verify's tree checks, parity, the SBOM's inventory, the base's security check)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from imagepipe.exec import cancel, cmdline, runner


@contextmanager
def mounted(image: str) -> Iterator[Path]:
    run = cancel.current()
    # named after the run, so a cancelled run's clean-up finds it (cleanup.remove_run_containers)
    name = f"imagepipe-{run.id}-{secrets.token_hex(3)}" if run is not None else None
    ctr = runner.run(cmdline.buildah_from(image, name=name), stage="verify").stdout.strip()
    try:
        path = runner.run(cmdline.buildah_mount(ctr), stage="verify").stdout.strip()
        yield Path(path)
    finally:
        runner.run(cmdline.buildah_umount(ctr), ok_codes=(0, 1, 125))
        runner.run(cmdline.buildah_rm(ctr), ok_codes=(0, 1, 125))
