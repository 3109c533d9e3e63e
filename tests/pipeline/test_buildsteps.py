"""Per-step build timings read from buildah's and kaniko's own output (recorded excerpts, a fake clock)."""

from __future__ import annotations

from itertools import count

from imagepipe.builders.buildsteps import StepTimer

BUILDAH = """\
[1/2] STEP 1/5: FROM python:3.11-slim AS builder
[1/2] STEP 2/5: SHELL ["/bin/bash", "-o", "pipefail", "-c"]
--> Using cache 1b2c3d
[1/2] STEP 3/5: RUN set -eu; apt-get update
Get:1 http://deb.debian.org/debian bookworm InRelease [151 kB]
--> 4e5f6a
[2/2] STEP 1/3: FROM scratch AS runner
[2/2] STEP 2/3: COPY --from=builder /rootfs/ /
--> Using cache 9a8b7c
[2/2] STEP 3/3: COPY --chown=appuser:appuser ./app ./app
--> 0d1e2f
Successfully tagged localhost/todo-backend:abc
"""

KANIKO = """\
\x1b[36mINFO\x1b[0m[0000] Resolved base name of builder to python:3.11-slim
\x1b[36mINFO\x1b[0m[0000] Using caching version of cmd: RUN set -eu; apt-get update
\x1b[36mINFO\x1b[0m[0000] Building stage 'python:3.11-slim' [idx: '0', base-idx: '-1']
\x1b[36mINFO\x1b[0m[0001] SHELL ["/bin/bash", "-o", "pipefail", "-c"]
\x1b[36mINFO\x1b[0m[0001] RUN set -eu; apt-get update
\x1b[36mINFO\x1b[0m[0002] Found cached layer, extracting to filesystem
\x1b[36mINFO\x1b[0m[0009] Building stage 'scratch' [idx: '1', base-idx: '-1']
\x1b[36mINFO\x1b[0m[0009] COPY --from=builder /rootfs/ /
\x1b[36mINFO\x1b[0m[0019] COPY --chown=appuser:appuser ./app ./app
\x1b[36mINFO\x1b[0m[0020] Pushing image to 127.0.0.1:5000/todo-backend:abc-kaniko
"""


def timed(builder: str, text: str) -> list:
    ticks = count()
    timer = StepTimer(builder, clock=lambda: float(next(ticks)))
    for line in text.splitlines(keepends=True):
        timer.line(line)
    return timer.finish()


def test_buildah_steps_with_stage_seconds_and_cache_hits():
    steps = timed("buildah", BUILDAH)
    assert [(s.stage, s.instruction.split()[0]) for s in steps] == [
        (1, "FROM"), (1, "SHELL"), (1, "RUN"), (2, "FROM"), (2, "COPY"), (2, "COPY")]
    assert [s.cached for s in steps] == [False, True, False, False, True, False]
    assert steps[2].seconds == 3.0  # the RUN's line, its output, and the layer id line
    assert all(s.seconds > 0 for s in steps)


def test_kaniko_steps_stop_at_push_and_see_the_cache():
    steps = timed("kaniko", KANIKO)
    assert [(s.stage, s.instruction.split()[0]) for s in steps] == [(1, "SHELL"), (1, "RUN"), (2, "COPY"), (2, "COPY")]
    assert [s.cached for s in steps] == [False, True, False, False]
    assert steps[-1].seconds == 1.0, "the push is not counted in the last step"
    assert steps[1].as_dict()["instruction"].startswith("RUN set -eu")


# The v1.29 profile pushes each cache layer while the next step runs (a Job's log, its cache keys shortened
# to one repeated key of the same 64-hex form).
KEY = "72b29d91bbea0b2cb4f1037fe6fd4550921fc445816fac77ab07e813ced7ec4e"
CACHE = "10.244.0.1:5000/bench-job/cache-warm"
KANIKO_CACHE_PUSHES = f"""\
\x1b[36mINFO\x1b[0m[0028] COPY requirements.txt /tmp/requirements.txt
\x1b[36mINFO\x1b[0m[0028] Pushing layer {CACHE}:{KEY} to cache now
\x1b[36mINFO\x1b[0m[0028] RUN set -eu;     echo "python packages from: ${{WHEELHOUSE}}"
\x1b[36mINFO\x1b[0m[0028] Pushing image to {CACHE}:{KEY}
\x1b[36mINFO\x1b[0m[0042] Pushing cache pointer {CACHE}:{KEY} -> 489ce03f
successfully installed
\x1b[36mINFO\x1b[0m[0050] COPY --from=builder /rootfs/ /
\x1b[36mINFO\x1b[0m[0065] Pushing image to 10.244.0.1:5000/bench-job:cold_pipcache
"""


def test_kaniko_cache_pushes_mid_build_do_not_end_the_running_step():
    steps = timed("kaniko", KANIKO_CACHE_PUSHES)
    assert [s.instruction.split()[0] for s in steps] == ["COPY", "RUN", "COPY"]
    # the RUN spans its line, the two cache pushes, the pointer and its output: 4 ticks, not 1
    assert steps[1].seconds == 4.0
    assert steps[2].seconds == 1.0, "the image's own push still ends the last step"
