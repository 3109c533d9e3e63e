"""An image's file tree, mounted read-only through a buildah working container for as long as it is needed
(verify's tree checks, parity, the SBOM's inventory, the base's security check)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from imagepipe import cancel, commands, runner


@contextmanager
def mounted(image: str) -> Iterator[Path]:
    run = cancel.current()
    # named after the run, so a cancelled run's clean-up finds it (cleanup.remove_run_containers)
    name = f"imagepipe-{run.id}-{secrets.token_hex(3)}" if run is not None else None
    ctr = runner.run(commands.buildah_from(image, name=name), stage="verify").stdout.strip()
    try:
        path = runner.run(commands.buildah_mount(ctr), stage="verify").stdout.strip()
        yield Path(path)
    finally:
        runner.run(commands.buildah_umount(ctr), ok_codes=(0, 1, 125))
        runner.run(commands.buildah_rm(ctr), ok_codes=(0, 1, 125))
