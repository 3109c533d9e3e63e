"""The run's context: the options, the host, the state directory, the run's id and the stages' timings.
Stages hand each other typed values (imagepipe.image.refs, stages.verify.Verified) explicitly."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from imagepipe.exec import cancel
from imagepipe.host import profile
from imagepipe.host.files import write_atomic
from imagepipe.image.refs import ImageRef
from imagepipe.pipeline.options import Options
from imagepipe.registry.access import Access, open_access
from imagepipe.registry.auth import resolve

if TYPE_CHECKING:
    from imagepipe.supplychain.cosigning import CosignKey


@dataclass
class Context:
    args: Options
    profile: profile.HostProfile
    state_dir: Path
    run_id: str = "norun"
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage (stagetable.timed), for the report
    cosign_key: CosignKey | None = None  # what promote signs with, opened once (promote.preflight)
    _access: dict[str, Access] = field(default_factory=dict)

    def access(self, registry: str | None = None, *, stage: str) -> Access:
        """How this run reaches `registry` (default: --registry) and with which credentials: resolved once,
        then the same value for every stage. Its auth file lives in the state directory until the run ends."""
        registry = registry or self.args.registry
        if registry not in self._access:
            auth = resolve(registry, creds=self.args.auth.creds, authfile=self.args.auth.authfile, repo=self.args.repo)
            self._access[registry] = open_access(auth, tls_verify=self.args.auth.tls_verify, work=self.access_dir,
                                                 stage=stage)
        return self._access[registry]

    @property
    def access_dir(self) -> Path:
        return self.state_dir / "access" / self.run_id

    def close_access(self) -> None:
        """The run's auth files and trust bundles go when it ends (and a killed run's, on the next run)."""
        self._access.clear()
        shutil.rmtree(self.access_dir, ignore_errors=True)

    @property
    def repository(self) -> ImageRef:
        """REGISTRY/REPO, the one reference every stage derives its tags and digests from."""
        return ImageRef(self.args.registry, self.args.repo)

    @property
    def cache_repository(self) -> str:
        """kaniko's layer cache: --cache-repo, else REPO/cache, in the run's registry."""
        return f"{self.args.registry}/{self.args.building.cache_repo or self.args.repo + '/cache'}"

    @property
    def labels(self) -> dict[str, str]:
        """Put on every container this run starts, so a later run can tell its leftovers from others'."""
        return {cancel.LABEL: self.run_id}


def write_state(path: Path, data: dict[str, object]) -> None:
    """State files are replaced whole (a cancelled run leaves the old one, never half a new one)."""
    write_atomic(path, json.dumps(data) + "\n")
