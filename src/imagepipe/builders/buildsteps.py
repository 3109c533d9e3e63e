"""Per-step build timings from the builders' own output, for buildah and kaniko alike: each Containerfile
instruction with its seconds and whether the layer cache served it. Lines are timed as they arrive."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from imagepipe.builders import kanikofailure
from imagepipe.image.refs import Step

BUILDAH_STEP = re.compile(r"^(?:\[(\d+)/\d+\] )?STEP (\d+)/(\d+): (.*)$")
KANIKO_STEP = re.compile(r"^INFO\[\d+\] ((?:FROM|RUN|COPY|ADD|ENV|ARG|WORKDIR|USER|EXPOSE|HEALTHCHECK|CMD|ENTRYPOINT"
                         r"|LABEL|SHELL|VOLUME|STOPSIGNAL|ONBUILD)\b.*)$")
KANIKO_STAGE = re.compile(r"Building stage '([^']*)' \[idx: '(\d+)'")
KANIKO_CACHED_CMD = re.compile(r"Using caching version of cmd: (.*)$")
# a layer pushed to the cache repository while the build goes on (its tag: the layer's 64-hex cache key)
KANIKO_CACHE_PUSH = re.compile(r"Pushing (?:image to \S+:[0-9a-f]{64}\s*$|layer |cache pointer )")


@dataclass
class StepTimer:
    """Feed it the build's output lines (`timer.line`); `finish()` closes the last step."""

    builder: str  # buildah | kaniko
    clock: Any = time.monotonic
    steps: list[Step] = field(default_factory=list)
    _started: float = 0.0
    _stage: int = 1
    _cached_cmds: set[str] = field(default_factory=set)

    def _open(self, stage: int, instruction: str, now: float) -> None:
        self._close(now)
        self.steps.append(Step(stage, instruction))
        self._started = now
        if instruction in self._cached_cmds:
            self.steps[-1].cached = True

    def _close(self, now: float) -> None:
        if self.steps and self.steps[-1].seconds == 0.0:
            self.steps[-1].seconds = now - self._started

    def line(self, raw: str) -> None:
        now = self.clock()
        text = kanikofailure.clean(raw).rstrip()
        if self.builder == "buildah":
            m = BUILDAH_STEP.match(text)
            if m:
                self._open(int(m.group(1) or 1), m.group(4), now)
            elif text.startswith("--> Using cache") and self.steps:
                self.steps[-1].cached = True
            return
        stage = KANIKO_STAGE.search(text)
        if stage:
            self._stage = int(stage.group(2)) + 1
            return
        cached = KANIKO_CACHED_CMD.search(text)
        if cached:
            self._cached_cmds.add(cached.group(1).strip())
            return
        if "Found cached layer" in text and self.steps:
            self.steps[-1].cached = True
            return
        m = KANIKO_STEP.match(text)
        if m:
            self._open(self._stage, m.group(1).strip(), now)
        elif (text.startswith("INFO[") and ("Pushing image" in text or "Skipping push" in text)
              and not KANIKO_CACHE_PUSH.search(text)):
            self._close(now)  # the build is over; pushing the image is not a step

    def finish(self) -> list[Step]:
        self._close(self.clock())
        return self.steps


def render(steps: list[Step]) -> str:
    lines = []
    for s in steps:
        cached = "cached" if s.cached else "      "
        lines.append(f"      {s.seconds:6.1f} s  {cached}  [{s.stage}] {s.instruction[:90]}")
    return "\n".join(lines)
