"""The run's context: the options, the host, the state directory and the run's id. Stages hand each other
typed values (imagepipe.refs) explicitly; what is kept here is only what the report gathers along the way."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

from imagepipe import cancel, hostenv
from imagepipe.builders.buildsteps import Step


@dataclass
class Context:
    args: argparse.Namespace
    profile: hostenv.HostProfile
    state_dir: Path
    run_id: str = "norun"
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, for the report
    build_steps: tuple[Step, ...] = ()  # the build's per-step timings, for the report
    published: dict[str, object] = field(default_factory=dict)  # signature, sbom, provenance (report)

    @property
    def labels(self) -> dict[str, str]:
        """Put on every container this run starts, so a later run can tell its leftovers from others'."""
        return {cancel.LABEL: self.run_id}


def write_state(path: Path, data: dict[str, object]) -> None:
    """State files are replaced whole (a cancelled run leaves the old one, never half a new one)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data) + "\n")
    tmp.replace(path)
