"""The run's context: the options, the host, the state directory, the run's id and the stages' timings.
Stages hand each other typed values (imagepipe.refs, stages.verify.Verified) explicitly."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

from imagepipe import cancel, hostenv


@dataclass
class Context:
    args: argparse.Namespace
    profile: hostenv.HostProfile
    state_dir: Path
    run_id: str = "norun"
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage (stagetable.timed), for the report

    @property
    def labels(self) -> dict[str, str]:
        """Put on every container this run starts, so a later run can tell its leftovers from others'."""
        return {cancel.LABEL: self.run_id}


def write_state(path: Path, data: dict[str, object]) -> None:
    """State files are replaced whole (a cancelled run leaves the old one, never half a new one)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data) + "\n")
    tmp.replace(path)
